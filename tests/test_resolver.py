"""The resolver fetches objects of one Mount in parallel, once per distinct source,
and names the slow object when the deadline passes."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import pytest

from csiprovider.errors import MountError
from csiprovider.model import MountObject, SpcObject
from csiprovider.native import dialect as native
from csiprovider.request import parse_mount_request
from csiprovider.resolver import Resolver
from csiprovider.stores import Grant
from csiprovider.stores.file.backend import FileBackend
from csiprovider.stores.file.source import FileSource
from csiprovider.versions import Versioner
from testkit.requests import mount_request


class CountingBackend(FileBackend):
    """The real file backend, counting calls per source."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.calls: dict[Any, int] = {}
        self.lock = threading.Lock()

    def fetch(self, obj: MountObject, grant: Grant | None = None, deadline: float = 0.0) -> Any:
        with self.lock:
            self.calls[obj.source] = self.calls.get(obj.source, 0) + 1
        return super().fetch(obj, grant, deadline)


class BarrierBackend(FileBackend):
    """Every fetch waits until `parties` fetches are in flight at once."""

    def quick(self, obj: MountObject) -> bool:
        return False  # blocks: needs a thread

    def __init__(self, root: Path, parties: int) -> None:
        super().__init__(root)
        self.barrier = threading.Barrier(parties, timeout=5)

    def fetch(self, obj: MountObject, grant: Grant | None = None, deadline: float = 0.0) -> Any:
        self.barrier.wait()
        return super().fetch(obj, grant, deadline)


class StuckBackend(FileBackend):
    """Fetches of `stuck_path` block until released."""

    def quick(self, obj: MountObject) -> bool:
        return False  # blocks: needs a thread

    def __init__(self, root: Path, stuck_path: str) -> None:
        super().__init__(root)
        self.stuck_path = stuck_path
        self.release = threading.Event()

    def fetch(self, obj: MountObject, grant: Grant | None = None, deadline: float = 0.0) -> Any:
        assert isinstance(obj.source, FileSource)
        if obj.source.path == self.stuck_path:
            self.release.wait(10)
        return super().fetch(obj, grant, deadline)


def objects(spec: list[dict[str, Any]]) -> list[SpcObject]:
    return native.parse(parse_mount_request(mount_request(spec)))


def fetched(spec: list[dict[str, Any]]) -> list[MountObject]:
    """Objects of a spec without templates."""
    return [o for o in objects(spec) if isinstance(o, MountObject)]


@pytest.fixture
def executor() -> Any:
    with ThreadPoolExecutor(8) as pool:
        yield pool


def resolver(backend: FileBackend, executor: Any) -> Resolver:
    return Resolver({"file": backend}, Versioner(b"k" * 32), executor)


async def test_same_source_is_fetched_once(file_root: Path, executor: Any) -> None:
    backend = CountingBackend(file_root)
    objs = objects(
        [
            {"objectName": "password", "backend": "file", "path": "db/password"},
            {"objectName": "password-copy", "backend": "file", "path": "db/password"},
            {"objectName": "username", "backend": "file", "path": "db/username"},
        ]
    )
    result = await resolver(backend, executor).resolve(objs, timeout=5)
    assert sorted(backend.calls.values()) == [1, 1]
    assert [f.path for f in result.files] == ["password", "password-copy", "username"]
    assert result.files[0].contents == result.files[1].contents == b"pw-0123456789"
    # Same content, different objects: versions differ (the HMAC covers the object's spec).
    assert result.versions[0][1] != result.versions[1][1]


async def test_objects_are_fetched_in_parallel(file_root: Path, executor: Any) -> None:
    for i in range(4):
        (file_root / "default" / f"s{i}").write_text(str(i))
    backend = BarrierBackend(file_root, parties=4)
    objs = objects([{"objectName": f"s{i}", "backend": "file"} for i in range(4)])
    # With sequential fetches the barrier would never fill and time out.
    result = await resolver(backend, executor).resolve(objs, timeout=10)
    assert [f.contents for f in result.files] == [b"0", b"1", b"2", b"3"]


async def test_deadline_names_the_slow_object(file_root: Path, executor: Any) -> None:
    backend = StuckBackend(file_root, "db/password")
    objs = objects(
        [
            {"objectName": "user", "backend": "file", "path": "db/username"},
            {"objectName": "pass", "backend": "file", "path": "db/password"},
        ]
    )
    try:
        with pytest.raises(MountError) as info:
            await resolver(backend, executor).resolve(objs, timeout=0.3)
    finally:
        backend.release.set()
    assert info.value.code is grpc.StatusCode.DEADLINE_EXCEEDED
    assert "still waiting for objects[1] (objectName 'pass')" in info.value.message
    assert "user" not in info.value.message.split("waiting for")[1]


async def test_first_error_fails_fast(file_root: Path, executor: Any) -> None:
    backend = StuckBackend(file_root, "db/password")
    objs = objects(
        [
            {"objectName": "pass", "backend": "file", "path": "db/password"},
            {"objectName": "missing", "backend": "file", "path": "nope"},
        ]
    )
    try:
        with pytest.raises(MountError) as info:
            await resolver(backend, executor).resolve(objs, timeout=5)
    finally:
        backend.release.set()
    assert info.value.code is grpc.StatusCode.NOT_FOUND
    assert "objectName 'missing'" in info.value.message


