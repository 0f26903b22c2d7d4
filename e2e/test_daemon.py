"""The daemon process: sockets, shutdown, and bad inputs over a raw gRPC client."""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from csiprovider.v1alpha1 import service_pb2 as pb
from csiprovider.v1alpha1 import service_pb2_grpc as pb_grpc
from e2e.conftest import Daemon


def attrs(objects: str, namespace: str = "default") -> str:
    return json.dumps(
        {
            "csi.storage.k8s.io/pod.name": "web-0",
            "csi.storage.k8s.io/pod.namespace": namespace,
            "csi.storage.k8s.io/pod.uid": "uid-1",
            "csi.storage.k8s.io/serviceAccount.name": "web",
            "csi.storage.k8s.io/ephemeral": "true",
            "secretProviderClass": "web-spc",
            "objects": objects,
        }
    )


@pytest.fixture
def client(start_daemon: Callable[..., Daemon]) -> Iterator[tuple[Any, Daemon]]:
    daemon = start_daemon()
    with grpc.insecure_channel(f"unix://{daemon.socket()}") as channel:
        yield pb_grpc.CSIDriverProviderStub(channel), daemon


def call_mount(stub: Any, target: Path, objects: str = "", **fields: str) -> Any:
    request = pb.MountRequest(
        attributes=attrs(objects), secrets="{}", target_path=str(target), permission="420"
    )
    for name, value in fields.items():
        setattr(request, name, value)
    return stub.Mount(request, timeout=10)


def test_version_over_socket(client: tuple[Any, Daemon]) -> None:
    stub, daemon = client
    reply = stub.Version(pb.VersionRequest(version="v1alpha1"), timeout=5)
    assert reply.version == "v1alpha1" and reply.runtime_name == "csiprovider"
    assert stat.S_IMODE(daemon.socket().stat().st_mode) == 0o600


BAD = [
    (
        "malformed attributes",
        {"attributes": '{"objects": '},
        grpc.StatusCode.INVALID_ARGUMENT,
        "failed to parse attributes as JSON (Expecting value: line 1 column 13 (char 12)): "
        "MountRequest.attributes must be a JSON object of strings",
    ),
    (
        "bad permission",
        {"permission": '"rw"'},
        grpc.StatusCode.INVALID_ARGUMENT,
        "invalid permission '\"rw\"': expected a JSON decimal file mode between 0 and 511, "
        'e.g. "420" for 0644',
    ),
    (
        "missing target path",
        {"target_path": ""},
        grpc.StatusCode.INVALID_ARGUMENT,
        "missing target path: MountRequest.target_path must name the pod volume directory",
    ),
    (
        "traversal in objectName",
        {"objects": "- {objectName: ../../etc/x, backend: file, path: db/username}"},
        grpc.StatusCode.INVALID_ARGUMENT,
        "objects[0] (objectName '../../etc/x'): objectName '../../etc/x' is not a valid file name "
        "(must not contain '..': ../../etc/x); use a relative name without '..', e.g. 'db-password'",
    ),
    (
        "traversal in alias",
        {"objects": "- {objectName: a, backend: file, path: db/username, objectAlias: /etc/x}"},
        grpc.StatusCode.INVALID_ARGUMENT,
        "objects[0] (objectName 'a'): objectAlias '/etc/x' is not a valid file name "
        "(must be relative path: /etc/x); use a relative name without '..', e.g. 'db-password'",
    ),
    (
        "traversal in path",
        {"objects": "- {objectName: a, backend: file, path: ../other/theirs}"},
        grpc.StatusCode.INVALID_ARGUMENT,
        "objects[0] (objectName 'a'): invalid path '../other/theirs' (must not contain '..': "
        "../other/theirs); path must be relative to the namespace directory of the file backend, "
        "without '..'",
    ),
    (
        "duplicate names",
        {
            "objects": "- {objectName: a, backend: file, path: db/username}\n"
            "- {objectName: a, backend: file, path: db/password}"
        },
        grpc.StatusCode.INVALID_ARGUMENT,
        "objects[1] (objectName 'a'): duplicate objectName 'a', also used by objects[0] "
        "(objectName 'a'); give each object its own objectName",
    ),
]


