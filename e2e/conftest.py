"""Real daemon processes for the end-to-end tests, driven over their Unix sockets."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from testkit.daemon import listening

ROOT = Path(__file__).resolve().parents[1]
SECRET_VALUES = (
    "e2e-user-Zq81",
    "e2e-pass-Wk27",
    "other-ns-Tj55",
    "c2VjcmV0LWJhc2U2NA==",
    "secret-base64",
)


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "csiprovider", *args]


@dataclass
class Daemon:
    proc: subprocess.Popen[bytes]
    providers_dir: Path
    log_path: Path
    names: tuple[str, ...]

    def socket(self, name: str = "csiprovider") -> Path:
        return self.providers_dir / f"{name}.sock"

    def log(self) -> str:
        return self.log_path.read_text()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)


@pytest.fixture
def file_root(tmp_path: Path) -> Path:
    root = tmp_path / "secrets"
    (root / "default" / "db").mkdir(parents=True)
    (root / "default" / "db" / "username").write_text(SECRET_VALUES[0])
    (root / "default" / "db" / "password").write_text(SECRET_VALUES[1])
    (root / "default" / "b64").write_text(SECRET_VALUES[3])
    (root / "other").mkdir()
    (root / "other" / "theirs").write_text(SECRET_VALUES[2])
    return root


@pytest.fixture
def start_daemon(tmp_path: Path, file_root: Path) -> Iterator[Callable[..., Daemon]]:
    started: list[Daemon] = []
    key = tmp_path / "hmac.key"
    key.write_text("e2e-hmac-key-0123456789abcdef\n")

    def start(
        *extra: str,
        names: tuple[str, ...] = ("csiprovider",),
        providers_dir: Path | None = None,
        wait: bool = True,
        env: dict[str, str] | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> Daemon:
        pdir = providers_dir or tmp_path / "providers"
        log_path = tmp_path / f"daemon-{len(started)}.log"
        args = [
            "serve",
            "--providers-dir",
            str(pdir),
            "--file-root",
            str(file_root),
            "--hmac-key-file",
            str(key),
            "--log-level",
            "debug",
            "--shutdown-grace",
            "10",
            "--health-addr",
            "",
        ]
        if env is None:  # names from the environment are tested with env=
            for name in names:
                args += ["--name", name]
        environ = {k: v for k, v in os.environ.items() if not k.startswith("CSIPROVIDER_")}
        environ.update(env or {})
        environ.update(extra_env or {})
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                cli(*args, *extra), stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=environ
            )
        daemon = Daemon(proc, pdir, log_path, names)
        started.append(daemon)
        if wait:
            deadline = time.monotonic() + 60  # only against a hang: a busy machine waits
            while not all(listening(daemon.socket(n)) for n in names):
                if proc.poll() is not None:
                    raise AssertionError(f"daemon exited {proc.returncode}:\n{daemon.log()}")
                if time.monotonic() > deadline:
                    raise AssertionError(f"daemon did not create its sockets:\n{daemon.log()}")
                time.sleep(0.05)
        return daemon

    yield start
    for daemon in started:
        if daemon.proc.poll() is None:
            daemon.proc.kill()
            daemon.proc.wait()
        log = daemon.log()
        for value in SECRET_VALUES:
            assert value not in log, "a secret value reached the daemon log"


@pytest.fixture
def write_spc(tmp_path: Path) -> Callable[..., Path]:
    def write(objects: str, provider: str = "csiprovider", secret_objects: str = "") -> Path:
        indented = "".join(f"      {line}\n" for line in objects.strip().splitlines())
        text = (
            "apiVersion: secrets-store.csi.x-k8s.io/v1\n"
            "kind: SecretProviderClass\n"
            "metadata:\n  name: e2e-spc\n  namespace: default\n"
            f"spec:\n  provider: {provider}\n  parameters:\n    objects: |\n{indented}"
            f"{secret_objects}"
        )
        path = tmp_path / "spc.yaml"
        path.write_text(text)
        return path

    return write
