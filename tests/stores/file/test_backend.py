"""The file backend confines a pod to its namespace directory."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from csiprovider.errors import MountError
from csiprovider.model import Encoding, MountObject
from csiprovider.server import ServeConfig
from csiprovider.stores.file.backend import FileBackend
from csiprovider.stores.file.source import FileSource
from testkit.daemon import running
from testkit.requests import mount_request


def obj(path: str, namespace: str = "default") -> MountObject:
    return MountObject(
        index=0,
        backend="file",
        object_name="o",
        file_name="o",
        mode=0o644,
        encoding=Encoding.UTF8,
        source=FileSource(namespace, path),
        spec_json="{}",
    )


def test_reads_file(file_root: Path) -> None:
    assert FileBackend(file_root).fetch(obj("db/password")) == b"pw-0123456789"


def test_missing_file_is_not_found(file_root: Path) -> None:
    with pytest.raises(MountError) as info:
        FileBackend(file_root).fetch(obj("db/nope"))
    assert info.value.code is grpc.StatusCode.NOT_FOUND
    assert "file 'db/nope' not found" in info.value.message
    assert "namespace 'default'" in info.value.message


def test_symlink_out_of_namespace_is_refused(file_root: Path) -> None:
    os.symlink(file_root / "other" / "theirs", file_root / "default" / "sneaky")
    with pytest.raises(MountError) as info:
        FileBackend(file_root).fetch(obj("sneaky"))
    assert info.value.code is grpc.StatusCode.PERMISSION_DENIED
    assert "resolves outside namespace 'default'" in info.value.message
    assert "other-namespace-secret" not in info.value.message


def test_symlink_within_namespace_is_followed(file_root: Path) -> None:
    os.symlink("db/username", file_root / "default" / "user-link")
    assert FileBackend(file_root).fetch(obj("user-link")) == b"app_user"


def test_directory_is_invalid(file_root: Path) -> None:
    with pytest.raises(MountError) as info:
        FileBackend(file_root).fetch(obj("db"))
    assert info.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert "is a directory" in info.value.message


def test_unreadable_file_is_invalid(file_root: Path) -> None:
    # A socket cannot be opened for reading, not even by root (which CI runs as).
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(file_root / "default" / "sock"))
        with pytest.raises(MountError) as info:
            FileBackend(file_root).fetch(obj("sock"))
    assert info.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert "cannot read 'sock'" in info.value.message


async def test_no_cross_namespace_sharing_with_the_cache_on(
    serve_config: Callable[..., ServeConfig], file_root: Path
) -> None:
    """Same path, same SPC, two namespaces, at once and one after the other: each pod
    gets its own namespace's file, never the other's (shared or cached)."""
    (file_root / "other" / "db").mkdir()
    (file_root / "other" / "db" / "username").write_text("other_user")
    objects = [{"objectName": "u", "backend": "file", "path": "db/username"}]
    async with running(serve_config(cache_ttl=60.0)) as stubs:
        stub = stubs["csiprovider"]
        for _ in range(2):
            mine, theirs = await asyncio.gather(
                stub.Mount(mount_request(objects, namespace="default")),
                stub.Mount(mount_request(objects, namespace="other")),
            )
            assert [f.contents for f in mine.files] == [b"app_user"]
            assert [f.contents for f in theirs.files] == [b"other_user"]
