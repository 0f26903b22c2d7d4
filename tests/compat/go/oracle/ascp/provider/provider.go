// Package provider has the shape of ASCP's SecretDescriptor and its nested structs: the
// JSON tags and Go types that sigs.k8s.io/yaml decodes `objects` into (the package is
// called provider so that Go's type errors name "provider.SecretDescriptor").
package provider

// SecretDescriptor is one entry of ASCP's `objects` (only the decoded fields).
type SecretDescriptor struct {
	ObjectName         string              `json:"objectName"`
	ObjectAlias        string              `json:"objectAlias"`
	ObjectVersion      string              `json:"objectVersion"`
	ObjectVersionLabel string              `json:"objectVersionLabel"`
	ObjectType         string              `json:"objectType"`
	FilePermission     string              `json:"filePermission"`
	JMESPath           []JMESPathEntry     `json:"jmesPath"`
	FailoverObject     FailoverObjectEntry `json:"failoverObject"`

	translate string `json:"-"`
}

// JMESPathEntry selects one key of a JSON secret.
type JMESPathEntry struct {
	Path           string `json:"path"`
	ObjectAlias    string `json:"objectAlias"`
	FilePermission string `json:"filePermission"`
}

// FailoverObjectEntry names the secret in the failover region.
type FailoverObjectEntry struct {
	ObjectName         string `json:"objectName"`
	ObjectVersion      string `json:"objectVersion"`
	ObjectVersionLabel string `json:"objectVersionLabel"`
}

// Translate keeps the unexported field in use (ASCP has it, so the struct's layout is
// the same for sigs.k8s.io/yaml's field lookup).
func (d *SecretDescriptor) Translate() string { return d.translate }
