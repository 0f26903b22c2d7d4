"""Version and Mount through the real grpc.aio server on a Unix socket."""

from __future__ import annotations

import json
import logging
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from csiprovider import __version__
from csiprovider.server import ServeConfig
from csiprovider.v1alpha1 import service_pb2 as pb
from testkit.daemon import running
from testkit.requests import mount_request, pod_volume

DB = [
    {"objectName": "db-username", "backend": "file", "path": "db/username"},
    {
        "objectName": "db-password",
        "backend": "file",
        "path": "db/password",
        "objectAlias": "password",
        "filePermission": "0600",
    },
]


async def test_version(stub: Any) -> None:
    reply = await stub.Version(pb.VersionRequest(version="v1alpha1"))
    assert (reply.version, reply.runtime_name, reply.runtime_version) == (
        "v1alpha1",
        "csiprovider",
        __version__,
    )


async def test_mount_driver_mode_returns_files(stub: Any, target: Path) -> None:
    reply = await stub.Mount(mount_request(DB, target_path=str(target)))
    assert [(f.path, f.mode, f.contents) for f in reply.files] == [
        ("db-username", 0o644, b"app_user"),
        ("password", 0o600, b"pw-0123456789"),
    ]
    assert [v.id for v in reply.object_version] == ["db-username", "db-password"]
    assert all(v.version for v in reply.object_version)
    assert os.listdir(target) == []  # the driver writes in driver mode, not us


async def test_versions_stable_and_change_with_content(
    stub: Any, target: Path, file_root: Path
) -> None:
    first = await stub.Mount(mount_request(DB, target_path=str(target)))
    again = await stub.Mount(mount_request(DB, target_path=str(target)))
    assert list(first.object_version) == list(again.object_version)
    (file_root / "default" / "db" / "password").write_text("rotated")
    rotated = await stub.Mount(mount_request(DB, target_path=str(target)))
    assert rotated.object_version[0] == first.object_version[0]
    assert rotated.object_version[1].version != first.object_version[1].version


async def test_versions_survive_restart_with_key_file(
    serve_config: Callable[..., ServeConfig], target: Path
) -> None:
    versions = []
    for _ in range(2):
        async with running(serve_config()) as stubs:
            reply = await stubs["csiprovider"].Mount(mount_request(DB, target_path=str(target)))
            versions.append(list(reply.object_version))
    assert versions[0] == versions[1]


async def test_provider_write_mode(serve_config: Callable[..., ServeConfig], target: Path) -> None:
    async with running(serve_config(write_mode="provider")) as stubs:
        reply = await stubs["csiprovider"].Mount(mount_request(DB, target_path=str(target)))
    assert list(reply.files) == []
    assert [v.id for v in reply.object_version] == ["db-username", "db-password"]
    assert (target / "password").read_bytes() == b"pw-0123456789"
    assert stat.S_IMODE((target / "password").stat().st_mode) == 0o600
    assert os.readlink(target / "..data").startswith("..")
    assert sorted(p for p in os.listdir(target) if not p.startswith("..")) == [
        "db-username",
        "password",
    ]


async def test_provider_mode_missing_target(
    serve_config: Callable[..., ServeConfig], tmp_path: Path
) -> None:
    async with running(serve_config(write_mode="provider")) as stubs:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stubs["csiprovider"].Mount(
                mount_request(DB, target_path=str(pod_volume(tmp_path / "pods") / "absent"))
            )
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "is not an existing directory" in (info.value.details() or "")
    assert not (tmp_path / "absent").exists()


async def test_errors_reach_driver_with_code(stub: Any, target: Path) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.Mount(
            mount_request(
                [{"objectName": "x", "backend": "file", "path": "nope"}], target_path=str(target)
            )
        )
    assert info.value.code() is grpc.StatusCode.NOT_FOUND
    assert "objects[0] (objectName 'x'): file 'nope' not found" in (info.value.details() or "")


async def test_other_namespace_is_invisible(stub: Any, target: Path) -> None:
    objects = [{"objectName": "theirs", "backend": "file", "path": "theirs"}]
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.Mount(mount_request(objects, target_path=str(target)))
    assert info.value.code() is grpc.StatusCode.NOT_FOUND
    reply = await stub.Mount(mount_request(objects, target_path=str(target), namespace="other"))
    assert reply.files[0].contents == b"other-namespace-secret"


async def test_oversized_response_is_refused(stub: Any, target: Path, file_root: Path) -> None:
    for name in ("big1", "big2"):
        (file_root / "default" / name).write_bytes(b"x" * (2 * 1024 * 1024 + 1))
    objects = [{"objectName": n, "backend": "file"} for n in ("big1", "big2")]
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.Mount(mount_request(objects, target_path=str(target)))
    assert info.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED  # the driver retries not
    details = info.value.details() or ""
    assert "above this provider's --max-response-bytes (4194304" in details
    assert "the driver's --max-call-recv-msg-size and this provider's --max-response-bytes" in (
        details
    )


async def test_mount_log_line_has_names_not_values(
    stub: Any, target: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    await stub.Mount(mount_request(DB, target_path=str(target)))
    with pytest.raises(grpc.aio.AioRpcError):
        await stub.Mount(
            mount_request(
                [{"objectName": "p", "backend": "file", "path": "db/password", "encoding": "hex"}],
                target_path=str(target),
            )
        )
    records = [r for r in caplog.records if r.name == "csiprovider.mount"]
    assert len(records) == 2
    ok = records[0].fields  # type: ignore[attr-defined]
    assert ok["result"] == "OK" and ok["objects"] == ["db-username", "db-password"]
    assert ok["pod"] == "default/app-0" and ok["spc"] == "app-secrets"
    assert records[1].fields["result"] == "INVALID_ARGUMENT"  # type: ignore[attr-defined]
    dump = json.dumps([r.__dict__ for r in caplog.records], default=str)
    assert "pw-0123456789" not in dump and "app_user" not in dump


async def test_one_socket_per_name(
    serve_config: Callable[..., ServeConfig], tmp_path: Path
) -> None:
    config = serve_config(names=["csiprovider", "other"])
    async with running(config) as stubs:
        for name in ("csiprovider", "other"):
            sock = config.providers_dir / f"{name}.sock"
            assert stat.S_ISSOCK(sock.stat().st_mode)
            assert stat.S_IMODE(sock.stat().st_mode) == 0o600
            assert (await stubs[name].Version(pb.VersionRequest())).runtime_name == "csiprovider"
    assert list(config.providers_dir.iterdir()) == []  # sockets removed on stop


async def test_warns_above_secret_sync_limit(
    stub: Any, target: Path, file_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (file_root / "default" / "big").write_bytes(b"x" * (1024 * 1024 + 1))
    reply = await stub.Mount(
        mount_request([{"objectName": "big", "backend": "file"}], target_path=str(target))
    )
    assert len(reply.files[0].contents) == 1024 * 1024 + 1
    assert any(
        "syncing it to a Kubernetes Secret will fail" in r.getMessage() for r in caplog.records
    )


async def test_shutdown_leaves_a_socket_another_provider_took_over(
    serve_config: Callable[..., ServeConfig],
) -> None:
    """vault-csi-provider and ASCP replace whatever sits at their socket path when they
    start: our shutdown must not delete their new socket."""
    import socket as sockets

    config = serve_config(names=["vault"])
    path = config.providers_dir / "vault.sock"
    other = sockets.socket(sockets.AF_UNIX)
    try:
        async with running(config):
            path.unlink()
            other.bind(str(path))  # the other provider's socket now
        assert path.exists()
    finally:
        other.close()
