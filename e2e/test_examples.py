"""Every example in daemonset/examples resolves through `csiprovider mount` against the
real test servers (OpenBao, PostgreSQL, moto, files), so the examples cannot rot."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from csiprovider.local.secretsync import mounted_files
from e2e.conftest import ROOT, Daemon, cli
from testkit.servers import KubeAPI, OpenBao, Postgres, Signer

EXAMPLES = ROOT / "daemonset" / "examples"


@pytest.fixture
def world(start_daemon: Callable[..., Daemon], openbao_db: OpenBao, postgres: Postgres,
          moto: str, kube_api: KubeAPI, signer: Signer, tmp_path: Path,
          file_root: Path) -> dict[str, Any]:
    openbao_db.api("POST", "secret/data/app", {"data": {"password": "ex-pw", "mode": "prod"}})
    admin = {"endpoint_url": moto, "region_name": "us-east-1",
             "aws_access_key_id": "admin", "aws_secret_access_key": "admin"}
    sm = boto3.client("secretsmanager", **admin)  # type: ignore[call-overload]
    if not sm.list_secrets(Filters=[{"Key": "name", "Values": ["prod/app/db"]}])["SecretList"]:
        sm.create_secret(Name="prod/app/db", SecretString=json.dumps(
            {"username": "ex-user", "port": 5432}))
    ssm = boto3.client("ssm", **admin)  # type: ignore[call-overload]
    ssm.put_parameter(Name="/prod/app/feature-flags", Value="a,b", Type="String", Overwrite=True)
    ssm.put_parameter(Name="/prod/app/api-url", Value="https://api.example.com",
                      Type="String", Overwrite=True)
    kube_api.service_accounts[("default", "app")] = {
        "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/app"}
    daemon = start_daemon("--kube-api-url", kube_api.url,
                          names=("csiprovider", "vault", "aws"),
                          extra_env={"AWS_ENDPOINT_URL": moto})
    tokens = {}
    for audience in ("vault", "sts.amazonaws.com"):
        path = tmp_path / f"token-{audience}"
        path.write_text(signer.token("default", "app", [audience]))
        tokens[audience] = path
    return {"daemon": daemon, "tokens": tokens, "vault": openbao_db, "moto": moto,
            "admin": admin}


def mount(world: dict[str, Any], spc: Path, target: Path, *extra: str) -> str:
    args = ["mount", "--spc", str(spc), "--target", str(target), "--providers-dir",
            str(world["daemon"].providers_dir), "--service-account", "app"]
    for audience, path in world["tokens"].items():
        args += ["--token", f"{audience}={path}"]
    out = subprocess.run(cli(*args, *extra), capture_output=True, text=True, cwd=ROOT,
                         timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr + world["daemon"].log()
    return out.stdout


def read(target: Path) -> dict[str, bytes]:
    """What a pod sees: visible names, symlinked directories followed."""
    return {name: Path(path).read_bytes() for name, path in mounted_files(target).items()}


def test_file_example(world: dict[str, Any], tmp_path: Path) -> None:
    mount(world, EXAMPLES / "file.yaml", tmp_path / "mnt", "--sync-secret-out",
          str(tmp_path / "s.yaml"))
    assert read(tmp_path / "mnt") == {"db-username": b"e2e-user-Zq81",
                                      "db-password": b"e2e-pass-Wk27"}
    (secret,) = yaml.safe_load_all((tmp_path / "s.yaml").read_text())
    assert base64.b64decode(secret["data"]["password"]) == b"e2e-pass-Wk27"


def test_vault_kv_example(world: dict[str, Any], tmp_path: Path) -> None:
    mount(world, EXAMPLES / "vault-kv.yaml", tmp_path / "mnt", "--set",
          f"vaultAddress={world['vault'].addr}")
    got = read(tmp_path / "mnt")
    assert got["db-password"] == b"ex-pw"
    assert json.loads(got["app-config.json"]) == {"password": "ex-pw", "mode": "prod"}


def test_vault_pki_example_syncs_a_tls_secret(world: dict[str, Any], tmp_path: Path) -> None:
    mount(world, EXAMPLES / "vault-pki.yaml", tmp_path / "mnt", "--set",
          f"vaultAddress={world['vault'].addr}", "--sync-secret-out", str(tmp_path / "s.yaml"))
    pem = read(tmp_path / "mnt")["tls.pem"]
    assert b"PRIVATE KEY-----" in pem and pem.count(b"BEGIN CERTIFICATE") == 2
    (secret,) = yaml.safe_load_all((tmp_path / "s.yaml").read_text())
    assert secret["type"] == "kubernetes.io/tls"
    assert base64.b64decode(secret["data"]["tls.crt"]).count(b"BEGIN CERTIFICATE") == 2
    assert b"PRIVATE KEY" in base64.b64decode(secret["data"]["tls.key"])


def test_vault_database_example(world: dict[str, Any], postgres: Postgres,
                                tmp_path: Path) -> None:
    mount(world, EXAMPLES / "vault-database.yaml", tmp_path / "mnt", "--set",
          f"vaultAddress={world['vault'].addr}")
    got = read(tmp_path / "mnt")
    user = got["db-username"].decode()
    assert postgres.can_login(user, got["db-password"].decode()) == user


def test_aws_examples(world: dict[str, Any], tmp_path: Path) -> None:
    mount(world, EXAMPLES / "aws-secretsmanager.yaml", tmp_path / "sm")
    got = read(tmp_path / "sm")
    assert (got["db-username"], got["db-port"]) == (b"ex-user", b"5432")
    mount(world, EXAMPLES / "aws-ssm.yaml", tmp_path / "ssm")
    assert read(tmp_path / "ssm") == {"_prod_app_feature-flags": b"a,b",
                                      "api-url": b"https://api.example.com"}


def test_kms_example_with_encrypt_output(world: dict[str, Any], tmp_path: Path) -> None:
    key = boto3.client("kms", **world["admin"]).create_key()["KeyMetadata"]["KeyId"]
    out = subprocess.run(
        cli("encrypt", "--key-id", key, "--region", "us-east-1", "--context", "app=web"),
        input="kms-example-token", capture_output=True, text=True, timeout=60,
        env={**os.environ, "AWS_ENDPOINT_URL": world["moto"], "AWS_ACCESS_KEY_ID": "admin",
             "AWS_SECRET_ACCESS_KEY": "admin"})
    assert out.returncode == 0, out.stderr
    ciphertext = yaml.safe_load(out.stdout)[0]["ciphertext"]
    spc = tmp_path / "aws-kms.yaml"
    spc.write_text((EXAMPLES / "aws-kms.yaml").read_text().replace(
        "cmVwbGFjZSB3aXRoIHRoZSBvdXRwdXQgb2YgY3NpcHJvdmlkZXIgZW5jcnlwdA==", ciphertext))
    mount(world, spc, tmp_path / "mnt")
    assert read(tmp_path / "mnt") == {"api-token": b"kms-example-token"}


def test_mixed_native_example(world: dict[str, Any], tmp_path: Path) -> None:
    mount(world, EXAMPLES / "mixed-native.yaml", tmp_path / "mnt")
    assert read(tmp_path / "mnt") == {"db-username": b"e2e-user-Zq81", "db-port": b"5432",
                                      "api-url": b"https://api.example.com"}


def test_every_example_is_covered() -> None:
    assert {p.name for p in EXAMPLES.glob("*.yaml")} == {
        "file.yaml", "vault-kv.yaml", "vault-pki.yaml", "vault-database.yaml",
        "aws-secretsmanager.yaml", "aws-ssm.yaml", "aws-kms.yaml", "mixed-native.yaml"}


