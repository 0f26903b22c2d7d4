"""Rotation for provider-writes mode: the daemon keeps the volumes it wrote fresh.

Every volume written by a Mount is tracked with its request. Each is re-resolved every
`--rotation-poll-interval` (per SPC: parameter `rotationPollInterval`, e.g. "30s") and
rewritten, set-atomically, only when a version changed. Values come through the same
caches as Mounts, but never older than the volume's interval: the cache saves work
across volumes, it never stretches rotation. A volume
whose pod tokens have expired waits for the next Mount (kubelet republish brings new
ones). A volume stops being tracked as soon as its target path disappears (unmount): the
tracker looks every second, not only at the next poll. A file-backend change (watched by
watchfiles) makes the volumes reading that backend due at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from csiprovider import metrics
from csiprovider.compat.go.duration import parse_interval
from csiprovider.errors import MountError
from csiprovider.request import MountParams
from csiprovider.v1alpha1 import service_pb2 as pb

log = logging.getLogger("csiprovider.rotation")

Rewrite = Callable[[pb.MountRequest, float], Awaitable[bool]]
"""Re-resolve a volume accepting shared values up to the given age (seconds) and
rewrite it; True when something was written."""


@dataclass
class Volume:
    target: str
    request: pb.MountRequest
    rewrite: Rewrite
    interval: float
    due: float
    uses_files: bool
    token_expiry: float
    namespace: str = ""
    pod: str = ""
    spc: str = ""


class Tracker:
    def __init__(self, default_interval: float, check_every: float = 1.0) -> None:
        self.default_interval = default_interval
        self.check_every = check_every
        self.volumes: dict[str, Volume] = {}
        self._wake = asyncio.Event()

    def interval(self, params: MountParams) -> float:
        """The volume's rotation interval: the SPC's rotationPollInterval, else the
        daemon's. Also the oldest a shared value may be when this volume gets it."""
        raw = params.parameters.get("rotationPollInterval", "")
        if raw:
            try:
                return parse_interval(raw)
            except ValueError:
                log.warning(
                    "ignoring rotationPollInterval",
                    extra={"fields": {"spc": params.spc_name, "value": raw[:32]}},
                )
        return self.default_interval

    def track(
        self, params: MountParams, request: pb.MountRequest, rewrite: Rewrite, uses_files: bool
    ) -> None:
        """Called after every successful provider-mode Mount (a republish refreshes it)."""
        interval = self.interval(params)
        kept = pb.MountRequest()
        kept.CopyFrom(request)
        self.volumes[params.target_path] = Volume(
            target=params.target_path,
            request=kept,
            rewrite=rewrite,
            interval=interval,
            due=time.monotonic() + interval,
            uses_files=uses_files,
            token_expiry=_expiry(params),
            namespace=params.pod.namespace,
            pod=params.pod.name,
            spc=params.spc_name,
        )
        metrics.TRACKED_VOLUMES.set(len(self.volumes))

    def untrack(self, target: str) -> None:
        """Stop rotating a volume (another writer owns it now)."""
        self.volumes.pop(target, None)
        metrics.TRACKED_VOLUMES.set(len(self.volumes))

    def files_changed(self) -> None:
        """The file backend changed: volumes that read it are due now."""
        now = time.monotonic()
        for volume in self.volumes.values():
            if volume.uses_files:
                volume.due = now
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self._wake.clear()
            waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
            await asyncio.wait(
                waiters, timeout=self.check_every, return_when=asyncio.FIRST_COMPLETED
            )
            for waiter in waiters:
                waiter.cancel()
            if stop.is_set():
                return
            await self.poll_once()

    async def poll_once(self) -> None:
        now = time.monotonic()
        for target in [t for t in self.volumes if not os.path.isdir(t)]:
            del self.volumes[target]  # unmounted
            log.info("volume unmounted, no longer tracked", extra={"fields": {"target": target}})
        metrics.TRACKED_VOLUMES.set(len(self.volumes))
        due = [v for v in self.volumes.values() if v.due <= now]
        await asyncio.gather(*(self._rotate(v) for v in due))

    async def refresh(
        self, namespace: str = "", spc: str = "", pod: str = ""
    ) -> list[dict[str, str]]:
        """Re-resolve the matching volumes now, from reads that start now (on-demand
        rotation, `csiprovider refresh`); one result per volume."""
        chosen = [
            v
            for v in self.volumes.values()
            if (not namespace or v.namespace == namespace)
            and (not spc or v.spc == spc)
            and (not pod or v.pod == pod)
            and os.path.isdir(v.target)
        ]

        async def one(volume: Volume) -> dict[str, str]:
            found = {
                "target": volume.target,
                "namespace": volume.namespace,
                "pod": volume.pod,
                "spc": volume.spc,
            }
            try:
                changed = await volume.rewrite(volume.request, 0.0)
            except MountError as exc:
                metrics.ROTATION_ERRORS.inc()
                return {**found, "result": "failed", "error": exc.message}
            if changed:
                metrics.ROTATION_WRITES.inc()
            volume.due = time.monotonic() + volume.interval
            return {**found, "result": "changed" if changed else "unchanged"}

        return list(await asyncio.gather(*(one(v) for v in chosen)))

    async def _rotate(self, volume: Volume) -> None:
        volume.due = time.monotonic() + volume.interval
        if volume.token_expiry and time.time() >= volume.token_expiry:
            return  # the pod's tokens expired: wait for kubelet's next republish
        try:
            if await volume.rewrite(volume.request, volume.interval):
                metrics.ROTATION_WRITES.inc()
                log.info("volume rotated", extra={"fields": {"target": volume.target}})
        except MountError as exc:
            metrics.ROTATION_ERRORS.inc()
            log.warning(
                "rotation failed, files left in place",
                extra={"fields": {"target": volume.target, "error": exc.message}},
            )
        except Exception as exc:  # a full disk must not stop rotation of every volume
            metrics.ROTATION_ERRORS.inc()
            log.error(
                "rotation crashed, files left in place",
                extra={"fields": {"target": volume.target, "error_type": type(exc).__name__}},
            )


def _expiry(params: MountParams) -> float:
    """The earliest token expiry (0: no tokens, never expires)."""
    times = []
    for token in params.tokens.values():
        try:
            times.append(
                datetime.fromisoformat(token.expiration.replace("Z", "+00:00"))
                .astimezone(UTC)
                .timestamp()
            )
        except ValueError:
            continue
    return min(times) if times else 0.0
