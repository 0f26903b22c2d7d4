"""An ASCP SecretProviderClass, unchanged, through `csiprovider mount` and a daemon
serving the name `aws`, against a moto server (endpoints from AWS_ENDPOINT_URL)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import boto3

from e2e.conftest import ROOT, Daemon, cli
from testkit.servers import KubeAPI, Signer

SPC = """apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata:
  name: aws-secrets
spec:
  provider: aws
  parameters:
    region: us-east-1
    objects: |
      - objectName: "MySecret"
        objectType: "secretsmanager"
        jmesPath:
          - path: username
            objectAlias: dbusername
      - objectName: "/app/param"
        objectType: "ssmparameter"
"""


def test_aws_spc_through_mount_command(
    start_daemon: Callable[..., Daemon],
    moto: str,
    kube_api: KubeAPI,
    signer: Signer,
    tmp_path: Path,
) -> None:
    admin = {
        "endpoint_url": moto,
        "region_name": "us-east-1",
        "aws_access_key_id": "admin",
        "aws_secret_access_key": "admin",
    }
    boto3.client("secretsmanager", **admin).create_secret(  # type: ignore[call-overload]
        Name="MySecret", SecretString=json.dumps({"username": "e2e-aws-user"})
    )
    boto3.client("ssm", **admin).put_parameter(  # type: ignore[call-overload]
        Name="/app/param", Value="e2e-aws-param", Type="String", Overwrite=True
    )
    kube_api.service_accounts[("default", "app")] = {
        "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/app"
    }
    daemon = start_daemon(
        "--kube-api-url", kube_api.url, names=("aws",), extra_env={"AWS_ENDPOINT_URL": moto}
    )
    spc = tmp_path / "spc.yaml"
    spc.write_text(SPC)
    token = tmp_path / "token"
    token.write_text(signer.token("default", "app", ["sts.amazonaws.com"]))
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
            "--service-account",
            "app",
            "--token",
            f"sts.amazonaws.com={token}",
        ),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr + daemon.log()
    assert (target / "dbusername").read_text() == "e2e-aws-user"
    assert (target / "_app_param").read_text() == "e2e-aws-param"
    assert json.loads((target / "MySecret").read_text()) == {"username": "e2e-aws-user"}
    assert "e2e-aws" not in out.stdout and "e2e-aws" not in daemon.log()
    assert "version dbusername: " in out.stdout and "version _app_param: 1" in out.stdout
