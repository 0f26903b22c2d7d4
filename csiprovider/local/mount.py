"""`csiprovider mount`: the driver's part, played locally.

Builds the MountRequest exactly as secrets-store-csi-driver does for a pod, calls the
provider over its Unix socket, writes the returned files with the same atomic layout,
and optionally renders `spec.secretObjects` as the driver's Secret sync would. With
`--watch` it re-mounts periodically like rotation, keeping the old files on error.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import signal
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

import grpc

from csiprovider import API_VERSION
from csiprovider import request as req
from csiprovider.atomic_writer import FileProjection, write_atomic
from csiprovider.compat.go import encoding_json as go_json
from csiprovider.local.secretsync import SyncError, dump_manifests, render_secrets
from csiprovider.local.spc import SecretProviderClass
from csiprovider.paths import PayloadError, validate_path
from csiprovider.v1alpha1 import service_pb2 as pb
from csiprovider.v1alpha1 import service_pb2_grpc as pb_grpc


@dataclass(frozen=True)
class MountOptions:
    spc: SecretProviderClass
    target: Path
    socket: Path
    pod_name: str = "local-pod"
    pod_namespace: str = "default"
    pod_uid: str = "00000000-0000-0000-0000-000000000000"
    service_account: str = "default"
    tokens: Mapping[str, str] = field(default_factory=dict, repr=False)  # audience -> token
    secrets: Mapping[str, str] | None = field(default=None, repr=False)  # None: no secret ref
    permission: int = 0o644
    sync_secret_out: Path | None = None
    watch: float | None = None
    timeout: float = 30.0


def build_attributes(opts: MountOptions) -> dict[str, str]:
    """SPC parameters, then the kubelet's volume context over them, then the tokens."""
    attributes = dict(opts.spc.parameters)
    attributes.update(
        {
            req.POD_NAME: opts.pod_name,
            req.POD_NAMESPACE: opts.pod_namespace,
            req.POD_UID: opts.pod_uid,
            req.SERVICE_ACCOUNT_NAME: opts.service_account,
            req.EPHEMERAL: "true",
            req.SECRET_PROVIDER_CLASS: opts.spc.name,
        }
    )
    if opts.tokens:
        # kubelet's json.Marshal of audience -> TokenRequestStatus (struct field order)
        attributes[req.SERVICE_ACCOUNT_TOKENS] = go_json.dumps(
            {
                aud: go_json.Ordered(token=tok, expirationTimestamp=token_expiry(tok))
                for aud, tok in opts.tokens.items()
            }
        ).decode()
    return attributes


def build_request(opts: MountOptions) -> pb.MountRequest:
    """The request the driver (v1.6) sends: every field Go's json.Marshal of a map (keys
    sorted, <, > and & escaped), `null` secrets for a volume without
    nodePublishSecretRef, the mode as a JSON number, no current object versions."""
    secrets = None if opts.secrets is None else dict(opts.secrets)
    return pb.MountRequest(
        attributes=go_json.dumps(build_attributes(opts)).decode(),
        secrets=go_json.dumps(secrets).decode(),
        target_path=str(opts.target.absolute()),
        permission=go_json.dumps(opts.permission).decode(),
    )


