"""Reuse of leased dynamic secrets and PKI certificates across Mounts.

kubelet republishes every volume every 60-90 s; vault-csi-provider re-issues on each,
minting a new database user or certificate every poll (its #238, #149, #151). Here a
response with a lease (or a certificate with an expiry) is kept per (authorization class,
request) and handed out again until its renewal point, a fraction of its TTL. Past it, a
renewable lease is renewed (same credentials, longer life); otherwise it is re-issued.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any

from csiprovider.caches import LRU


@dataclass
class Lease:
    response: Mapping[str, Any]
    obtained: float  # time.monotonic()
    ttl: float
    lease_id: str
    renewable: bool

    def renew_point(self, fraction: float) -> float:
        return self.obtained + self.ttl * fraction

    def expires(self) -> float:
        return self.obtained + self.ttl


def lease_of(response: Mapping[str, Any], now: float, wall_now: float) -> Lease | None:
    """A Lease when the response is worth reusing: a real lease, or a dated certificate."""
    lease_id = response.get("lease_id") or ""
    duration = float(response.get("lease_duration") or 0)
    if lease_id and duration > 0:
        return Lease(response, now, duration, str(lease_id), bool(response.get("renewable")))
    data = response.get("data")
    if isinstance(data, Mapping) and data.get("certificate") and data.get("expiration"):
        try:
            remaining = float(data["expiration"]) - wall_now
        except (TypeError, ValueError):
            return None
        if remaining > 0:
            return Lease(response, now, remaining, "", False)
    return None


class LeaseCache:
    """Leases by key; the caller renews or re-issues when `due` says so."""

    def __init__(self, renew_fraction: float = 2 / 3, max_entries: int = 10000) -> None:
        self.renew_fraction = renew_fraction
        self._leases: LRU[Hashable, Lease] = LRU(max_entries)
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Lease | None:
        with self._lock:
            return self._leases.get(key)

    def put(self, key: Hashable, lease: Lease) -> None:
        with self._lock:
            self._leases.put(key, lease)

    def drop(self, key: Hashable) -> None:
        with self._lock:
            self._leases.pop(key)

    def __len__(self) -> int:
        return len(self._leases)


def now_pair() -> tuple[float, float]:
    return time.monotonic(), time.time()
