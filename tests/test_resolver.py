"""The resolver fetches objects of one Mount in parallel, once per distinct source,
and names the slow object when the deadline passes."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

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

GUARD = 60.0  # seconds: only against a hang, never the thing asserted
T = TypeVar("T")


async def until(condition: Callable[[], bool]) -> None:
    """Wait until `condition` holds (GUARD only against a hang)."""
    loop = asyncio.get_running_loop()
    guard = loop.time() + GUARD
    while not condition():
        assert loop.time() < guard, "the awaited condition did not hold in time"
        await asyncio.sleep(0.01)


class NotQuick(FileBackend):
    """The real file backend, every read in a thread (as a network store's)."""

    def quick(self, obj: MountObject) -> bool:
        return False


class HeldExecutor(Executor):
    """Runs nothing until the test says so: what it holds are the backend calls in flight.
    No thread is involved, so the event loop alone decides what is handed over, the same
    on any machine."""

    def __init__(self) -> None:
        self.held: list[tuple[Future[Any], Callable[[], Any]]] = []

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        future: Future[T] = Future()
        self.held.append((future, functools.partial(fn, *args, **kwargs)))
        return future

    def run_oldest(self) -> None:
        future, call = self.held.pop(0)
        try:
            future.set_result(call())
        except Exception as exc:
            future.set_exception(exc)


async def settled() -> None:
    """Let the event loop take every step it can. With no thread and no timer due, a
    fixed number of turns is enough however slow the machine is."""
    for _ in range(100):
        await asyncio.sleep(0)


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
        self.barrier = threading.Barrier(parties, timeout=GUARD)

    def fetch(self, obj: MountObject, grant: Grant | None = None, deadline: float = 0.0) -> Any:
        self.barrier.wait()
        return super().fetch(obj, grant, deadline)


class StuckBackend(FileBackend):
    """Fetches of `stuck_path` (None: of every path) block until released; `entered` is
    set when the first of them has begun."""

    def quick(self, obj: MountObject) -> bool:
        return False  # blocks: needs a thread

    def __init__(self, root: Path, stuck_path: str | None) -> None:
        super().__init__(root)
        self.stuck_path = stuck_path
        self.entered = threading.Event()
        self.release = threading.Event()

    def fetch(self, obj: MountObject, grant: Grant | None = None, deadline: float = 0.0) -> Any:
        assert isinstance(obj.source, FileSource)
        if self.stuck_path in (None, obj.source.path):
            self.entered.set()
            self.release.wait(GUARD)
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
    # With sequential fetches the barrier would never fill: the Mount's deadline passes.
    result = await resolver(backend, executor).resolve(objs, timeout=30)
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
            await resolver(backend, executor).resolve(objs, timeout=1.0)
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


async def test_limits_are_per_backend_instance(file_root: Path) -> None:
    """One backend under two names has one limit: 2 in flight, not 4."""
    for i in range(6):
        (file_root / "default" / f"s{i}").write_text(str(i))
    calls = HeldExecutor()
    shared = NotQuick(file_root)
    resolver_ = Resolver(
        {"file": shared, "alias": shared}, Versioner(b"k" * 32), calls, backend_concurrency=2
    )
    objs = fetched([{"objectName": f"s{i}", "backend": "file"} for i in range(6)])
    renamed = [dataclasses.replace(o, backend="alias") for o in objs[3:]]
    mount = asyncio.ensure_future(resolver_.resolve([*objs[:3], *renamed], timeout=GUARD))
    most = 0
    while not mount.done():
        await settled()  # everything that may start has started
        most = max(most, len(calls.held))
        assert calls.held or mount.done(), "the Mount waits, but for no backend call"
        if calls.held:
            calls.run_oldest()
    assert len(mount.result().files) == 6
    assert most == 2


async def test_waiting_for_a_stuck_backend_holds_no_thread(file_root: Path) -> None:
    """Two threads, a backend stuck with a limit of 1: the calls queued behind the stuck
    one wait off-thread, so another backend's Mount still gets the other thread."""
    for i in range(4):
        (file_root / "default" / f"s{i}").write_text(str(i))
    stuck = StuckBackend(file_root, None)  # every read blocks until released
    with ThreadPoolExecutor(2) as pool:
        resolver_ = Resolver(
            {"file": stuck, "other": NotQuick(file_root)},
            Versioner(b"k" * 32),
            pool,
            backend_concurrency=1,
        )
        waiting = [
            asyncio.ensure_future(
                resolver_.resolve(objects([{"objectName": f"s{i}", "backend": "file"}]), GUARD)
            )
            for i in range(4)
        ]
        other = [
            dataclasses.replace(o, backend="other")
            for o in fetched([{"objectName": "u", "backend": "file", "path": "db/username"}])
        ]
        try:
            await until(stuck.entered.is_set)  # one read holds a thread, 3 wait for the slot
            # If the waiting reads held threads, this read would find none before its
            # deadline: every read of `file` is stuck until the release below.
            result = await resolver_.resolve(other, timeout=30)
        finally:
            stuck.release.set()
        await asyncio.gather(*waiting)
    assert result.files[0].contents == b"app_user"


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
    # the siblings finish (and fail) after the Mount ended
    current = asyncio.current_task()
    await until(lambda: asyncio.all_tasks() <= {current})
    gc.collect()
    await asyncio.sleep(0)
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]
