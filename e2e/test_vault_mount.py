"""A vault-csi-provider SecretProviderClass, unchanged, through `csiprovider mount` and a
daemon serving the name `vault`, against the real OpenBao."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from e2e.conftest import ROOT, Daemon, cli
from testkit.servers import OpenBao, Signer

SPC = """apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata:
  name: vault-kv
spec:
  provider: vault
  parameters:
    roleName: app
    vaultAddress: {addr}
    objects: |
      - objectName: "secret-1"
        secretPath: "secret/data/e2e-kv1"
        secretKey: "bar1"
        filePermission: 0624
      - objectName: "secret-2"
        secretPath: "/v1/secret/data/e2e-kv2"
        secretKey: "bar2"
"""


def test_vault_spc_through_mount_command(
    start_daemon: Callable[..., Daemon],
    openbao: OpenBao,
    signer: Signer,
    tmp_path: Path,
    kube_api: object,
) -> None:
    openbao.api("POST", "secret/data/e2e-kv1", {"data": {"bar1": "hello1"}})
    openbao.api("POST", "secret/data/e2e-kv2", {"data": {"bar2": "hello2"}})
    daemon = start_daemon(names=("vault",))
    spc = tmp_path / "spc.yaml"
    spc.write_text(SPC.format(addr=openbao.addr))
    token = tmp_path / "token"
    token.write_text(signer.token("default", "app", ["vault"], pod="web-0", pod_uid="uid-7"))
    target = tmp_path / "mnt"
    out = subprocess.run(
        cli(
            "mount",
            "--spc",
            str(spc),
            "--target",
            str(target),
            "--providers-dir",
            str(daemon.providers_dir),
            "--pod-name",
            "web-0",
            "--pod-uid",
            "uid-7",
            "--service-account",
            "app",
            "--token",
            f"vault={token}",
        ),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert (target / "secret-1").read_text() == "hello1"
    assert (target / "secret-2").read_text() == "hello2"
    assert (target / "secret-1").stat().st_mode & 0o777 == 0o624
    assert "hello" not in out.stdout and "hello" not in daemon.log()
    assert token.read_text() not in daemon.log()


def test_vault_csi_provider_style_flags(
    start_daemon: Callable[..., Daemon],
    openbao: OpenBao,
    signer: Signer,
    tmp_path: Path,
    kube_api: object,
) -> None:
    """The raw manifest's `-endpoint=/provider/vault.sock -log-level=info` works as is."""
    openbao.api("POST", "secret/data/e2e-kv1", {"data": {"bar1": "hello1"}})
    openbao.api("POST", "secret/data/e2e-kv2", {"data": {"bar2": "hello2"}})
    endpoint = tmp_path / "provider" / "vault.sock"
    daemon = start_daemon(
        f"-endpoint={endpoint}",
        "-log-level=warn",
        f"--vault-addr={openbao.addr}",
        names=(),
        wait=False,
    )
    spc = tmp_path / "spc.yaml"
    spc.write_text(SPC.format(addr='""'))  # no vaultAddress: the daemon's --vault-addr
    token = tmp_path / "token"
    token.write_text(signer.token("default", "app", ["vault"]))
    deadline = 60.0  # only against a hang: a busy machine waits
    start = time.monotonic()
    while not endpoint.exists():
        assert time.monotonic() - start < deadline, daemon.log()
        time.sleep(0.05)
    out = subprocess.run(
        cli(
            "mount",
            "--spc",
            str(spc),
            "--target",
            str(tmp_path / "mnt"),
            "--socket",
            str(endpoint),
            "--service-account",
            "app",
            "--token",
            f"vault={token}",
        ),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr + daemon.log()
    assert (tmp_path / "mnt" / "secret-2").read_text() == "hello2"
