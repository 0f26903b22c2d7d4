"""Run a command (the test suite) while CPU-bound busy processes compete with it.

    python testkit/under_load.py [--busy 4] [--runs 3] [--report FILE] -- COMMAND...

`make test-under-load` runs the whole suite this way: 4 busy processes on a 2-core machine
leave each test a fraction of a core, so a test that counts on being scheduled promptly
(a kill landing mid-write, a sleep long enough for something to start) fails here. The
command runs up to `--runs` times in a row, stopping at the first failure; the busy
processes run for all of them. Each run's exit status and wall time are printed (and
written as JSON to --report), and the exit status is the first failing run's, else 0.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

BUSY = "while True: pass"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--busy", type=int, default=4, help="CPU-bound processes beside it")
    parser.add_argument("--runs", type=int, default=3, help="runs in a row that must pass")
    parser.add_argument("--report", type=Path, help="write the runs as JSON here")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command to run")

    busy = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(args.busy)]
    runs: list[dict[str, object]] = []
    status = 0
    try:
        for number in range(1, args.runs + 1):
            print(
                f"== under load ({args.busy} busy processes, {os.cpu_count()} CPUs): "
                f"run {number} of {args.runs}: {' '.join(command)}",
                flush=True,
            )
            started = time.monotonic()
            status = subprocess.run(command, check=False).returncode
            seconds = round(time.monotonic() - started, 1)
            runs.append({"run": number, "exit": status, "seconds": seconds})
            print(f"== run {number}: exit {status} after {seconds} s", flush=True)
            if status != 0:
                break
    finally:
        for proc in busy:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    summary = {
        "busy": args.busy,
        "cpus": os.cpu_count(),
        "command": command,
        "runs": runs,
        "passed": status == 0 and len(runs) == args.runs,
    }
    print(json.dumps(summary), flush=True)
    if args.report:
        args.report.write_text(json.dumps(summary, indent=2) + "\n")
    return status


if __name__ == "__main__":
    sys.exit(main())
