"""The v1alpha1 `CSIDriverProvider` service for one provider name (one socket).

Mount flow: request → `MountParams` → dialect → resolver → files returned to the
driver (driver mode) or written atomically into the target path (provider mode).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import Executor
from contextlib import asynccontextmanager
from typing import Any, Literal

import grpc

from csiprovider import API_VERSION, RUNTIME_NAME, __version__, logs, metrics
from csiprovider.atomic_writer import FileProjection, TargetBusy, write_atomic
from csiprovider.caches import LRU
from csiprovider.dialects import Dialect
from csiprovider.errors import (
    DeadlineExceeded,
    InvalidArgument,
    MountError,
    ResourceExhausted,
    Unavailable,
)
from csiprovider.model import MountObject, MountResult, SpcObject
from csiprovider.request import MountParams, parse_mount_request
from csiprovider.resolver import Resolver
from csiprovider.rotation import Tracker
from csiprovider.v1alpha1 import service_pb2 as pb
from csiprovider.v1alpha1 import service_pb2_grpc as pb_grpc

log = logging.getLogger("csiprovider.mount")

WriteMode = Literal["driver", "provider"]
GroupLookup = Callable[[MountParams], int | None]
"""The gid that owns a volume's files: the SPC's fileGroup, else the pod's fsGroup."""
MAX_RESPONSE_BYTES = 4 * 1024 * 1024  # the driver's default --max-call-recv-msg-size
KUBELET_PODS_DIR = "/var/lib/kubelet/pods"  # where the driver's pod volumes are
SYNC_LIMIT_BYTES = 1024 * 1024  # a Kubernetes Secret holds at most 1 MiB
PARSED_CACHE_SIZE = 1024  # distinct (attributes, permission) pairs kept parsed
MOUNTED_VOLUMES = 20000  # volumes remembered as mounted (forgotten: the next is "first")
DEADLINE_MARGIN = 0.25  # seconds kept to answer before the caller's deadline


