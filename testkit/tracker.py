"""The daemon's rotation tracker, reporting what happens in it, so that a test waits for
rotations, polls and file-watcher reports instead of sleeping for as long as they usually
take: on a busy machine everything happens later, but in order. Given to the daemon
through `testkit.daemon.running(config, tracker)` (the `serve(tracker=)` seam)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from csiprovider.request import MountParams
from csiprovider.rotation import Rewrite, Tracker
from csiprovider.v1alpha1 import service_pb2 as pb

GUARD = 60.0  # seconds: only against a hang, never the thing asserted


@dataclass(frozen=True)
class Rotation:
    target: str
    started: float  # time.monotonic() when the rewrite began
    wrote: bool  # False also when it failed


@dataclass(frozen=True)
class Poll:
    started: float  # time.monotonic() when the pass began
    visited: frozenset[str]  # targets it took up (rotated, or skipped for expired tokens)


class WatchedTracker(Tracker):
    """The daemon's rotation tracker, given to it through `running(config, tracker)` (the
    serve(tracker=) seam), reporting what happens in it: each change the file watcher
    reports, each rotation it finishes (when it began, whether it wrote) and each poll
    pass (which volumes it took up). A test waits for these reports (`wait_for`) instead
    of sleeping for as long as they usually take."""

    def __init__(self, default_interval: float, check_every: float = 1.0) -> None:
        super().__init__(default_interval, check_every)
        self.file_changes = 0
        self.rotations: list[Rotation] = []
        self.polls: list[Poll] = []
        self._reported = asyncio.Event()

    def _report(self) -> None:
        self._reported.set()
        self._reported = asyncio.Event()

    def files_changed(self) -> None:
        super().files_changed()
        self.file_changes += 1
        self._report()

    def track(
        self, params: MountParams, request: pb.MountRequest, rewrite: Rewrite, uses_files: bool
    ) -> None:
        target = params.target_path

        async def recorded(kept: pb.MountRequest, max_age: float) -> bool:
            started, wrote = time.monotonic(), False
            try:
                wrote = await rewrite(kept, max_age)
            finally:
                self.rotations.append(Rotation(target, started, wrote))
                self._report()
            return wrote

        super().track(params, request, recorded, uses_files)

    async def poll_once(self) -> None:
        started = time.monotonic()
        before = {t: (v, v.due) for t, v in self.volumes.items()}
        await super().poll_once()
        # A volume taken up gets its next due time; one re-tracked meanwhile is new
        visited = {t for t, (v, due) in before.items() if self.volumes.get(t) is v and v.due != due}
        self.polls.append(Poll(started, frozenset(visited)))
        self._report()

    async def next_report(self, timeout: float) -> None:
        """Until the next report, or `timeout` seconds."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._reported.wait(), timeout)

    async def wait_for(self, condition: Callable[[], bool], what: str) -> None:
        """Until `condition()` holds, checked at each report; GUARD is a failure guard."""
        deadline = time.monotonic() + GUARD
        while not condition():
            assert time.monotonic() < deadline, f"no {what} within {GUARD} s"
            await self.next_report(deadline - time.monotonic())


async def watching(tracker: WatchedTracker, root: Path) -> None:
    """Return once the daemon's file watcher reports changes under `root`. It starts in
    the background, and a change made before it watches is never reported: a probe file
    is rewritten until the watcher reports it (the report is the signal; rewriting only
    asks again, every half second)."""
    probe = root / ".watch-probe"
    seen = tracker.file_changes
    deadline = time.monotonic() + GUARD
    while tracker.file_changes == seen:
        assert time.monotonic() < deadline, f"the file watcher reported nothing in {GUARD} s"
        probe.write_text(str(time.monotonic()))
        await tracker.next_report(0.5)