@pytest.mark.parametrize(("case", "fields", "code", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_inputs(
    client: tuple[Any, Daemon],
    tmp_path: Path,
    case: str,
    fields: dict[str, str],
    code: grpc.StatusCode,
    message: str,
) -> None:
    stub, _ = client
    objects = fields.pop("objects", "- {objectName: a, backend: file, path: db/username}")
    target = tmp_path / "mnt"
    target.mkdir()
    with pytest.raises(grpc.RpcError) as info:
        call_mount(stub, target, objects, **fields)
    assert info.value.code() is code
    assert info.value.details() == message
    assert os.listdir(target) == []


def test_oversized_payload(client: tuple[Any, Daemon], tmp_path: Path, file_root: Path) -> None:
    stub, _ = client
    for name in ("big1", "big2"):
        (file_root / "default" / name).write_bytes(os.urandom(2 * 1024 * 1024 + 512))
    with pytest.raises(grpc.RpcError) as info:
        call_mount(
            stub,
            tmp_path,
            "- {objectName: big1, backend: file}\n- {objectName: big2, backend: file}",
        )
    assert info.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    details = info.value.details() or ""
    assert details.startswith("Mount response is 4195")
    assert "raise both limits together" in details and "--max-response-bytes" in details


def test_stale_socket_is_replaced(start_daemon: Callable[..., Daemon], tmp_path: Path) -> None:
    providers = tmp_path / "providers"
    providers.mkdir()
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(providers / "csiprovider.sock"))
    stale.close()  # the file stays behind, nobody listens: as after a crash
    daemon = start_daemon(providers_dir=providers)
    with grpc.insecure_channel(f"unix://{daemon.socket()}") as channel:
        reply = pb_grpc.CSIDriverProviderStub(channel).Version(pb.VersionRequest(), timeout=5)
    assert reply.runtime_name == "csiprovider"
    assert "removing stale socket" in daemon.log()


def test_live_socket_is_not_stolen(start_daemon: Callable[..., Daemon]) -> None:
    first = start_daemon()
    second = start_daemon(wait=False)
    assert second.proc.wait(20) == 1
    assert "is in use by another running provider" in second.log()
    assert first.proc.poll() is None and first.socket().exists()


def test_sigterm_drains_in_flight_mount_and_removes_sockets(
    start_daemon: Callable[..., Daemon], tmp_path: Path, file_root: Path
) -> None:
    daemon = start_daemon(names=("csiprovider", "second"))
    fifo = file_root / "default" / "slow"
    os.mkfifo(fifo)  # the read blocks until a writer shows up: an in-flight Mount
    result: dict[str, Any] = {}

    def mount() -> None:
        with grpc.insecure_channel(f"unix://{daemon.socket()}") as channel:
            stub = pb_grpc.CSIDriverProviderStub(channel)
            try:
                result["reply"] = call_mount(stub, tmp_path, "- {objectName: slow, backend: file}")
            except grpc.RpcError as exc:
                result["error"] = exc

    thread = threading.Thread(target=mount)
    thread.start()
    # The Mount has reached the blocking read once the daemon holds the FIFO open for
    # reading: only then does opening its write end without blocking succeed.
    writer = wait_for(lambda: _open_for_writing(fifo), "the Mount to open the FIFO")
    daemon.proc.send_signal(signal.SIGTERM)
    wait_for(lambda: "stopping: draining in-flight mounts" in daemon.log(), "the drain")
    assert daemon.proc.poll() is None, "daemon exited with a Mount in flight"
    os.write(writer, b"late-value")
    os.close(writer)
    thread.join(60)
    assert daemon.proc.wait(60) == 0
    assert "error" not in result, result.get("error")
    assert result["reply"].files[0].contents == b"late-value"
    assert not daemon.socket().exists() and not daemon.socket("second").exists()


def test_unusable_socket_path_is_a_clear_error(
    start_daemon: Callable[..., Daemon], tmp_path: Path
) -> None:
    too_long = tmp_path / ("d" * 120)
    daemon = start_daemon(providers_dir=too_long, wait=False)
    assert daemon.proc.wait(20) == 1
    assert "shorter than 108 bytes (the Unix socket limit)" in daemon.log()
    assert "Traceback" not in daemon.log()


def _open_for_writing(fifo: Path) -> int | None:
    try:
        return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as exc:  # ENXIO: no reader has it open yet
        if exc.errno != errno.ENXIO:
            raise
        return None


def wait_for(found: Callable[[], Any], what: str) -> Any:
    """Until `found()` gives something (60 s is only a failure guard)."""
    guard = time.monotonic() + 60
    while (value := found()) is None or value is False:
        assert time.monotonic() < guard, f"waited 60 s for {what}"
        time.sleep(0.02)
    return value
