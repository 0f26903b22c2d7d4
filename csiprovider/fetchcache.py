"""Sharing fetches between Mounts: identical in-flight fetches coalesce into one backend
call, and results of cacheable backends are kept for a TTL.

Keys are (backend, source); every source carries the identity the backend authorizes
(Vault: the pod's login; files: the namespace), so a cached value is only ever handed to
the identity that fetched it. kubelet republishes every volume every 60-90 s: without
this, each republish re-reads every object from the backend.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from csiprovider import metrics

Key = tuple[str, Hashable]


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    coalesced: int = 0


class FetchCache:
    """TTL cache plus in-flight coalescing; used from the event loop thread only."""

    def __init__(self, ttl: float, max_entries: int = 10000) -> None:
        self.ttl = ttl
        self._max = max_entries
        self._values: OrderedDict[Key, tuple[float, Any]] = OrderedDict()
        self._inflight: dict[Key, asyncio.Future[Any]] = {}
        self.stats = CacheStats()

    def fetch(
        self, key: Key, cacheable: bool, start: Callable[[], asyncio.Future[Any]]
    ) -> asyncio.Future[Any]:
        """A future for the key's value: cached, joined in flight, or started now."""
        if cacheable and self.ttl > 0:
            found = self._values.get(key)
            if found is not None and time.monotonic() - found[0] < self.ttl:
                self.stats.hits += 1
                metrics.CACHE.labels("hit").inc()
                done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
                done.set_result(found[1])
                return done
        running = self._inflight.get(key)
        if running is not None:
            self.stats.coalesced += 1
            metrics.CACHE.labels("coalesced").inc()
            return running
        self.stats.misses += 1
        metrics.CACHE.labels("miss").inc()
        future = start()
        self._inflight[key] = future
        future.add_done_callback(lambda f: self._settle(key, f, cacheable))
        return future

    def _settle(self, key: Key, future: asyncio.Future[Any], cacheable: bool) -> None:
        self._inflight.pop(key, None)
        if not cacheable or self.ttl <= 0 or future.cancelled() or future.exception():
            return
        self._values[key] = (time.monotonic(), future.result())
        self._values.move_to_end(key)
        while len(self._values) > self._max:
            self._values.popitem(last=False)

    def __len__(self) -> int:
        return len(self._values)
