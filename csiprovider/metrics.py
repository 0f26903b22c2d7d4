"""Prometheus metrics. Labels are fixed vocabularies (provider name, dialect, backend,
operation, gRPC code): never object names, pod names or anything a pod controls, and
never secret material."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import Counter, Gauge, Histogram

MOUNTS = Counter(
    "csiprovider_mounts_total", "Mount calls by result", ["provider", "dialect", "result"]
)
MOUNT_SECONDS = Histogram(
    "csiprovider_mount_duration_seconds",
    "Mount latency",
    ["provider", "dialect"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
BACKEND_REQUESTS = Counter(
    "csiprovider_backend_requests_total",
    "Requests to secret stores by result",
    ["backend", "operation", "result"],
)
BACKEND_SECONDS = Histogram(
    "csiprovider_backend_request_duration_seconds",
    "Latency of requests to secret stores",
    ["backend", "operation"],
)
CACHE = Counter(
    "csiprovider_cache_total", "Fetch cache lookups: hit, miss or coalesced", ["outcome"]
)
STALE = Counter(
    "csiprovider_stale_served_total",
    "Objects served from the last good content because the backend failed",
    ["backend"],
)
ROTATION_WRITES = Counter(
    "csiprovider_rotation_writes_total", "Volumes rewritten by rotation because a version changed"
)
ROTATION_ERRORS = Counter(
    "csiprovider_rotation_errors_total",
    "Rotation passes that failed (the files were left in place)",
)
BACKEND_REACHABLE = Gauge(
    "csiprovider_backend_reachable",
    "1 when the backend configured at daemon level answered its last "
    "background probe, else 0 (not part of readiness)",
    ["backend"],
)
TRACKED_VOLUMES = Gauge(
    "csiprovider_tracked_volumes", "Volumes written by the provider and kept fresh by rotation"
)


@contextmanager
def backend_call(backend: str, operation: str) -> Iterator[None]:
    """Count and time one request to a secret store; the result is ok or the error type."""
    started = time.monotonic()
    result = "ok"
    try:
        yield
    except Exception as exc:
        result = getattr(getattr(exc, "code", None), "name", None) or type(exc).__name__
        raise
    finally:
        BACKEND_REQUESTS.labels(backend, operation, result).inc()
        BACKEND_SECONDS.labels(backend, operation).observe(time.monotonic() - started)
