"""Resolve the objects of one Mount: fetch in parallel, once per distinct source,
render, decode, version.

Backends are blocking (hvac, boto3, file I/O) and run in a thread pool of their own, so
a slow backend never stalls the event loop, nor the parsing, writing and rendering of
other Mounts (the `work` pool). Each backend instance admits `backend_concurrency` calls
at once through an asyncio semaphore taken *before* the hop to a thread: work waiting for
a slow store holds no thread.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Hashable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from csiprovider import logs, metrics
from csiprovider.caches import LRU
from csiprovider.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    MountError,
    Unavailable,
)
from csiprovider.extract import decode, extract
from csiprovider.fetchcache import FetchCache
from csiprovider.limits import STALE_WAIT_SECONDS
from csiprovider.model import MountObject, MountResult, OutputFile, SpcObject, TemplateObject
from csiprovider.paths import PayloadError, validate_path
from csiprovider.stores import Backend, Grant, what_is_read
from csiprovider.versions import Versioner

_ENABLE_HINTS = {
    "file": "start the daemon with --file-root DIR",
    "vault": "serve a provider name with the vault dialect (--name vault)",
}


LAST_GOOD_ENTRIES = 20000
log = logging.getLogger("csiprovider.resolver")


@dataclass(frozen=True)
class _Value:
    value: Any


def _failure(obj: MountObject, exc: BaseException | None) -> MountError:
    if exc is None:
        return DeadlineExceeded(f"Mount did not finish in time; still waiting for {obj.label}")
    if isinstance(exc, MountError):
        return exc
    log.error(
        "backend crashed",
        extra={
            "fields": {  # a bug: say where, not what
                "object": obj.label,
                "error_type": type(exc).__name__,
                "frames": logs.frames(exc),
            }
        },
    )
    return MountError(f"{obj.label}: backend failed ({type(exc).__name__})")


def _reason(outcome: Any) -> str:
    return getattr(outcome, "message", None) or (
        "timeout" if outcome is None else type(outcome).__name__
    )


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Mark a finished fetch's failure as seen: a Mount that failed early stops waiting
    for its other fetches, which must not log "exception was never retrieved"."""
    if not task.cancelled():
        task.exception()


def _collisions(paths: list[str]) -> list[str]:
    """Paths written twice, or written both as a file and as a directory of other files.
    Linear in the number of files: a prefix fetch may bring thousands."""
    counts = Counter(paths)
    directories = {p.rsplit("/", i)[0] for p in paths for i in range(1, p.count("/") + 1)}
    return sorted({p for p, n in counts.items() if n > 1} | (set(counts) & directories))


NO_OBJECTS_ID = "..none"
"""The object version id of a Mount that found none of its (all optional) objects: a
name starting with ".." is never a file, so never an object's."""