class ProviderService(pb_grpc.CSIDriverProviderServicer):  # type: ignore[misc]
    """Serves Version and Mount for one provider name."""

    def __init__(
        self,
        name: str,
        dialect_name: str,
        dialect: Dialect,
        resolver: Resolver,
        executor: Executor,
        write_mode: WriteMode = "driver",
        mount_timeout: float = 30.0,
        tracker: Tracker | None = None,
        group_of: GroupLookup | None = None,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        pods_dir: str = KUBELET_PODS_DIR,
    ) -> None:
        """`tracker`: keeps provider-written volumes fresh; `group_of`: the gid that owns
        a volume's files (provider mode only); `max_response_bytes`: the largest answer
        (the driver's --max-call-recv-msg-size); `pods_dir`: the kubelet's pods
        directory, the only place provider mode writes into."""
        self.name = name
        self.dialect_name, self._dialect = dialect_name, dialect
        self._resolver = resolver
        self._executor = executor
        self._write_mode = write_mode
        self._mount_timeout = mount_timeout
        self._tracker = tracker if write_mode == "provider" else None
        self._group_of = group_of if write_mode == "provider" else None
        self._max_response_bytes = max_response_bytes
        self._pods_dir = os.path.normpath(pods_dir)
        self._parsed: LRU[tuple[str, str, str], tuple[SpcObject, ...]] = LRU(PARSED_CACHE_SIZE)
        self._mounted: LRU[tuple[str, str], None] = LRU(MOUNTED_VOLUMES)

    async def Version(self, request: pb.VersionRequest, context: Any) -> pb.VersionResponse:
        return pb.VersionResponse(
            version=API_VERSION, runtime_name=RUNTIME_NAME, runtime_version=__version__
        )

    async def Mount(self, request: pb.MountRequest, context: Any) -> pb.MountResponse:
        started = time.monotonic()
        fields: dict[str, Any] = {"provider": self.name, "dialect": self.dialect_name}
        try:
            params = parse_mount_request(request)
            fields.update(pod=f"{params.pod.namespace}/{params.pod.name}", spc=params.spc_name)
            objects = await self._objects(request, params, self._timeout(context))
            fields["objects"] = [o.object_name for o in objects]
            volume = (params.target_path, params.pod.uid)
            resolved_at = time.monotonic()
            result = await self._resolver.resolve(
                objects, self._timeout(context), self._fresh_after(volume, params, started)
            )
            writes = self._writes(params)
            response = await self._respond(params, result, resolved_at, writes)
            self._mounted.put(volume, None)
            fields.update(files=len(result.files), bytes=result.size)
            if writes and self._tracker is not None:
                self._tracker.track(
                    params, request, self.rewrite, any(_reads_files(o) for o in objects)
                )
        except MountError as exc:
            self._log(fields, started, exc.code.name, exc.message)
            await context.abort(exc.code, exc.message)
            raise AssertionError("unreachable") from None  # abort() raises
        except Exception as exc:
            if isinstance(exc, asyncio.CancelledError):
                raise
            message = f"internal error while mounting ({type(exc).__name__}); see provider logs"
            log.error(
                "mount crashed",
                exc_info=False,
                extra={
                    "fields": {
                        **fields,
                        "error_type": type(exc).__name__,
                        "frames": logs.frames(exc),
                    }
                },
            )
            self._log(fields, started, "INTERNAL", message)
            await context.abort(grpc.StatusCode.INTERNAL, message)
            raise AssertionError("unreachable") from None
        self._log(fields, started, "OK", None)
        return response

    async def _objects(
        self, request: pb.MountRequest, params: MountParams, timeout: float
    ) -> Sequence[SpcObject]:
        """The dialect's objects; republishes repeat the same attributes, so keep them.
        A dialect may look things up (the node's region), so it runs off the loop."""
        # secrets too: a dialect may read them (sops keys), never share them between pods.
        # The key holds a digest of them; a sops object's source keeps the pod's age
        # identities, like the request the driver resends, for as long as the entry lives
        key = (
            request.attributes,
            request.permission,
            hashlib.sha256(request.secrets.encode("utf-8", "surrogatepass")).hexdigest(),
        )
        found = self._parsed.get(key)
        if found is not None:
            return found
        loop = asyncio.get_running_loop()
        try:  # bounded by csiprovider.limits; the deadline is the backstop
            objects = tuple(
                await asyncio.wait_for(
                    loop.run_in_executor(self._executor, self._dialect, params), timeout
                )
            )
        except TimeoutError:
            raise DeadlineExceeded(
                f"parsing the SecretProviderClass did not finish within {timeout:.1f}s"
            ) from None
        self._parsed.put(key, objects)
        return objects

    def _writes(self, params: MountParams) -> bool:
        """Whether this daemon writes the volume itself: in provider mode, and only for a
        pod's volume under the kubelet's pods directory (`<pods>/<pod uid>/volumes/...`).
        Any other target (the sync controller's /mnt/secrets-store, a local
        `csiprovider mount`) gets the files in the response, as in driver mode: writing
        there would write into this daemon's own file system."""
        if self._write_mode != "provider":
            return False
        inside = os.path.relpath(os.path.normpath(params.target_path), self._pods_dir)
        parts = inside.split(os.sep)
        return (
            not inside.startswith("..")
            and len(parts) >= 3
            and parts[0] == params.pod.uid
            and parts[1] == "volumes"
        )

    def _fresh_after(self, volume: tuple[str, str], params: MountParams, arrived: float) -> float:
        """How old a shared value this Mount accepts (time.monotonic() a read must have
        started after). A volume's first Mount: reads that started after it arrived. A
        republish: the cache TTL, and in provider mode no more than the volume's rotation
        interval, so the cache never stretches rotation."""
        if volume not in self._mounted:
            return arrived
        if self._tracker is not None:
            return time.monotonic() - self._tracker.interval(params)
        return float("-inf")

    async def rewrite(self, request: pb.MountRequest, max_age: float) -> bool:
        """Rotation: the Mount pipeline again, with shared values at most `max_age`
        seconds old; True when the volume changed on disk."""
        params = parse_mount_request(request)
        objects = await self._objects(request, params, self._mount_timeout)
        resolved_at = time.monotonic()
        result = await self._resolver.resolve(
            objects, self._mount_timeout, time.monotonic() - max_age
        )
        return await self._write(params, result, resolved_at, rotation=True)

    async def _write(
        self, params: MountParams, result: MountResult, resolved_at: float, rotation: bool = False
    ) -> bool:
        """Write one volume; writes to one target (republishes, rotation) take turns, and
        values resolved before the ones already written are not written over them (a slow
        rotation finishing after a republish would roll the volume back). A rotation
        writes only over the version this daemon wrote last: if `..data` names another,
        another writer (the driver, after a switch to driver mode) owns the volume now,
        and the rotation stops instead of racing it (the driver's writer takes no lock)."""
        target_path = params.target_path
        loop = asyncio.get_running_loop()
        group = None
        if self._group_of is not None:
            group = await loop.run_in_executor(self._executor, self._group_of, params)
        async with _WRITE_LOCKS.hold(target_path) as turn:
            if not turn.newer(resolved_at):
                return False
            if rotation and not turn.still_ours(_current_version(target_path)):
                if self._tracker is not None:
                    self._tracker.untrack(target_path)
                log.warning(
                    "volume written by another writer since; no longer rotated",
                    extra={"fields": {"target": target_path}},
                )
                return False
            changed, version = await loop.run_in_executor(
                self._executor, _write_volume, target_path, result, group
            )
            turn.written(resolved_at, version)
            return changed

    def _timeout(self, context: Any) -> float:
        remaining: float | None = context.time_remaining()
        if remaining is None:
            return self._mount_timeout
        return max(0.01, min(self._mount_timeout, remaining - DEADLINE_MARGIN))

    async def _respond(
        self, params: MountParams, result: MountResult, resolved_at: float, writes: bool
    ) -> pb.MountResponse:
        versions = [pb.ObjectVersion(id=i, version=v) for i, v in result.versions]
        if result.size > SYNC_LIMIT_BYTES:
            log.warning(
                "mount result is larger than 1 MiB: syncing it to a Kubernetes Secret will fail",
                extra={"fields": {"spc": params.spc_name, "bytes": result.size}},
            )
        if writes:
            await self._write(params, result, resolved_at)
            return pb.MountResponse(object_version=versions)
        response = pb.MountResponse(
            object_version=versions,
            files=[pb.File(path=f.path, mode=f.mode, contents=f.contents) for f in result.files],
        )
        size = response.ByteSize()
        if size > self._max_response_bytes:
            raise ResourceExhausted(
                f"Mount response is {size} bytes, above this provider's "
                f"--max-response-bytes ({self._max_response_bytes}, the driver's default "
                "--max-call-recv-msg-size is 4194304); reduce the objects of this "
                "SecretProviderClass, or raise both limits together: the driver's "
                "--max-call-recv-msg-size and this provider's --max-response-bytes"
                + (
                    ""
                    if self._write_mode == "provider"
                    else ", or run this provider with --write-mode provider"
                )
            )
        return response

    def _log(self, fields: dict[str, Any], started: float, result: str, error: str | None) -> None:
        elapsed = time.monotonic() - started
        metrics.MOUNTS.labels(self.name, self.dialect_name, result).inc()
        metrics.MOUNT_SECONDS.labels(self.name, self.dialect_name).observe(elapsed)
        entry = {**fields, "result": result, "duration_ms": round(elapsed * 1000, 2)}
        if error is not None:
            entry["error"] = error
            log.warning("mount failed", extra={"fields": entry})
        else:
            log.info("mount", extra={"fields": entry})


