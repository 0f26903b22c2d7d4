"""Provider-writes mode: one writer per volume. Kubelet's republishes (Mounts of the same
target) and the daemon's own rotations write one target at the same time; the writes are
serialised, so no write fails, readers always see one complete set, and no timestamped
directory but the current one is left behind."""

from __future__ import annotations

import asyncio
import os
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from csiprovider.server import ServeConfig
from csiprovider.service import _WRITE_LOCKS, TargetLocks
from testkit.daemon import running
from testkit.requests import mount_request
from testkit.tracker import WatchedTracker

GENERATIONS = 4
NAMES = ("a", "b", "c")
VERSION_DIR = re.compile(r"\.\.\d{4}(?:_\d{2}){5}\.[A-Za-z0-9_]+")


def objects(generation: int) -> list[dict[str, Any]]:
    """Files a, b, c of one generation (each holds the generation number) and `tick`, a
    file that changes all the time so that rotations really publish new versions."""
    return [
        {"objectName": name, "backend": "file", "path": f"gen{generation}/{name}"} for name in NAMES
    ] + [{"objectName": "tick", "backend": "file", "path": "tick"}]


def read_once(target: Path) -> tuple[str, dict[str, str] | None]:
    """Resolve ..data once and read every file of that version: (version, files), files
    None when the version directory vanished under the reader."""
    version = os.readlink(target / "..data")
    try:
        fd = os.open(target / version, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        return version, None
    try:
        found = {}
        for name in os.listdir(fd):
            handle = os.open(name, os.O_RDONLY, dir_fd=fd)
            try:
                found[name] = os.read(handle, 64).decode()
            finally:
                os.close(handle)
        return version, found
    except FileNotFoundError:
        return version, None
    finally:
        os.close(fd)


class Readers:
    """Threads that read the volume the way pods do, recording what a pod must never see."""

    def __init__(self, target: Path, count: int = 3) -> None:
        self.target = target
        self.stop = threading.Event()
        self.problems: list[str] = []
        self.complete = 0
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(count)]

    def __enter__(self) -> Readers:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(60)

    def _problem(self, text: str) -> None:
        if len(self.problems) < 20:
            self.problems.append(text)

    def _run(self) -> None:
        target = self.target
        while not self.stop.is_set():
            # Through ..data resolved once: one complete generation, always.
            version, found = read_once(target)
            moved = os.readlink(target / "..data") != version
            if found is None or sorted(found) != sorted((*NAMES, "tick")):
                # A version directory only disappears after ..data has moved on.
                if not moved:
                    self._problem(
                        f"incomplete set while ..data stayed on {version}: "
                        f"{None if found is None else sorted(found)}"
                    )
            elif len({found[name] for name in NAMES}) != 1:
                self._problem(f"mixed generations behind {version}: {found}")
            else:
                self.complete += 1
            # Through the top-level names, as most pods read: every name is there, and
            # the generations only differ across a switch.
            version = os.readlink(target / "..data")
            values = {}
            for name in NAMES:
                try:
                    values[name] = (target / name).read_text()
                except FileNotFoundError:
                    values[name] = "<missing>"
            if os.readlink(target / "..data") == version:
                if "<missing>" in values.values():
                    self._problem(f"missing file while ..data stayed on {version}: {values}")
                elif len(set(values.values())) != 1:
                    self._problem(f"mixed generations without a switch: {values}")


def leftovers(target: Path) -> list[str]:
    """Hidden entries other than ..data and the version it names."""
    current = os.readlink(target / "..data")
    return sorted(
        n for n in os.listdir(target) if n.startswith("..") and n not in ("..data", current)
    )