def token_expiry(token: str) -> str:
    """RFC 3339 expiry: the JWT's `exp` claim when readable, else one hour from now."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        when = datetime.fromtimestamp(int(claims["exp"]), UTC)
    except (IndexError, ValueError, KeyError, TypeError):
        when = datetime.now(UTC) + timedelta(hours=1)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


class MountFailed(Exception):
    """The provider refused the Mount; the text is what the pod event would say."""


async def mount_once(
    opts: MountOptions, stub: Any, current: Sequence[tuple[str, str]] = ()
) -> tuple[list[tuple[str, str]], list[pb.File], bool]:
    """One Mount, checked and written as the driver does (provider_client.go
    MountContent): returns (versions, files written, whether anything changed since
    `current`)."""
    try:
        response = await stub.Mount(build_request(opts), timeout=opts.timeout)
    except grpc.aio.AioRpcError as exc:
        raise MountFailed(
            f"failed to mount secrets store objects for pod {opts.pod_namespace}/"
            f"{opts.pod_name}, err: rpc error: code = {_code_name(exc.code())} desc = "
            f"{exc.details()}"
        ) from None
    if response.error.code:
        raise MountFailed(f"mount request failed with provider error code {response.error.code}")
    if not response.object_version:
        raise MountFailed("missing object versions (the driver refuses such a response)")
    versions = [(v.id, v.version) for v in response.object_version]
    changed = versions != list(current)
    if response.files:
        for f in response.files:
            try:
                validate_path(f.path)
            except PayloadError as exc:
                raise MountFailed(f"invalid path: {exc}") from None
            if os.path.normpath(f.path) != f.path:
                raise MountFailed(f"invalid filepath: {f.path!r}")
        changed = (
            write_atomic(
                opts.target,
                {f.path: FileProjection(data=f.contents, mode=f.mode) for f in response.files},
            )
            or changed
        )
    return versions, list(response.files), changed


async def run(opts: MountOptions, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Version, Mount, write, summarise; with --watch repeat until interrupted. What was
    mounted goes to `out`, errors to `err` (`csiprovider: error: ...`, as every command)."""
    opts.target.mkdir(parents=True, exist_ok=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    if not opts.socket.exists():
        name = opts.socket.stem
        print(
            f"csiprovider: error: no provider socket at {opts.socket}: start the daemon "
            f"serving this SPC's provider name, e.g. `csiprovider serve --name {name} "
            f"--providers-dir {opts.socket.parent}` (add --file-root DIR for file objects), "
            "or point --providers-dir/--socket at the running one",
            file=err,
        )
        return 2
    async with grpc.aio.insecure_channel(f"unix://{opts.socket.absolute()}") as channel:
        stub = pb_grpc.CSIDriverProviderStub(channel)
        try:
            version = await stub.Version(pb.VersionRequest(version=API_VERSION), timeout=5)
        except grpc.aio.AioRpcError as exc:
            print(
                f"csiprovider: error: cannot reach provider at {opts.socket}: "
                f"{exc.details()}; is `csiprovider serve --name {opts.socket.stem}` "
                "running?",
                file=err,
            )
            return 2
        print(
            f"provider {version.runtime_name} {version.runtime_version} "
            f"(API {version.version}) at {opts.socket}",
            file=out,
        )
        try:
            versions, files, _ = await mount_once(opts, stub)
        except MountFailed as exc:
            print(f"csiprovider: error: {exc}", file=err)
            return 1
        summarise(opts, versions, files, out)
        if not _sync(opts, out, err) and opts.watch is None:
            return 1
        while opts.watch is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=opts.watch)
            if stop.is_set():
                break
            try:
                new_versions, files, changed = await mount_once(opts, stub, versions)
            except MountFailed as exc:
                print(f"{_now()} rotation failed, keeping the mounted files: {exc}", file=err)
                continue
            if changed:
                rotated = sorted({object_id for object_id, _ in set(new_versions) ^ set(versions)})
                print(f"{_now()} rotated: {', '.join(rotated)}", file=out)
                summarise(opts, new_versions, files, out)
                _sync(opts, out, err)
            versions = new_versions
    return 0


def summarise(
    opts: MountOptions,
    versions: Sequence[tuple[str, str]],
    files: Sequence[pb.File],
    out: TextIO,
) -> None:
    """What was mounted: names, modes, sizes, versions — never contents."""
    where = "written by the provider" if not files else "written"
    print(f"mounted {len(versions)} object(s) into {opts.target} ({where})", file=out)
    if files:
        width = max(len(f.path) for f in files)
        for f in sorted(files, key=lambda f: f.path):
            print(f"  {f.path:<{width}}  {f.mode:04o}  {len(f.contents):>7} bytes", file=out)
    for object_id, version in versions:
        print(f"  version {object_id}: {version}", file=out)


def _sync(opts: MountOptions, out: TextIO, err: TextIO) -> bool:
    if opts.sync_secret_out is None:
        return True
    if not opts.spc.secret_objects:
        print("note: the SecretProviderClass has no secretObjects; nothing to sync", file=out)
    try:
        manifests = render_secrets(opts.spc.secret_objects, opts.target, opts.pod_namespace)
    except SyncError as exc:
        print(f"csiprovider: error: secret sync failed: {exc}", file=err)
        return False
    target = opts.sync_secret_out
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    with os.fdopen(fd, "w") as handle:
        handle.write(dump_manifests(manifests))
    os.chmod(tmp, 0o600)
    os.replace(tmp, target)
    names = ", ".join(m["metadata"]["name"] for m in manifests)
    print(f"synced {len(manifests)} Secret manifest(s) to {target}: {names}", file=out)
    return True


def _now() -> str:
    return datetime.now(UTC).strftime("%H:%M:%S")


def _code_name(code: grpc.StatusCode) -> str:
    """Go's spelling of gRPC codes, as the driver's pod events show them."""
    if code is grpc.StatusCode.OK:
        return "OK"
    if code is grpc.StatusCode.CANCELLED:
        return "Canceled"
    return "".join(part.capitalize() for part in code.name.split("_"))
