"""Their deployments run our image: the exact container arguments that ASCP's Helm chart
and vault-helm's CSI DaemonSet render (written down from their templates) start this
daemon, which then serves a Mount. Only the host paths are moved under a temporary
directory; anything else a cluster gives the pod comes in as environment, as it would.

- ASCP chart (charts/secrets-store-csi-driver-provider-aws/templates/daemonset.yaml, default
  values plus `k8sThrottlingParams`, `eksAddonVersion`, `podIdentityHttpTimeout`):
  the provider writes the files (ASCP's default), socket `<provider-volume>/aws.sock`.
- ASCP with `driverWritesSecrets: true`: the driver writes them.
- vault-helm (templates/csi-daemonset.yaml, defaults): `--endpoint=/provider/vault.sock
  --log-level=info --hmac-secret-name=<release>-csi-provider-hmac-key`, VAULT_ADDR in env.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from e2e.conftest import ROOT, cli
from testkit.servers import KubeAPI, OpenBao, Signer, free_port

ASCP_SPC = """apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata: {name: aws-secrets}
spec:
  provider: aws
  parameters:
    region: us-east-1
    objects: |
      - objectName: "UpstreamSecret"
        objectType: "secretsmanager"
"""
VAULT_SPC = """apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata: {name: vault-kv}
spec:
  provider: vault
  parameters:
    roleName: app
    objects: |
      - objectName: "upstream"
        secretPath: "secret/data/e2e-upstream"
        secretKey: "v"