async def test_bad_encoding_names_object_not_content(file_root: Path, executor: Any) -> None:
    objs = objects(
        [{"objectName": "pw", "backend": "file", "path": "db/password", "encoding": "base64"}]
    )
    with pytest.raises(MountError) as info:
        await resolver(FileBackend(file_root), executor).resolve(objs, timeout=5)
    assert info.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert "objects[0] (objectName 'pw'): content is not valid base64" in info.value.message
    assert "pw-0123456789" not in info.value.message


async def test_backend_not_enabled(executor: Any) -> None:
    objs = objects([{"objectName": "a", "backend": "file"}])
    with pytest.raises(MountError) as info:
        await Resolver({}, Versioner(b"k" * 32), executor).resolve(objs, timeout=5)
    assert info.value.code is grpc.StatusCode.FAILED_PRECONDITION
    assert "--file-root" in info.value.message


class CrashingBackend(FileBackend):
    """A backend with a bug: its exception message carries a value."""

    def fetch(self, obj: MountObject, grant: Grant | None = None, deadline: float = 0.0) -> Any:
        raise KeyError("pw-0123456789")


async def test_a_backend_bug_logs_where_not_what(
    file_root: Path, executor: Any, caplog: pytest.LogCaptureFixture
) -> None:
    objs = objects([{"objectName": "pw", "backend": "file", "path": "db/password"}])
    with pytest.raises(MountError) as info:
        await resolver(CrashingBackend(file_root), executor).resolve(objs, timeout=5)
    assert info.value.code is grpc.StatusCode.INTERNAL
    [record] = [r for r in caplog.records if r.getMessage() == "backend crashed"]
    fields = record.__dict__["fields"]
    assert fields["error_type"] == "KeyError"
    assert any(f.startswith("test_resolver.py:") and f.endswith(":fetch") for f in fields["frames"])
    assert "pw-0123456789" not in repr(fields) + info.value.message


async def test_limits_are_per_backend_instance(file_root: Path, executor: Any) -> None:
    """One backend under two names has one limit: 2 in flight, not 4."""
    for i in range(6):
        (file_root / "default" / f"s{i}").write_text(str(i))
    in_flight, most = [0], [0]
    lock = threading.Lock()

    class Slow(FileBackend):
        def quick(self, obj: MountObject) -> bool:
            return False

        def fetch(self, obj: MountObject, grant: Grant | None = None, deadline: float = 0.0) -> Any:
            with lock:
                in_flight[0] += 1
                most[0] = max(most[0], in_flight[0])
            time.sleep(0.05)
            with lock:
                in_flight[0] -= 1
            return super().fetch(obj, grant, deadline)

    shared = Slow(file_root)
    resolver_ = Resolver(
        {"file": shared, "alias": shared}, Versioner(b"k" * 32), executor, backend_concurrency=2
    )
    objs = fetched([{"objectName": f"s{i}", "backend": "file"} for i in range(6)])
    renamed = [dataclasses.replace(o, backend="alias") for o in objs[3:]]
    result = await resolver_.resolve([*objs[:3], *renamed], timeout=10)
    assert len(result.files) == 6
    assert most[0] == 2


async def test_waiting_for_a_stuck_backend_holds_no_thread(file_root: Path) -> None:
    """Two threads, a backend stuck on one object with a limit of 1: the queued calls
    wait off-thread, so the other backend's Mount still runs at once."""
    stuck = StuckBackend(file_root, "db/password")
    free = FileBackend(file_root)
    with ThreadPoolExecutor(2) as pool:
        resolver_ = Resolver(
            {"file": stuck, "other": free}, Versioner(b"k" * 32), pool, backend_concurrency=1
        )
        waiting = [
            asyncio.ensure_future(
                resolver_.resolve(
                    objects([{"objectName": "p", "backend": "file", "path": "db/password"}]),
                    timeout=5,
                )
            )
            for _ in range(4)
        ]
        await asyncio.sleep(0.1)
        quick = [
            dataclasses.replace(o, backend="other")
            for o in fetched([{"objectName": "u", "backend": "file", "path": "db/username"}])
        ]
        started = time.monotonic()
        result = await resolver_.resolve(quick, timeout=5)
        took = time.monotonic() - started
        stuck.release.set()
        await asyncio.gather(*waiting)
    assert result.files[0].contents == b"app_user"
    assert took < 1.0


async def test_a_failed_mount_leaves_no_unretrieved_exception(
    file_root: Path, executor: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The first failure ends the Mount; the siblings that fail later are still
    retrieved, so asyncio never logs "exception was never retrieved"."""
    import gc

    objs = objects(
        [
            {"objectName": "missing", "backend": "file", "path": "nope"},
            *({"objectName": f"m{i}", "backend": "file", "path": f"nope{i}"} for i in range(5)),
        ]
    )
    for _ in range(3):
        with pytest.raises(MountError):
            await resolver(FileBackend(file_root), executor).resolve(objs, timeout=5)
    await asyncio.sleep(0.2)  # the siblings finish (and fail) after the Mount ended
    gc.collect()
    await asyncio.sleep(0)
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]
