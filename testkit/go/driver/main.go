// Command driver plays the Secrets Store CSI Driver (v1.6.0) and the secrets-store-sync-
// controller against a provider's Unix socket, the way those programs call it: the
// request built as their Go code builds it, their gRPC client settings, their checks on
// the answer, their atomic writer, and the error a pod event would show.
//
// Written for csiprovider's tests from a reading of the upstream sources (named at each
// step below); built offline against Debian's grpc-go 1.33 in GOPATH mode by
// testkit/driver.py, with stubs generated from csiprovider's proto/.
//
// Flags mirror the driver's own. It reads one JSON call a line on stdin and writes one
// JSON result a line on stdout; one process keeps its provider connections between calls,
// as the driver does.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	pb "csidriverharness/v1alpha1"
)

// The driver's client service config (pkg/secrets-store/provider_client.go): wait for the
// socket to be ready, retry UNAVAILABLE up to 3 attempts, 1 s initial backoff. The sync
// controller uses the same (pkg/provider/provider_client.go).
const serviceConfig = `{
  "methodConfig": [{
    "name": [{"service": "v1alpha1.CSIDriverProvider"}],
    "waitForReady": true,
    "retryPolicy": {
      "MaxAttempts": 3,
      "InitialBackoff": "1s",
      "MaxBackoff": "10s",
      "BackoffMultiplier": 1.1,
      "RetryableStatusCodes": ["UNAVAILABLE"]
    }
  }]
}`

const (
	tokensKey       = "csi.storage.k8s.io/serviceAccount.tokens"
	podNameKey      = "csi.storage.k8s.io/pod.name"
	podNamespaceKey = "csi.storage.k8s.io/pod.namespace"
	podUIDKey       = "csi.storage.k8s.io/pod.uid"
	saNameKey       = "csi.storage.k8s.io/serviceAccount.name"
	spcKey          = "secretProviderClass"
	// nodeserver.go: the permission every file gets unless the provider says otherwise.
	filePermission os.FileMode = 0644
	// The sync controller's fixed target (pkg/provider/provider_client.go).
	syncTargetPath = "/mnt/secrets-store"
	// kubelet gives a CSI NodePublishVolume call two minutes (pkg/volume/csi).
	kubeletTimeout = 2 * time.Minute
)

var (
	providerVolume  = flag.String("provider-volume", "/var/run/secrets-store-csi-providers", "")
	additionalPaths = flag.String("additional-provider-volume-paths", "/etc/kubernetes/secrets-store-csi-providers", "")
	maxRecv         = flag.Int("max-call-recv-msg-size", 4*1024*1024, "")
	rotation        = flag.Bool("enable-secret-rotation", false, "")
	rotationPoll    = flag.Duration("rotation-poll-interval", 2*time.Minute, "")

	// provider_client.go: the names a provider may have.
	providerName = regexp.MustCompile(`^[a-zA-Z0-9_-]{0,30}$`)
	clients      = map[string]pb.CSIDriverProviderClient{}
	logs         []string
)

// Call is one thing to do: a NodePublishVolume (driver), a SecretSync reconcile (sync) or
// a Version health check (version).
type Call struct {
	Mode          string            `json:"mode"`
	Provider      string            `json:"provider"`       // spec.provider of the SPC
	Parameters    map[string]string `json:"parameters"`     // spec.parameters of the SPC
	VolumeContext map[string]string `json:"volume_context"` // kubelet's volume attributes
	// The NodePublishVolume secrets: the nodePublishSecretRef Secret's data (and on
	// Kubernetes 1.35 with the driver's opt-in, the tokens). Absent or null: a nil map.
	Secrets    map[string]string `json:"secrets"`
	TargetPath string            `json:"target_path"`
	Readonly   *bool             `json:"readonly"`
	// The target is already mounted: kubelet's periodic republish (rotation).
	Republish bool    `json:"republish"`
	Timeout   float64 `json:"timeout"` // seconds; kubelet's 2 minutes when 0
	Volume    string  `json:"volume"`  // the pod's volume name, for the event text
	// The service-account tokens minted for the CSIDriver's tokenRequests (kubelet) or the
	// controller's audiences (sync): audience -> status. kubelet puts their JSON in the
	// volume context, or with Kubernetes 1.35's opt-in (TokensInSecrets) in the secrets.
	Tokens          map[string]TokenStatus `json:"tokens"`
	TokensInSecrets bool                   `json:"tokens_in_secrets"`
	// sync mode: the SecretSync's namespace and service account, the controller's own
	// pod name and UID (its environment).
	Namespace      string `json:"namespace"`
	ServiceAccount string `json:"service_account"`
	PodName        string `json:"pod_name"`
	PodUID         string `json:"pod_uid"`
}

