"""Shared by the benchmarks: percentiles in milliseconds."""

from __future__ import annotations


def pct(samples: list[float], q: float) -> float:
    """The q-quantile of durations in seconds, in milliseconds (3 decimals)."""
    ordered = sorted(samples)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 3)