class TargetLocks:
    """One asyncio lock per target path, taken before the hop to a worker thread, so a
    write waiting for its turn holds no thread. A lock lives only while someone holds or
    waits for it, so the table never outgrows the writes in flight. (The writer also
    flocks the target: that covers other processes, paths naming one directory twice, and
    a write whose Mount was cancelled, which goes on in its thread after this lock is
    released.)
    """

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, list[int]]] = {}
        # per target: when the values written last were resolved, and the version
        # directory (`..data`) that write left
        self._written: LRU[str, tuple[float, str]] = LRU(MOUNTED_VOLUMES)

    def __len__(self) -> int:
        return len(self._locks)

    @asynccontextmanager
    async def hold(self, target_path: str) -> AsyncIterator[Turn]:
        key = os.path.normpath(os.path.abspath(target_path))
        lock, users = self._locks.setdefault(key, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            async with lock:
                yield Turn(self._written, key)
        finally:
            users[0] -= 1
            if not users[0]:
                del self._locks[key]


class Turn:
    """A writer's turn at one target: whether its values are newer than those written,
    and whether the volume still holds what this process wrote there last."""

    def __init__(self, written: LRU[str, tuple[float, str]], key: str) -> None:
        self._written, self._key = written, key

    def newer(self, resolved_at: float) -> bool:
        return resolved_at >= self._written.get(self._key, (float("-inf"), ""))[0]

    def still_ours(self, current: str) -> bool:
        last = self._written.get(self._key)
        return last is None or last[1] == current

    def written(self, resolved_at: float, version: str) -> None:
        self._written.put(self._key, (resolved_at, version))


_WRITE_LOCKS = TargetLocks()  # shared by every provider name this process serves


def _write_volume(
    target_path: str, result: MountResult, group: int | None = None
) -> tuple[bool, str]:
    """Write the volume; whether it changed, and the version directory it now shows."""
    if not os.path.isdir(target_path):
        raise InvalidArgument(
            f"target path {target_path!r} is not an existing directory; the driver mounts "
            "it before calling the provider"
        )
    try:
        changed = write_atomic(
            target_path,
            {f.path: FileProjection(data=f.contents, mode=f.mode) for f in result.files},
            group,
        )
    except TargetBusy as exc:
        raise Unavailable(f"cannot write the volume: {exc}; the driver will retry") from None
    if not changed:
        # The volume is current as of now. The driver (v1.6, rotation on) calls Mount on a
        # republish only once the target is older than its --rotation-poll-interval: its
        # own writer touches it only when bytes change, so without this every republish
        # (each 60-90 s) would reach the stores again.
        with contextlib.suppress(OSError):
            os.utime(target_path)
    return changed, _current_version(target_path)


def _current_version(target_path: str) -> str:
    """The version directory `..data` names ("" if none)."""
    try:
        return os.readlink(os.path.join(target_path, "..data"))
    except OSError:
        return ""


def _reads_files(obj: SpcObject) -> bool:
    """The object reads the file root (a file object, or a sops document kept as a file):
    a change there makes the volume due for rotation at once."""
    if not isinstance(obj, MountObject):
        return False
    return obj.backend == "file" or (
        obj.backend == "sops" and getattr(obj.source, "file", None) is not None
    )