async def test_concurrent_republishes_and_rotations_share_one_volume(
    serve_config: Callable[..., ServeConfig], file_root: Path, target: Path
) -> None:
    ns = file_root / "default"
    for generation in range(GENERATIONS):
        (ns / f"gen{generation}").mkdir()
        for name in NAMES:
            (ns / f"gen{generation}" / name).write_text(str(generation))
    (ns / "tick").write_text("0")
    # Rotation as fast as it goes: the tracker looks every 10 ms, volumes are due every 20 ms.
    tracker = WatchedTracker(120.0, check_every=0.01)
    config = serve_config(write_mode="provider", fetch_workers=8)
    rng = random.Random(20261124)

    def request(generation: int) -> Any:
        return mount_request(
            objects(generation), target_path=str(target), extra={"rotationPollInterval": "20ms"}
        )

    stop_ticking = threading.Event()

    def tick() -> None:  # the source changes atomically, over and over
        n = 0
        while not stop_ticking.is_set():
            n += 1
            (ns / ".tick.tmp").write_text(str(n))
            os.replace(ns / ".tick.tmp", ns / "tick")
            time.sleep(0.002)

    outcomes: Counter[str] = Counter()
    rounds = 0
    async with running(config, tracker) as stubs:
        stub = stubs["csiprovider"]
        await stub.Mount(request(0))
        ticker = threading.Thread(target=tick, daemon=True)
        ticker.start()
        try:
            with Readers(target) as readers:
                # 6 republishes at once, round after round, until at least 12 rounds ran,
                # rotations rewrote the volume 10 times meanwhile and the readers read 100
                # complete sets: progress counted, not time (a busy machine takes longer).
                def written() -> int:
                    return sum(r.wrote for r in tracker.rotations)

                while rounds < 12 or written() < 10 or readers.complete <= 100:
                    assert rounds < 1000, (rounds, written(), readers.complete)
                    replies = await asyncio.gather(
                        *(stub.Mount(request(rng.randrange(GENERATIONS))) for _ in range(6)),
                        return_exceptions=True,
                    )
                    rounds += 1
                    for reply in replies:
                        if isinstance(reply, grpc.aio.AioRpcError):
                            outcomes[reply.code().name] += 1
                        elif isinstance(reply, BaseException):
                            raise reply
                        else:
                            outcomes["OK"] += 1
        finally:
            stop_ticking.set()
            ticker.join(60)
        await stub.Mount(request(1))
        mounted = time.monotonic()

        # A rotation resolved before that Mount may still write its older generation after
        # it. Rotations of one volume run one after another, so once a rotation that began
        # after the Mount (of the request it left) has finished, nothing older can write
        # again; and the source no longer changes, so later rotations find nothing to write.
        await tracker.wait_for(
            lambda: any(r.started > mounted for r in tracker.rotations), "a later rotation"
        )
        assert not leftovers(target)
        current = os.readlink(target / "..data")
        assert VERSION_DIR.fullmatch(current)
        assert sorted(os.listdir(target)) == sorted(["..data", current, *NAMES, "tick"])
        assert {(target / name).read_text() for name in NAMES} == {"1"}

    assert len(_WRITE_LOCKS) == 0  # the daemon is gone: no lock left behind
    summary = (dict(outcomes), rounds, len(tracker.rotations), readers.complete, readers.problems)
    assert set(outcomes) == {"OK"} and readers.problems == [], summary


async def test_target_locks_serialise_one_path_and_forget_idle_ones(tmp_path: Path) -> None:
    locks = TargetLocks()
    events: list[str] = []
    sizes: list[int] = []

    async def write(path: str, tag: str) -> None:
        async with locks.hold(path):
            events.append(f"{tag}+")
            await asyncio.sleep(0.02)
            sizes.append(len(locks))
            events.append(f"{tag}-")

    # Two spellings of one target take turns; another target goes on in parallel.
    await asyncio.gather(
        write(str(tmp_path / "t"), "a"),
        write(f"{tmp_path}/./t/", "b"),
        write(str(tmp_path / "u"), "c"),
    )
    one_target = [e for e in events if e[0] in "ab"]
    assert one_target in (["a+", "a-", "b+", "b-"], ["b+", "b-", "a+", "a-"])
    assert events.index("c+") < events.index("c-") < max(events.index("a-"), events.index("b-"))
    assert max(sizes) == 2 and len(locks) == 0

    # A waiter cancelled (its Mount's deadline passed) leaves nothing behind either.
    async with locks.hold(str(tmp_path / "t")):
        waiter = asyncio.create_task(write(str(tmp_path / "t"), "d"))
        await asyncio.sleep(0.01)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
    assert len(locks) == 0 and "d+" not in events