// TokenStatus is authentication/v1 TokenRequestStatus as it marshals: token first.
type TokenStatus struct {
	Token               string `json:"token"`
	ExpirationTimestamp string `json:"expirationTimestamp"`
}

// Sent is the MountRequest as it went over the wire.
type Sent struct {
	Attributes string `json:"attributes"`
	Secrets    string `json:"secrets"`
	TargetPath string `json:"target_path"`
	Permission string `json:"permission"`
}

// Result is what the driver made of the call.
type Result struct {
	Sent           *Sent             `json:"sent,omitempty"`
	OK             bool              `json:"ok"`
	Skipped        bool              `json:"skipped,omitempty"` // rotation: updated too recently
	Masked         bool              `json:"masked,omitempty"`  // republish error kept from the pod
	Code           string            `json:"code,omitempty"`    // gRPC code of the provider's error
	Error          string            `json:"error,omitempty"`   // the driver's error
	Event          string            `json:"event,omitempty"`   // the pod event kubelet records
	ObjectVersions map[string]string `json:"object_versions,omitempty"`
	Files          map[string][]byte `json:"files,omitempty"` // sync mode: what it would put in the Secret
	Wrote          bool              `json:"wrote,omitempty"` // driver mode: it wrote the response's files
	Logs           []string          `json:"logs,omitempty"`  // the driver's log lines of note
	RuntimeVersion string            `json:"runtime_version,omitempty"`
}

func main() {
	flag.Parse()
	if os.Getenv("GRPC_GO_RETRY") != "on" {
		// grpc-go before 1.40 applies a service config's retry policy only with this set;
		// the driver's grpc-go applies it always.
		fmt.Fprintln(os.Stderr, "driver harness: GRPC_GO_RETRY=on is required")
		os.Exit(2)
	}
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 64*1024*1024), 64*1024*1024)
	out := json.NewEncoder(os.Stdout)
	for in.Scan() {
		var call Call
		if err := json.Unmarshal(in.Bytes(), &call); err != nil {
			fmt.Fprintln(os.Stderr, "driver harness: bad call:", err)
			os.Exit(2)
		}
		logs = nil
		var result Result
		switch call.Mode {
		case "driver":
			result = nodePublish(call)
		case "sync":
			result = secretSync(call)
		case "version":
			result = version(call)
		default:
			fmt.Fprintln(os.Stderr, "driver harness: unknown mode", call.Mode)
			os.Exit(2)
		}
		result.Logs = logs
		if err := out.Encode(result); err != nil {
			os.Exit(2)
		}
	}
}

func logf(format string, args ...interface{}) { logs = append(logs, fmt.Sprintf(format, args...)) }

// client finds `<provider>.sock` in the provider directories and dials it once
// (provider_client.go PluginClientBuilder.Get); later calls reuse the connection.
func client(provider string) (pb.CSIDriverProviderClient, error) {
	if c, ok := clients[provider]; ok {
		return c, nil
	}
	if !providerName.MatchString(provider) {
		return nil, fmt.Errorf("invalid provider: provider %q", provider)
	}
	socket := ""
	for _, dir := range append([]string{*providerVolume}, strings.Split(*additionalPaths, ",")...) {
		candidate := filepath.Join(dir, provider+".sock")
		if _, err := os.Stat(candidate); err == nil {
			socket = candidate
			break
		}
	}
	if socket == "" {
		return nil, fmt.Errorf("provider not found: provider %q", provider)
	}
	conn, err := grpc.Dial("unix:"+socket,
		grpc.WithAuthority("localhost"),
		grpc.WithInsecure(),
		grpc.WithDefaultServiceConfig(serviceConfig),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(*maxRecv)),
	)
	if err != nil {
		return nil, err
	}
	c := pb.NewCSIDriverProviderClient(conn)
	clients[provider] = c
	return c, nil
}

