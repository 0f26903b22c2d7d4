"""Sharing reads between Mounts: identical reads in flight coalesce into one backend call,
and results of sharing backends are kept for --cache-ttl.

Keys are (backend, grant scope, what is read): the scope is the pod's authorization
class, so a value only ever reaches pods the store authorizes identically (see
docs/security.md). Every lookup says how old a value it accepts (`fresh_after`, a
time.monotonic() when the read must have started): a pod's first Mount accepts only reads
that started after it arrived, a republish accepts values up to the cache TTL (or the
volume's rotation interval) old. kubelet republishes every volume every 60-90 s: without
this cache each republish would re-read every object from the store.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from csiprovider import metrics
from csiprovider.caches import LRU

Key = tuple[str, Hashable, Hashable]


@dataclass(frozen=True)
class _Read:
    started: float  # time.monotonic() when the backend call began
    future: asyncio.Future[Any]


class FetchCache:
    """TTL cache plus in-flight coalescing; used from the event loop thread only."""

    def __init__(self, ttl: float, max_entries: int = 10000) -> None:
        self.ttl = ttl
        self._values: LRU[Key, tuple[float, Any]] = LRU(max_entries)
        self._inflight: dict[Key, _Read] = {}

    def fetch(
        self,
        key: Key,
        fresh_after: float,
        keep: bool,
        start: Callable[[], asyncio.Future[Any]],
    ) -> asyncio.Future[Any]:
        """A future for the key's value read no earlier than `fresh_after`: cached,
        joined in flight, or started now. `keep`: the value may be cached."""
        found = self._values.get(key)
        if found is not None:
            started, value = found
            if time.monotonic() - started >= self.ttl:
                self._values.pop(key)
            elif started >= fresh_after:
                metrics.CACHE.labels("hit").inc()
                done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
                done.set_result(value)
                return done
        running = self._inflight.get(key)
        if running is not None and running.started >= fresh_after:
            metrics.CACHE.labels("coalesced").inc()
            return running.future
        metrics.CACHE.labels("miss").inc()
        read = _Read(time.monotonic(), start())
        self._inflight[key] = read
        read.future.add_done_callback(lambda f: self._settle(key, read, keep))
        return read.future

    def _settle(self, key: Key, read: _Read, keep: bool) -> None:
        if self._inflight.get(key) is read:
            del self._inflight[key]
        if read.future.cancelled() or read.future.exception() is not None:
            return  # exception() also marks it retrieved: no asyncio warning
        if not keep or self.ttl <= 0:
            return
        older = self._values.get(key)
        if older is not None and older[0] > read.started:
            return  # a read that started later already landed
        self._values.put(key, (read.started, read.future.result()))

    def __len__(self) -> int:
        return len(self._values)