"""


def ascp_args(volume: Path, driver_writes: bool) -> list[str]:
    args = [f"--provider-volume={volume}"]
    if driver_writes:
        args.append("--driver-writes-secrets=true")
    return [
        *args,
        "--qps=5",
        "--burst=10",
        "--eks-addon-version=v3.1.1-eksbuild.1",
        "--pod-identity-http-timeout=100ms",
    ]


def vault_helm_args(provider: Path) -> list[str]:
    return [
        f"--endpoint={provider}/vault.sock",
        "--log-level=info",
        "--hmac-secret-name=vault-csi-provider-hmac-key",
    ]


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        proc.kill()
        proc.wait()


def start(
    started: list[subprocess.Popen[bytes]],
    args: list[str],
    env: dict[str, str],
    sock: Path,
    log: Path,
) -> None:
    environ = {
        k: v for k, v in os.environ.items() if not k.startswith(("CSIPROVIDER_", "AWS_", "VAULT_"))
    }
    # Not in their arguments: the probe port (theirs is :8080) is moved off the host's.
    environ["CSIPROVIDER_HEALTH_ADDR"] = f"127.0.0.1:{free_port()}"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cli("serve", *args),
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env={**environ, **env},
        )
    started.append(proc)
    deadline = time.monotonic() + 60  # only against a hang
    while True:
        with socket.socket(socket.AF_UNIX) as probe:
            try:
                probe.connect(str(sock))
                return
            except OSError:
                pass
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)


def mount(spc: Path, target: Path, sock: Path, token: Path, audience: str) -> str:
    out = subprocess.run(
        cli(
            "mount",
            "--spc",
            str(spc),
            "--target",
            str(target),
            "--socket",
            str(sock),
            "--service-account",
            "app",
            "--pod-name",
            "web-0",
            "--pod-uid",
            "uid-up",
            "--token",
            f"{audience}={token}",
        ),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


@pytest.mark.parametrize("driver_writes", [False, True])
def test_ascp_chart_arguments(
    daemon: list[subprocess.Popen[bytes]],
    moto: str,
    kube_api: KubeAPI,
    signer: Signer,
    tmp_path: Path,
    driver_writes: bool,
) -> None:
    admin = {
        "endpoint_url": moto,
        "region_name": "us-east-1",
        "aws_access_key_id": "admin",
        "aws_secret_access_key": "admin",
    }
    client = boto3.client("secretsmanager", **admin)  # type: ignore[call-overload]
    with contextlib.suppress(client.exceptions.ResourceExistsException):
        client.create_secret(Name="UpstreamSecret", SecretString="upstream-aws-value")
    kube_api.service_accounts[("default", "app")] = {
        "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/app"
    }
    volume = tmp_path / "pv"  # stands for /var/run/secrets-store-csi-providers
    log = tmp_path / "daemon.log"
    start(
        daemon,
        ascp_args(volume, driver_writes),
        {"CSIPROVIDER_KUBE_API_URL": kube_api.url, "AWS_ENDPOINT_URL": moto},
        volume / "aws.sock",
        log,
    )
    spc = tmp_path / "spc.yaml"
    spc.write_text(ASCP_SPC)
    token = tmp_path / "token"
    token.write_text(signer.token("default", "app", ["sts.amazonaws.com"]))
    target = tmp_path / "mnt"
    mount(spc, target, volume / "aws.sock", token, "sts.amazonaws.com")
    assert (target / "UpstreamSecret").read_text() == "upstream-aws-value"
    started = next(
        json.loads(line) for line in log.read_text().splitlines() if "csiprovider started" in line
    )
    assert started["write_mode"] == ("driver" if driver_writes else "provider")
    assert started["eks_addon_version"] == "v3.1.1-eksbuild.1"
    assert started["providers"] == {"aws": "aws"}


def test_vault_csi_provider_raw_manifest_keeps_a_default_hmac_secret(
    daemon: list[subprocess.Popen[bytes]],
    openbao: OpenBao,
    kube_api: KubeAPI,
    signer: Signer,
    tmp_path: Path,
) -> None:
    """deployment/vault-csi-provider.yaml passes no -hmac-secret-name: as
    vault-csi-provider, the key lives in the Secret vault-csi-provider-hmac-key."""
    kube_api.secrets.pop(("csi", "vault-csi-provider-hmac-key"), None)
    openbao.api("POST", "secret/data/e2e-upstream", {"data": {"v": "upstream-vault-value"}})
    provider = tmp_path / "provider"
    provider.mkdir()
    start(
        daemon,
        [f"-endpoint={provider}/vault.sock", "-log-level=info"],
        {
            "VAULT_ADDR": openbao.addr,
            "CSIPROVIDER_KUBE_API_URL": kube_api.url,
            "CSIPROVIDER_HMAC_SECRET_NAMESPACE": "csi",
        },
        provider / "vault.sock",
        tmp_path / "daemon.log",
    )
    assert ("csi", "vault-csi-provider-hmac-key") in kube_api.secrets


def test_vault_helm_csi_daemonset_arguments(
    daemon: list[subprocess.Popen[bytes]],
    openbao: OpenBao,
    kube_api: KubeAPI,
    signer: Signer,
    tmp_path: Path,
) -> None:
    openbao.api("POST", "secret/data/e2e-upstream", {"data": {"v": "upstream-vault-value"}})
    provider = tmp_path / "provider"
    provider.mkdir()
    log = tmp_path / "daemon.log"
    start(
        daemon,
        vault_helm_args(provider),
        {
            "VAULT_ADDR": openbao.addr,
            "CSIPROVIDER_KUBE_API_URL": kube_api.url,
            "CSIPROVIDER_HMAC_SECRET_NAMESPACE": "csi",
        },
        provider / "vault.sock",
        log,
    )
    spc = tmp_path / "spc.yaml"
    spc.write_text(VAULT_SPC)
    token = tmp_path / "token"
    token.write_text(signer.token("default", "app", ["vault"], pod="web-0", pod_uid="uid-up"))
    target = tmp_path / "mnt"
    mount(spc, target, provider / "vault.sock", token, "vault")
    assert (target / "upstream").read_text() == "upstream-vault-value"
    assert ("csi", "vault-csi-provider-hmac-key") in kube_api.secrets