// nodePublish is NodePublishVolume (pkg/secrets-store/nodeserver.go) from the SPC on: the
// CSI checks, the rotation skip, the request built from the SPC and the volume context,
// the Mount, the files written, and republish errors masked.
func nodePublish(call Call) Result {
	result := Result{}
	readonly := call.Readonly == nil || *call.Readonly
	if len(call.VolumeContext) == 0 {
		return failed(call, result, status.Error(codes.InvalidArgument, "Volume attributes missing in request"))
	}
	if call.Republish && *rotation {
		// Skipped while the target was updated less than a poll interval ago (utils.go
		// getLastUpdateTime: the target directory's modification time).
		if info, err := os.Stat(call.TargetPath); err == nil && time.Now().Before(info.ModTime().Add(*rotationPoll)) {
			result.OK, result.Skipped = true, true
			return result
		}
	}
	if !call.Republish {
		if err := os.MkdirAll(call.TargetPath, 0750); err != nil {
			return failed(call, result, err)
		}
	} else if !*rotation {
		result.OK, result.Skipped = true, true // already mounted, no rotation: nothing to do
		return result
	}
	if len(call.Tokens) > 0 { // kubelet's part: the tokens of the CSIDriver's tokenRequests
		tokens, _ := json.Marshal(call.Tokens)
		if call.TokensInSecrets {
			if call.Secrets == nil {
				call.Secrets = map[string]string{}
			}
			call.Secrets[tokensKey] = string(tokens)
		} else {
			call.VolumeContext[tokensKey] = string(tokens)
		}
	}
	if call.VolumeContext[spcKey] == "" {
		return failed(call, result, errors.New("secretProviderClass is not set"))
	}
	// SPC parameters, then every volume-context key over them, then the tokens: from the
	// secrets when the driver opted in (Kubernetes 1.35), else the volume context.
	parameters := map[string]string{}
	for k, v := range call.Parameters {
		parameters[k] = v
	}
	for k, v := range call.VolumeContext {
		parameters[k] = v
	}
	tokens, inSecrets := call.Secrets[tokensKey]
	if !inSecrets {
		tokens = call.VolumeContext[tokensKey]
	}
	if tokens != "" {
		parameters[tokensKey] = tokens
	}
	if !readonly {
		return failed(call, result, status.Error(codes.InvalidArgument, "Readonly is not true in request"))
	}
	attributes, _ := json.Marshal(parameters)
	secrets, _ := json.Marshal(call.Secrets) // a nil map is `null`
	permission, _ := json.Marshal(filePermission)
	sent := &Sent{string(attributes), string(secrets), call.TargetPath, string(permission)}
	result.Sent = sent
	versions, files, err := mountContent(call, sent)
	if err != nil {
		err = fmt.Errorf("failed to mount secrets store objects for pod %s/%s, err: %w",
			call.VolumeContext[podNamespaceKey], call.VolumeContext[podNameKey], err)
		if call.Republish {
			result.Masked = true // the pod keeps its files; a rotation error is counted
		}
		return failed(call, result, err)
	}
	result.OK, result.ObjectVersions, result.Wrote = true, versions, files
	return result
}

// secretSync is the sync controller's reconcile up to the Secret's data
// (internal/controller/secretsync_controller.go fetchSecretsFromProvider).
func secretSync(call Call) Result {
	result := Result{}
	parameters := map[string]string{}
	for k, v := range call.Parameters {
		parameters[k] = v
	}
	parameters[podNameKey] = call.PodName
	parameters[podUIDKey] = call.PodUID
	parameters[podNamespaceKey] = call.Namespace
	parameters[saNameKey] = call.ServiceAccount
	if len(call.Tokens) > 0 {
		tokens, _ := json.Marshal(call.Tokens)
		parameters[tokensKey] = string(tokens)
	}
	attributes, _ := json.Marshal(parameters)
	secrets, _ := json.Marshal(map[string]string{})
	permission, _ := json.Marshal(os.FileMode(0644))
	sent := &Sent{string(attributes), string(secrets), syncTargetPath, string(permission)}
	result.Sent = sent
	resp, err := mount(call, sent)
	if err == nil {
		result.ObjectVersions, err = objectVersions(resp)
	}
	if err != nil {
		return failed(call, result, err)
	}
	result.Files = map[string][]byte{}
	for _, f := range resp.GetFiles() {
		result.Files[f.GetPath()] = f.GetContents()
	}
	result.OK = true
	return result
}

