"""`csiprovider mount` against a real daemon process, in both write modes."""

from __future__ import annotations

import base64
import os
import re
import signal
import stat
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from e2e.conftest import ROOT, SECRET_VALUES, Daemon, cli
from testkit.requests import POD_UID, pod_volume

OBJECTS = """
- objectName: db-username
  backend: file
  path: db/username
- objectName: db-password
  backend: file
  path: db/password
  objectAlias: password
  filePermission: "0600"
- objectName: token
  backend: file
  path: b64
  encoding: base64
"""

SYNC = """  secretObjects:
    - secretName: db-creds
      type: Opaque
      labels: {app: e2e}
      data:
        - {objectName: db-username, key: username}
        - {objectName: password, key: password}
"""


def mount(daemon: Daemon, spc: Path, target: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cli(
            "mount",
            "--spc",
            str(spc),
            "--target",
            str(target),
            "--providers-dir",
            str(daemon.providers_dir),
            *extra,
        ),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )


def visible(target: Path) -> dict[str, bytes]:
    return {
        p: (target / p).read_bytes() for p in sorted(os.listdir(target)) if not p.startswith("..")
    }


def check_volume(target: Path) -> None:
    assert visible(target) == {
        "db-username": b"e2e-user-Zq81",
        "password": b"e2e-pass-Wk27",
        "token": b"secret-base64",
    }
    assert stat.S_IMODE((target / "password").stat().st_mode) == 0o600
    assert stat.S_IMODE((target / "db-username").stat().st_mode) == 0o644
    assert (target / "password").is_symlink()
    assert os.readlink(target / "..data").startswith("..")


def test_driver_mode(
    start_daemon: Callable[..., Daemon], write_spc: Callable[..., Path], tmp_path: Path
) -> None:
    daemon = start_daemon()
    target = tmp_path / "mnt"
    out = mount(
        daemon,
        write_spc(OBJECTS, secret_objects=SYNC),
        target,
        "--sync-secret-out",
        str(tmp_path / "secrets.yaml"),
    )
    assert out.returncode == 0, out.stdout + out.stderr
    check_volume(target)
    assert "mounted 3 object(s)" in out.stdout
    assert re.search(r"^  password +0600 +13 bytes$", out.stdout, re.M), out.stdout
    assert "version db-password: " in out.stdout
    for value in SECRET_VALUES:
        assert value not in out.stdout + out.stderr
    (secret,) = yaml.safe_load_all((tmp_path / "secrets.yaml").read_text())
    assert secret["metadata"]["labels"] == {
        "app": "e2e",
        "secrets-store.csi.k8s.io/managed": "true",
    }
    assert base64.b64decode(secret["data"]["password"]) == b"e2e-pass-Wk27"
    assert '"result": "OK"' in daemon.log()


def test_provider_write_mode(
    start_daemon: Callable[..., Daemon], write_spc: Callable[..., Path], tmp_path: Path
) -> None:
    daemon = start_daemon("--write-mode", "provider", "--kubelet-pods-dir", str(tmp_path / "pods"))
    target = pod_volume(tmp_path / "pods")
    out = mount(daemon, write_spc(OBJECTS), target, "--pod-uid", POD_UID)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "(written by the provider)" in out.stdout
    check_volume(target)
    # Anywhere else than a pod's volume the provider does not write: the files come back
    # in the answer (as to the sync controller) and the command writes them.
    elsewhere = tmp_path / "mnt"
    out = mount(daemon, write_spc(OBJECTS), elsewhere, "--pod-uid", POD_UID)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "(written by the provider)" not in out.stdout
    check_volume(elsewhere)


def test_mount_error_is_shown_like_a_pod_event(
    start_daemon: Callable[..., Daemon], write_spc: Callable[..., Path], tmp_path: Path
) -> None:
    daemon = start_daemon()
    spc = write_spc("- objectName: x\n  backend: file\n  path: missing\n")
    out = mount(daemon, spc, tmp_path / "mnt")
    assert out.returncode == 1
    assert (
        "error: failed to mount secrets store objects for pod default/local-pod, err: rpc "
        "error: code = NotFound desc = objects[0] (objectName 'x'): file 'missing' not found"
    ) in out.stderr  # on stderr, as every command's errors
    assert "csiprovider: error" not in out.stdout
    assert visible(tmp_path / "mnt") == {}


def test_watch_picks_up_rotation(
    start_daemon: Callable[..., Daemon],
    write_spc: Callable[..., Path],
    tmp_path: Path,
    file_root: Path,
) -> None:
    daemon = start_daemon()
    target = tmp_path / "mnt"
    log = tmp_path / "watch.out"
    with open(log, "w") as handle:
        proc = subprocess.Popen(
            cli(
                "mount",
                "--spc",
                str(write_spc(OBJECTS)),
                "--target",
                str(target),
                "--providers-dir",
                str(daemon.providers_dir),
                "--watch",
                "0.3",
            ),
            stdout=handle,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
    try:
        _wait_for(lambda: "mounted 3 object(s)" in log.read_text(), "first mount")
        (file_root / "default" / "db" / "password").write_text("e2e-pass-rotated")
        _wait_for(lambda: "rotated: db-password" in log.read_text(), "rotation")
        assert (target / "password").read_bytes() == b"e2e-pass-rotated"
        assert len([p for p in os.listdir(target) if p.startswith("..2")]) == 1
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0
    assert "e2e-pass-rotated" not in log.read_text()


def _wait_for(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_settings_from_environment(
    start_daemon: Callable[..., Daemon], write_spc: Callable[..., Path], tmp_path: Path
) -> None:
    daemon = start_daemon(
        names=("alpha", "beta"),
        env={
            "CSIPROVIDER_NAMES": "alpha,beta",
            "CSIPROVIDER_WRITE_MODE": "provider",
            "CSIPROVIDER_KUBELET_PODS_DIR": str(tmp_path / "pods"),
            "CSIPROVIDER_LOG_FORMAT": "text",
        },
    )
    target = pod_volume(tmp_path / "pods")
    out = mount(daemon, write_spc(OBJECTS, provider="beta"), target, "--pod-uid", POD_UID)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "(written by the provider)" in out.stdout
    check_volume(target)
    assert " mount " in daemon.log() and "result=OK" in daemon.log()  # text format
