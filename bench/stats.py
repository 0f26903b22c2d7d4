"""Shared by the benchmarks: percentiles in milliseconds, a process's memory in MiB,
stopping a daemon."""

from __future__ import annotations

import subprocess
from pathlib import Path

MIB = 1024  # /proc reports KiB


def pct(samples: list[float], q: float) -> float:
    """The q-quantile of durations in seconds, in milliseconds (3 decimals)."""
    ordered = sorted(samples)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 3)


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process, in KiB."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(rest.split()[0])
    return found


def mib(kib: float) -> float:
    return round(kib / MIB, 1)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a daemon the benchmark started: SIGTERM, then SIGKILL after 15 s."""
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