func version(call Call) Result {
	c, err := client(call.Provider)
	if err != nil {
		return failed(call, Result{}, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := c.Version(ctx, &pb.VersionRequest{Version: "v1alpha1"})
	if err != nil {
		return failed(call, Result{}, err)
	}
	return Result{OK: true, RuntimeVersion: resp.GetRuntimeVersion()}
}

func mount(call Call, sent *Sent) (*pb.MountResponse, error) {
	c, err := client(call.Provider)
	if err != nil {
		return nil, fmt.Errorf("error connecting to provider %q: %w", call.Provider, err)
	}
	timeout := kubeletTimeout
	if call.Timeout > 0 {
		timeout = time.Duration(call.Timeout * float64(time.Second))
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	resp, err := c.Mount(ctx, &pb.MountRequest{
		Attributes: sent.Attributes,
		Secrets:    sent.Secrets,
		TargetPath: sent.TargetPath,
		Permission: sent.Permission,
		// v1.6 passes no current object versions (nil); the sync controller an empty list.
	})
	if err != nil {
		if status.Code(err) == codes.ResourceExhausted &&
			strings.Contains(err.Error(), "grpc: received message larger than max") &&
			!strings.Contains(err.Error(), "max length allowed on current machine") {
			logf("Set --max-call-recv-msg-size to configure larger maximum size in bytes of gRPC response")
		}
		return nil, err
	}
	if resp.GetError() != nil && resp.GetError().GetCode() != "" {
		return nil, fmt.Errorf("mount request failed with provider error code %s", resp.GetError().GetCode())
	}
	return resp, nil
}

// objectVersions: a response without any object version is refused (errMissingObjectVersions).
func objectVersions(resp *pb.MountResponse) (map[string]string, error) {
	ov := resp.GetObjectVersion()
	if ov == nil { // proto3: an empty repeated field decodes to nil
		return nil, errors.New("missing object versions")
	}
	versions := map[string]string{}
	for _, v := range ov {
		versions[v.GetId()] = v.GetVersion()
	}
	if size := proto.Size(resp); size > 1048576 {
		logf("proto above 1MiB, secret sync may fail size=%d", size)
	}
	return versions, nil
}

// mountContent is MountContent (provider_client.go): the Mount, its checks, and the files
// of the response written by the driver's atomic writer (an empty list: the provider
// wrote them itself).
func mountContent(call Call, sent *Sent) (map[string]string, bool, error) {
	resp, err := mount(call, sent)
	if err != nil {
		return nil, false, err
	}
	versions, err := objectVersions(resp)
	if err != nil {
		return nil, false, err
	}
	if len(resp.GetFiles()) == 0 {
		return versions, false, nil
	}
	if err := writePayloads(call.TargetPath, resp.GetFiles()); err != nil {
		return nil, false, err
	}
	return versions, true, nil
}

// failed records the driver's error and the pod event. The driver's gRPC server answers
// kubelet with the code of a provider status the error wraps (grpc-go >= 1.55
// status.FromError: its message is then the whole error text), else Unknown; kubelet's
// operation executor puts that on the pod as "MountVolume.SetUp failed ...".
func failed(call Call, result Result, err error) Result {
	result.OK = false
	result.Error = err.Error()
	code, desc := codes.Unknown, err.Error()
	var wrapped interface{ GRPCStatus() *status.Status }
	if errors.As(err, &wrapped) && wrapped.GRPCStatus() != nil {
		code = wrapped.GRPCStatus().Code()
		result.Code = code.String()
		if direct, ok := err.(interface{ GRPCStatus() *status.Status }); ok {
			desc = direct.GRPCStatus().Message() // not wrapped: the status as it is
		}
	}
	if result.Masked {
		return result
	}
	volume := call.Volume
	if volume == "" {
		volume = "secrets-store-inline"
	}
	result.Event = fmt.Sprintf("MountVolume.SetUp failed for volume %q : rpc error: code = %s desc = %s",
		volume, code, desc)
	return result
}

// ---------------------------------------------------------------- writing the files
// pkg/util/fileutil: writer.go (validate, clean up what a provider wrote, write) and
// atomic_writer.go (the kubelet's AtomicWriter, as the driver carries it).

const (
	dataLink    = "..data"
	newDataLink = "..data_tmp"
)

func writePayloads(target string, files []*pb.File) error {
	for _, f := range files {
		if err := checkPath(f.GetPath()); err != nil {
			return err
		}
		if filepath.Clean(f.GetPath()) != f.GetPath() {
			return fmt.Errorf("invalid filepath: %q", f.GetPath())
		}
	}
	// A top-level name that a provider wrote as a plain file or directory is removed, so
	// that the writer can put its link there.
	for _, f := range files {
		top := filepath.Join(target, strings.Split(f.GetPath(), string(os.PathSeparator))[0])
		info, err := os.Lstat(top)
		if os.IsNotExist(err) {
			continue
		} else if err != nil {
			return fmt.Errorf("cleanup failure: %w", err)
		}
		if info.Mode()&os.ModeSymlink == 0 {
			if err := os.RemoveAll(top); err != nil {
				return fmt.Errorf("cleanup failure: %w", err)
			}
		}
	}
	if _, err := os.Stat(target); err != nil {
		return err
	}
	payload := map[string]*pb.File{}
	for _, f := range files {
		payload[filepath.Clean(f.GetPath())] = f
	}
	return atomicWrite(target, payload)
}

func checkPath(p string) error {
	switch {
	case p == "":
		return fmt.Errorf("invalid path: must not be empty: %q", p)
	case path.IsAbs(p):
		return fmt.Errorf("invalid path: must be relative path: %s", p)
	case len(p) > 4096:
		return fmt.Errorf("invalid path: must be less than or equal to %d characters", 4096)
	}
	parts := strings.Split(p, string(os.PathSeparator))
	for _, part := range parts {
		if part == ".." {
			return fmt.Errorf("invalid path: must not contain '..': %s", p)
		}
		if len(part) > 255 {
			return fmt.Errorf("invalid path: filenames must be less than or equal to %d characters", 255)
		}
	}
	if strings.HasPrefix(parts[0], "..") && len(parts[0]) > 2 {
		return fmt.Errorf("invalid path: must not start with '..': %s", p)
	}
	return nil
}

// atomicWrite: the files go to a new timestamped directory, links for new top-level names
// are made, `..data` is switched to the new directory in one rename, links the payload
// no longer has are removed, then the old directory. Nothing is written when every file
// already holds the same bytes (modes are not compared) and no name is to be removed.
// No lock: a writer racing it on the same target is the other writer's business.
func atomicWrite(target string, payload map[string]*pb.File) error {
	old, err := os.Readlink(filepath.Join(target, dataLink))
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	var stale []string
	if old != "" {
		oldDir := filepath.Join(target, old)
		stale, err = namesToRemove(payload, oldDir)
		if err != nil {
			return err
		}
		changed := false
		for name, f := range payload {
			current, err := os.ReadFile(filepath.Join(oldDir, name))
			if os.IsNotExist(err) || (err == nil && !bytes.Equal(current, f.GetContents())) {
				changed = true
				break
			} else if err != nil {
				return err
			}
		}
		if !changed && len(stale) == 0 {
			return nil
		}
	}
	dir, err := os.MkdirTemp(target, time.Now().UTC().Format("..2006_01_02_15_04_05."))
	if err != nil {
		return err
	}
	if err := os.Chmod(dir, 0755); err != nil {
		return err
	}
	for name, f := range payload {
		full := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(full), os.ModePerm); err != nil {
			return err
		}
		mode := os.FileMode(f.GetMode())
		if err := os.WriteFile(full, f.GetContents(), mode); err != nil {
			return err
		}
		if err := os.Chmod(full, mode); err != nil {
			return err
		}
	}
	for name := range payload {
		top := strings.SplitN(name, string(os.PathSeparator), 2)[0]
		if _, err := os.Readlink(filepath.Join(target, top)); os.IsNotExist(err) {
			if err := os.Symlink(filepath.Join(dataLink, top), filepath.Join(target, top)); err != nil {
				return err
			}
		}
	}
	tmp := filepath.Join(target, newDataLink)
	if err := os.Symlink(filepath.Base(dir), tmp); err != nil {
		os.RemoveAll(dir)
		return err
	}
	if err := os.Rename(tmp, filepath.Join(target, dataLink)); err != nil {
		os.Remove(tmp)
		os.RemoveAll(dir)
		return err
	}
	var last error
	for _, name := range stale {
		if !strings.Contains(name, string(os.PathSeparator)) {
			if err := os.Remove(filepath.Join(target, name)); err != nil {
				last = err
			}
		}
	}
	if last != nil {
		return last
	}
	if old != "" {
		return os.RemoveAll(filepath.Join(target, old))
	}
	return nil
}

// namesToRemove: every path under the old version directory that is neither a file of
// the payload nor one of its parent directories.
func namesToRemove(payload map[string]*pb.File, oldDir string) ([]string, error) {
	keep := map[string]bool{}
	for name := range payload {
		for p := name; p != "." && p != ""; p = filepath.Dir(p) {
			keep[p] = true
		}
	}
	var found []string
	err := filepath.Walk(oldDir, func(p string, _ os.FileInfo, _ error) error {
		rel, _ := filepath.Rel(oldDir, p)
		if rel != "." && !keep[rel] {
			found = append(found, rel)
		}
		return nil
	})
	if os.IsNotExist(err) {
		return nil, nil
	}
	sort.Strings(found)
	return found, err
}
