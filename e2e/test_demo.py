"""`make demo`'s script works: daemon up, example SPC mounted, Ctrl-C stops it all."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.conftest import ROOT


@pytest.fixture
def relative_demo_dir() -> Iterator[str]:
    # Relative, as `make demo` uses (.demo): sockets must work with relative paths too.
    relative = f".demo-test-{os.getpid()}"
    yield relative
    shutil.rmtree(ROOT / relative, ignore_errors=True)


def test_demo_script_mounts_and_stops_cleanly(tmp_path: Path, relative_demo_dir: str) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    launcher = bindir / "csiprovider"
    launcher.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m csiprovider "$@"\n')
    launcher.chmod(0o755)
    demo_dir = ROOT / relative_demo_dir
    env = {
        **os.environ,
        "CSIPROVIDER_BIN": str(launcher),
        "DEMO_DIR": relative_demo_dir,
        "DEMO_WATCH_SECONDS": "0.5",
    }
    out = tmp_path / "demo.out"
    with open(out, "w") as handle:
        proc = subprocess.Popen(
            ["bash", str(ROOT / "examples" / "demo.sh")],
            cwd=ROOT,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while "re-mounting every" not in out.read_text():
            assert proc.poll() is None, out.read_text()
            assert time.monotonic() < deadline, out.read_text()
            time.sleep(0.1)
        text = out.read_text()
        assert "mounted 4 object(s)" in text
        assert "config.yaml" in text and "secretName" not in text
        assert (demo_dir / "mnt" / "db-password").read_text() == "demo-password-change-me"
        assert (demo_dir / "mnt" / "api-key").read_text() == "demo-api-key-123456"
        assert "name: demo-db" in text
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the whole foreground group
        proc.wait(20)
    assert "demo stopped" in out.read_text()
    assert not (demo_dir / "providers" / "csiprovider.sock").exists()
