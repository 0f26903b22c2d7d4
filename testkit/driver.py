"""The Secrets Store CSI Driver and the sync controller, played by a Go program of ours
(testkit/go/driver/main.go) that calls the provider the way their Go code does.

It is built once per test session with Debian's Go, grpc-go 1.33 and protobuf-go, in
GOPATH mode and offline, against stubs generated here from proto/ by Debian's protoc and
its Go plugins. A `Driver` is one running harness process, started with the driver's own
flags; `mount()` is a NodePublishVolume (the pod's volume), `sync()` a SecretSync
reconcile of the sync controller, `version()` the driver's health check. Each returns
what the driver made of the answer, including the exact request it sent and the event a
pod would show.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from testkit import golang

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "testkit" / "go" / "driver" / "main.go"
PACKAGE = "csidriverharness"
POD_UID = "7f3c5a14-0d4e-4f1e-9c2a-6b1f0e9d2c11"


def build(out_dir: Path) -> Path:
    """The harness binary: stubs from proto/, then `go build` (GOPATH mode, offline)."""
    go = golang.go_binary()
    gopath = out_dir / "gopath"
    src = gopath / "src" / PACKAGE
    (src / "v1alpha1").mkdir(parents=True)
    shutil.copy(SOURCE, src / "main.go")
    mapping = f"Mv1alpha1/service.proto={PACKAGE}/v1alpha1"
    subprocess.run(
        [
            "protoc",
            f"-I{ROOT / 'proto'}",
            f"--go_out={src / 'v1alpha1'}",
            "--go_opt=paths=source_relative",
            f"--go_opt={mapping}",
            f"--go-grpc_out={src / 'v1alpha1'}",
            "--go-grpc_opt=paths=source_relative",
            f"--go-grpc_opt={mapping}",
            "v1alpha1/service.proto",
        ],
        check=True,
        capture_output=True,
    )
    for stub in (src / "v1alpha1" / "v1alpha1").glob("*.go"):  # paths=source_relative
        stub.rename(src / "v1alpha1" / stub.name)
    binary = out_dir / "csi-driver-harness"
    with tempfile.TemporaryDirectory(prefix="csiprovider-gocache-") as cache:
        env = golang.go_env(Path(cache))
        env["GOPATH"] = f"{gopath}{os.pathsep}{golang.GOPATH}"
        proc = subprocess.run(
            [str(go), "build", "-o", str(binary), "."],
            cwd=src,
            env=env,
            capture_output=True,
            text=True,
        )
    if proc.returncode != 0:
        raise RuntimeError(f"building the driver harness failed:\n{proc.stderr[-4000:]}")
    return binary


@dataclass
class Result:
    """What the driver made of one call (see testkit/go/driver/main.go Result)."""

    ok: bool
    sent: dict[str, str] = field(default_factory=dict)
    skipped: bool = False
    masked: bool = False
    code: str = ""
    error: str = ""
    event: str = ""
    object_versions: dict[str, str] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    wrote: bool = False
    logs: list[str] = field(default_factory=list)
    runtime_version: str = ""

    @classmethod
    def of(cls, raw: Mapping[str, Any]) -> Result:
        files = {k: base64.b64decode(v) for k, v in (raw.get("files") or {}).items()}
        return cls(
            ok=raw["ok"],
            sent=raw.get("sent") or {},
            skipped=raw.get("skipped", False),
            masked=raw.get("masked", False),
            code=raw.get("code", ""),
            error=raw.get("error", ""),
            event=raw.get("event", ""),
            object_versions=raw.get("object_versions") or {},
            files=files,
            wrote=raw.get("wrote", False),
            logs=raw.get("logs") or [],
            runtime_version=raw.get("runtime_version", ""),
        )

    @property
    def attributes(self) -> dict[str, str]:
        return dict(json.loads(self.sent["attributes"]))


def volume_context(
    spc: str,
    *,
    namespace: str = "default",
    pod: str = "app-0",
    uid: str = POD_UID,
    service_account: str = "default",
) -> dict[str, str]:
    """What kubelet puts in a CSI inline volume's context for the driver: the pod's
    identity (podInfoOnMount) and the volume's attributes. The tokens of the CSIDriver's
    tokenRequests are added by the harness (`tokens=` of `Driver.mount`), as kubelet
    marshals them."""
    return {
        "csi.storage.k8s.io/pod.name": pod,
        "csi.storage.k8s.io/pod.namespace": namespace,
        "csi.storage.k8s.io/pod.uid": uid,
        "csi.storage.k8s.io/serviceAccount.name": service_account,
        "csi.storage.k8s.io/ephemeral": "true",
        "secretProviderClass": spc,
    }


Tokens = Mapping[str, Mapping[str, str]]


def tokens(audiences: Mapping[str, str], expiry: str = "2030-01-01T00:00:00Z") -> Tokens:
    """audience -> token, as TokenRequest statuses."""
    return {aud: {"token": tok, "expirationTimestamp": expiry} for aud, tok in audiences.items()}


class Driver:
    """One running harness: the driver's node plugin (or the sync controller) on a node
    whose providers listen in `providers_dir`."""

    def __init__(
        self,
        binary: Path,
        providers_dir: Path,
        *,
        max_recv_bytes: int | None = None,
        rotation_poll: str | None = None,
    ) -> None:
        args = [
            str(binary),
            f"-provider-volume={providers_dir}",
            f"-additional-provider-volume-paths={providers_dir / 'additional'}",
        ]
        if max_recv_bytes is not None:
            args.append(f"-max-call-recv-msg-size={max_recv_bytes}")
        if rotation_poll is not None:
            args += ["-enable-secret-rotation", f"-rotation-poll-interval={rotation_poll}"]
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "GRPC_GO_RETRY": "on"},
        )
        self._lock = threading.Lock()

    def call(self, **call: Any) -> Result:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        with self._lock:
            self.proc.stdin.write(json.dumps(call) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        if not line:
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise RuntimeError(f"the driver harness exited: {err[-2000:]}")
        return Result.of(json.loads(line))

    def mount(
        self,
        provider: str,
        parameters: Mapping[str, str],
        target: Path,
        *,
        context: Mapping[str, str] | None = None,
        secrets: Mapping[str, str] | None = None,
        tokens: Tokens | None = None,
        tokens_in_secrets: bool = False,
        republish: bool = False,
        timeout: float = 0,
        volume: str = "secrets-store-inline",
    ) -> Result:
        """NodePublishVolume of a pod's inline volume. `secrets` None: no
        nodePublishSecretRef (the driver then sends `null`); `tokens` those of the
        CSIDriver's tokenRequests, in the volume context or (Kubernetes 1.35 opt-in) in
        the secrets."""
        return self.call(
            mode="driver",
            provider=provider,
            parameters=dict(parameters),
            volume_context=dict(context if context is not None else volume_context("spc")),
            secrets=None if secrets is None else dict(secrets),
            tokens=None if tokens is None else {k: dict(v) for k, v in tokens.items()},
            tokens_in_secrets=tokens_in_secrets,
            target_path=str(target),
            republish=republish,
            timeout=timeout,
            volume=volume,
        )

    def sync(
        self,
        provider: str,
        parameters: Mapping[str, str],
        *,
        namespace: str = "default",
        service_account: str = "default",
        tokens: Tokens | None = None,
        pod: str = "secrets-store-sync-controller-7d9f8-abcde",
        uid: str = "0b7c2e61-1f0a-4d5e-8a3b-9c4d5e6f7a8b",
    ) -> Result:
        """The sync controller's Mount for one SecretSync: its own pod name and UID, the
        SecretSync's namespace and service account, the tokens it minted."""
        return self.call(
            mode="sync",
            provider=provider,
            parameters=dict(parameters),
            namespace=namespace,
            service_account=service_account,
            tokens=None if tokens is None else {k: dict(v) for k, v in tokens.items()},
            pod_name=pod,
            pod_uid=uid,
        )

    def version(self, provider: str) -> Result:
        return self.call(mode="version", provider=provider)

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            self.proc.wait(30)


@contextmanager
def running(binary: Path, providers_dir: Path, **flags: Any) -> Iterator[Driver]:
    driver = Driver(binary, providers_dir, **flags)
    try:
        yield driver
    finally:
        driver.close()