class Resolver:
    """Turns `MountObject`s into files and versions."""

    def __init__(
        self,
        backends: Mapping[str, Backend],
        versioner: Versioner,
        executor: Executor,
        cache: FetchCache | None = None,
        backend_concurrency: int = 32,
        work: Executor | None = None,
    ) -> None:
        self._backends = backends
        self._versioner = versioner
        self._executor = executor  # backend calls
        self._work = work if work is not None else executor  # template rendering
        self.cache = cache if cache is not None else FetchCache(ttl=0)
        # One limit per backend *instance*: the AWS backend serves four names.
        self._limits = {id(b): asyncio.Semaphore(backend_concurrency) for b in backends.values()}
        self._last_good: LRU[tuple[str, Hashable], Any] = LRU(LAST_GOOD_ENTRIES)

    async def resolve(
        self, entries: Sequence[SpcObject], timeout: float, fresh_after: float | None = None
    ) -> MountResult:
        """Fetch every distinct source once, all in parallel, within `timeout` seconds;
        extract, decode and version each object; then render the templates from them.

        `fresh_after` (time.monotonic()): the oldest start of a shared read this Mount
        accepts. None, for a pod's first Mount of a volume, means reads that start after
        now: a new pod always gets what the store holds when it arrives."""
        objects = [o for o in entries if isinstance(o, MountObject)]
        arrived = time.monotonic()
        deadline = arrived + timeout
        fresh = arrived if fresh_after is None else min(fresh_after, arrived)
        grants: dict[tuple[str, Hashable], asyncio.Future[Grant]] = {}
        fetches: dict[tuple[str, Hashable], asyncio.Future[Any]] = {}
        for obj in objects:
            key = (obj.backend, obj.source)
            if key not in fetches:
                task = asyncio.ensure_future(
                    self._read(obj, self._backend(obj), deadline, fresh, grants)
                )
                task.add_done_callback(_retrieve)  # it may outlive a failed Mount
                fetches[key] = task
        outcomes = await self._gather(objects, fetches, deadline)
        slow = [
            o.label
            for o in objects
            if outcomes.get((o.backend, o.source)) is None and not o.optional
        ]
        if slow:
            raise DeadlineExceeded(
                f"Mount did not finish within {timeout:.1f}s; still waiting for {', '.join(slow)}"
            )
        files: list[OutputFile] = []
        versions: list[tuple[str, str]] = []
        inputs: dict[str, bytes] = {}
        for obj in objects:
            key = (obj.backend, obj.source)
            outcome = outcomes.get(key)
            if not isinstance(outcome, _Value):
                if obj.optional:
                    log.info(
                        "optional object skipped",
                        extra={"fields": {"object": obj.label, "reason": _reason(outcome)}},
                    )
                    continue
                raise _failure(obj, outcome)
            backend = self._backends[obj.backend]
            try:
                extracted = extract(obj, backend.render(obj, outcome.value))
            except MountError as exc:
                if obj.optional:
                    log.info(
                        "optional object skipped",
                        extra={"fields": {"object": obj.label, "reason": exc.message}},
                    )
                    continue
                raise
            if not obj.write:  # a template input only
                if isinstance(extracted, bytes):
                    inputs[obj.object_name] = decode(extracted, obj)
                continue
            content = self._files(obj, extracted, files)
            if isinstance(extracted, bytes):
                inputs[obj.object_name] = content
            version = backend.object_version(obj, outcome.value)
            if version is None:
                version = self._versioner.version(obj.spec_json, content)
            versions.append((obj.object_name, version))
        for template in entries:
            if isinstance(template, TemplateObject):
                await self._template(template, inputs, files, versions)
        clash = _collisions([f.path for f in files])
        if clash:
            raise InvalidArgument(
                f"file name collision: {', '.join(clash)} written by more "
                "than one object (expand: keys?); rename with objectAlias"
            )
        if not versions:
            # Every object is optional and none is there. The driver refuses a response
            # without an object version ("missing object versions"), so the empty volume
            # carries one placeholder: an id no object can have, a stable version.
            versions.append((NO_OBJECTS_ID, self._versioner.version(NO_OBJECTS_ID, b"")))
        return MountResult(files=tuple(files), versions=tuple(versions))

    async def _template(
        self,
        obj: TemplateObject,
        inputs: dict[str, bytes],
        files: list[OutputFile],
        versions: list[tuple[str, str]],
    ) -> None:
        """Render off the event loop; the version covers the template and exactly the
        inputs it read, so it changes when (and only when) one of those changes."""
        from csiprovider.native import templates  # jinja2 loads with the first template

        used = templates.Inputs(inputs)
        try:
            content = await asyncio.get_running_loop().run_in_executor(
                self._work, templates.render, obj.template, used, obj.label
            )
        except MountError:
            if obj.optional:
                return
            raise
        files.append(OutputFile(path=obj.file_name, mode=obj.mode, contents=content))
        covered = b"".join(
            len(n).to_bytes(4, "big") + n.encode() + len(inputs[n]).to_bytes(8, "big") + inputs[n]
            for n in sorted(used.used)
        )
        versions.append((obj.object_name, self._versioner.version(obj.spec_json, covered)))

    async def _gather(
        self,
        objects: Sequence[MountObject],
        fetches: dict[tuple[str, Hashable], asyncio.Future[Any]],
        deadline: float,
    ) -> dict[tuple[str, Hashable], _Value | BaseException | None]:
        """Wait for the fetches; a failure is replaced by the last good value when it is
        transient (outage, timeout), and fails the Mount at once when nothing can stand in
        for it. A fetch that has a last good value gets STALE_WAIT_SECONDS, not the whole
        deadline: during an outage a republish answers in seconds. Fetches may be shared
        with other Mounts (and keep retrying for them): stop waiting, never cancel them."""
        outcomes: dict[tuple[str, Hashable], _Value | BaseException | None] = {}
        waiting = {f: k for k, f in fetches.items()}
        needed = {(o.backend, o.source) for o in objects if not o.optional}
        stale_at = min(deadline, time.monotonic() + STALE_WAIT_SECONDS)
        while waiting:
            has_stale = any(k in self._last_good for k in waiting.values())
            until = stale_at if has_stale and time.monotonic() < stale_at else deadline
            done, _ = await asyncio.wait(
                set(waiting),
                timeout=max(0, until - time.monotonic()),
                return_when=asyncio.FIRST_COMPLETED,
            )
            if not done and until < deadline:
                for future, key in list(waiting.items()):
                    if key in self._last_good:  # waited long enough: serve it
                        del waiting[future]
                        outcomes[key] = self._stale(key, None)
                continue
            if not done:
                break
            for future in done:
                key = waiting.pop(future)
                exc = future.exception()
                if exc is None:
                    outcomes[key] = _Value(future.result())
                    self._remember(key, future.result())
                    continue
                outcomes[key] = self._stale(key, exc) or exc
                if key in needed and not isinstance(outcomes[key], _Value):
                    first = next(o for o in objects if (o.backend, o.source) == key)
                    raise _failure(first, exc)
        for key in waiting.values():
            outcomes[key] = self._stale(key, None)
        return outcomes

    async def _read(
        self,
        obj: MountObject,
        backend: Backend,
        deadline: float,
        fresh_after: float,
        grants: dict[tuple[str, Hashable], asyncio.Future[Grant]],
    ) -> Any:
        """The pod proves itself first; then the read is shared only under its grant's
        scope (its authorization class), and only if it started after `fresh_after`."""
        grant = backend.grant(obj)
        if grant is None:
            who = (obj.backend, backend.principal(obj))
            pending = grants.get(who)
            if pending is None:  # one login per pod and Mount, however many objects
                pending = asyncio.ensure_future(
                    self._limited(obj, backend, deadline, backend.authorize)
                )
                grants[who] = pending
            grant = await pending
        key = (obj.backend, grant.scope, what_is_read(obj.source))

        def start() -> asyncio.Future[Any]:
            if backend.quick(obj):  # microseconds: a thread hop would cost more
                done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
                try:
                    done.set_result(backend.fetch(obj, grant, deadline))
                except Exception as exc:  # delivered as a thread's failure would be
                    done.set_exception(exc)
                return done
            return asyncio.ensure_future(
                self._limited(obj, backend, deadline, lambda o, d: backend.fetch(o, grant, d))
            )

        return await self.cache.fetch(key, fresh_after, backend.shares_reads, start)

    async def _limited(
        self,
        obj: MountObject,
        backend: Backend,
        deadline: float,
        call: Callable[[MountObject, float], Any],
    ) -> Any:
        """At most `backend_concurrency` calls in flight per backend: a burst of Mounts
        (a node drain) queues here, holding no thread, instead of tripping the store's
        rate limits."""
        limit = self._limits[id(backend)]
        try:
            await asyncio.wait_for(limit.acquire(), max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            raise DeadlineExceeded(
                f"{obj.label}: waited for a free {obj.backend} connection until the Mount deadline"
            ) from None
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self._executor, call, obj, deadline
            )
        finally:
            limit.release()

    def _remember(self, key: tuple[str, Hashable], value: Any) -> None:
        self._last_good.put(key, value)

    def _stale(self, key: tuple[str, Hashable], exc: BaseException | None) -> _Value | None:
        """The last good value for a transient failure (None: a timeout)."""
        transient = exc is None or isinstance(exc, Unavailable | DeadlineExceeded)
        if not transient or key not in self._last_good:
            return None
        metrics.STALE.labels(key[0]).inc()
        log.warning(
            "backend failed, serving the last good content",
            extra={"fields": {"backend": key[0], "reason": getattr(exc, "message", "timeout")}},
        )
        return _Value(self._last_good.get(key))

    def _files(
        self, obj: MountObject, rendered: bytes | Mapping[str, bytes], files: list[OutputFile]
    ) -> bytes:
        """Append the object's file(s); return the bytes its version covers."""
        if isinstance(rendered, bytes):
            contents = decode(rendered, obj)
            files.append(OutputFile(path=obj.file_name, mode=obj.mode, contents=contents))
            return contents
        covered = bytearray()
        for name in sorted(rendered):
            path = f"{obj.file_name}/{name}"
            try:
                validate_path(path)
            except PayloadError:
                raise InvalidArgument(
                    f"{obj.label}: key {name!r} cannot be a file name; use secretKey or "
                    "jmesPath to pick keys with such names"
                ) from None
            contents = decode(rendered[name], obj)
            files.append(OutputFile(path=path, mode=obj.mode, contents=contents))
            covered += len(name).to_bytes(4, "big") + name.encode()
            covered += len(contents).to_bytes(8, "big") + contents
        return bytes(covered)

    def _backend(self, obj: MountObject) -> Backend:
        backend = self._backends.get(obj.backend)
        if backend is None:
            raise FailedPrecondition(
                f"{obj.label}: backend {obj.backend!r} is not enabled on this daemon; "
                f"{_ENABLE_HINTS.get(obj.backend, 'see csiprovider serve --help')}"
            )
        return backend
