"""Every example in daemonset/examples, mounted as the driver and the sync controller
mount it (testkit/go/driver: a pod volume the driver writes, one a provider-writes daemon
writes, and the sync controller's call) against the real test servers (OpenBao,
PostgreSQL, moto, files, sops), so the examples cannot rot."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from csiprovider.local.secretsync import dump_manifests, mounted_files, render_secrets
from csiprovider.local.spc import load_spc
from e2e.conftest import ROOT, Daemon, cli
from testkit import driver, sops
from testkit.requests import pod_volume
from testkit.servers import KubeAPI, OpenBao, Postgres, Signer

EXAMPLES = ROOT / "daemonset" / "examples"
# The transit engines and keys the examples name (vault-transit.yaml,
# sops-vault-transit.yaml): created by `world`, decryptable by role app's policy. Not
# `transit` nor `sops`: tests/stores/ make those with keys of their own.
TRANSIT_KEYS = {"apps-transit": "web", "apps-sops": "web"}
# What the tests encrypt for the sops examples whose keys exist only at test time.
SOPS_PLAIN = b"db:\n  user: app\n  password: sops-example-pw-R4\n  port: 5432\n"


def transit_keys(bao: OpenBao) -> None:
    """The examples' transit engines and keys, and role app's policy to decrypt with them
    (idempotent: the server lives for the session)."""
    mounts = bao.api("GET", "sys/mounts") or {}
    mounts = mounts.get("data") or mounts
    policy = before = bao.api("GET", "sys/policies/acl/app")["data"]["policy"]
    for engine, key in TRANSIT_KEYS.items():
        if f"{engine}/" not in mounts:
            bao.api("POST", f"sys/mounts/{engine}", {"type": "transit"})
        bao.api("POST", f"{engine}/keys/{key}", {})
        rule = f'path "{engine}/decrypt/{key}" {{ capabilities = ["update"] }}\n'
        if rule not in policy:
            policy += rule
    if policy != before:
        bao.api("PUT", "sys/policies/acl/app", {"policy": policy})


@pytest.fixture
def world(
    start_daemon: Callable[..., Daemon],
    driver_binary: Path,
    openbao_db: OpenBao,
    postgres: Postgres,
    moto: str,
    kube_api: KubeAPI,
    signer: Signer,
    tmp_path: Path,
    file_root: Path,
) -> Iterator[dict[str, Any]]:
    openbao_db.api("POST", "secret/data/app", {"data": {"password": "ex-pw", "mode": "prod"}})
    transit_keys(openbao_db)
    admin = {
        "endpoint_url": moto,
        "region_name": "us-east-1",
        "aws_access_key_id": "admin",
        "aws_secret_access_key": "admin",
    }
    sm = boto3.client("secretsmanager", **admin)  # type: ignore[call-overload]
    if not sm.list_secrets(Filters=[{"Key": "name", "Values": ["prod/app/db"]}])["SecretList"]:
        sm.create_secret(
            Name="prod/app/db", SecretString=json.dumps({"username": "ex-user", "port": 5432})
        )
    ssm = boto3.client("ssm", **admin)  # type: ignore[call-overload]
    ssm.put_parameter(Name="/prod/app/feature-flags", Value="a,b", Type="String", Overwrite=True)
    ssm.put_parameter(
        Name="/prod/app/api-url", Value="https://api.example.com", Type="String", Overwrite=True
    )
    kube_api.service_accounts[("default", "app")] = {
        "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/app"
    }
    daemons = {
        mode: start_daemon(
            "--kube-api-url",
            kube_api.url,
            "--write-mode",
            mode,
            "--kubelet-pods-dir",
            str(tmp_path / "pods"),
            names=("csiprovider", "vault", "aws"),
            providers_dir=tmp_path / f"providers-{mode}",
            extra_env={"AWS_ENDPOINT_URL": moto},
        )
        for mode in ("driver", "provider")
    }
    tokens = {a: signer.token("default", "app", [a]) for a in ("vault", "sts.amazonaws.com")}
    with (
        driver.running(driver_binary, daemons["driver"].providers_dir) as plays_driver,
        driver.running(driver_binary, daemons["provider"].providers_dir) as plays_provider,
    ):
        yield {
            "daemon": daemons["driver"],
            "daemons": daemons,
            "driver": {"driver": plays_driver, "provider": plays_provider},
            "tokens": tokens,
            "pods": tmp_path / "pods",
            "vault": openbao_db,
            "moto": moto,
            "admin": admin,
        }


def logs(world: dict[str, Any]) -> str:
    return "".join(d.log() for d in world["daemons"].values())


def attempt(
    world: dict[str, Any],
    spc_path: Path,
    target: Path,
    *,
    mode: str = "driver",
    secrets: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
    tokens_in_secrets: bool = False,
) -> driver.Result:
    """The driver's NodePublishVolume of a pod (service account app) with this SPC."""
    spc = load_spc(spc_path)
    plays: driver.Driver = world["driver"][mode]
    return plays.mount(
        spc.provider,
        {**spc.parameters, **(params or {})},
        target,
        context=driver.volume_context(
            spc.name, namespace=spc.namespace or "default", service_account="app"
        ),
        secrets=secrets,
        tokens=driver.tokens(world["tokens"]),
        tokens_in_secrets=tokens_in_secrets,
    )


def mount(
    world: dict[str, Any],
    spc_path: Path,
    target: Path,
    *,
    secrets: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
    sync_out: Path | None = None,
    same_content: bool = True,
    sync_shape: bool = True,
) -> None:
    """The example mounted three ways, as the driver's harness plays them: a pod volume
    written by the driver (at `target`), one written by a provider-writes daemon, and the
    sync controller's call (files in the answer). All three give the same files
    (`same_content`: also the same bytes; not for values issued anew at each Mount)."""
    result = attempt(world, spc_path, target, secrets=secrets, params=params)
    assert result.ok, result.event + logs(world)
    assert result.wrote
    volume = pod_volume(world["pods"], uid=driver.POD_UID, name=f"{spc_path.stem}-{target.name}")
    written = attempt(world, spc_path, volume, mode="provider", secrets=secrets, params=params)
    assert written.ok, written.event + logs(world)
    assert not written.wrote  # the provider wrote it: the answer had no files
    assert read(volume).keys() == read(target).keys()
    if same_content:
        assert read(volume) == read(target)
    if sync_shape:
        spc = load_spc(spc_path)
        synced = world["driver"]["provider"].sync(
            spc.provider,
            {**spc.parameters, **(params or {})},
            namespace=spc.namespace or "default",
            service_account="app",
            tokens=driver.tokens(world["tokens"]),
        )
        assert synced.ok, synced.error + logs(world)
        assert synced.files.keys() == read(target).keys()
        if same_content:
            assert synced.files == read(target)
    if sync_out is not None:
        spc = load_spc(spc_path)
        manifests = render_secrets(spc.secret_objects, target, spc.namespace or "default")
        sync_out.write_text(dump_manifests(manifests))


def read(target: Path) -> dict[str, bytes]:
    """What a pod sees: visible names, symlinked directories followed."""
    return {name: Path(path).read_bytes() for name, path in mounted_files(target).items()}


def test_file_example(world: dict[str, Any], tmp_path: Path) -> None:
    mount(world, EXAMPLES / "file.yaml", tmp_path / "mnt", sync_out=tmp_path / "s.yaml")
    assert read(tmp_path / "mnt") == {
        "db-username": b"e2e-user-Zq81",
        "db-password": b"e2e-pass-Wk27",
    }
    (secret,) = yaml.safe_load_all((tmp_path / "s.yaml").read_text())
    assert base64.b64decode(secret["data"]["password"]) == b"e2e-pass-Wk27"


def test_vault_kv_example(world: dict[str, Any], tmp_path: Path) -> None:
    params = {"vaultAddress": world["vault"].addr}
    mount(world, EXAMPLES / "vault-kv.yaml", tmp_path / "mnt", params=params)
    # Kubernetes 1.35's opt-in: the tokens come in the secrets too
    opted_in = attempt(
        world,
        EXAMPLES / "vault-kv.yaml",
        tmp_path / "opt-in",
        params=params,
        tokens_in_secrets=True,
    )
    assert opted_in.ok, opted_in.event
    assert "csi.storage.k8s.io/serviceAccount.tokens" in json.loads(opted_in.sent["secrets"])
    assert read(tmp_path / "opt-in") == read(tmp_path / "mnt")
    got = read(tmp_path / "mnt")
    assert got["db-password"] == b"ex-pw"
    assert json.loads(got["app-config.json"]) == {"password": "ex-pw", "mode": "prod"}


def test_vault_pki_example_syncs_a_tls_secret(world: dict[str, Any], tmp_path: Path) -> None:
    mount(
        world,
        EXAMPLES / "vault-pki.yaml",
        tmp_path / "mnt",
        params={"vaultAddress": world["vault"].addr},
        sync_out=tmp_path / "s.yaml",
        same_content=False,  # a certificate issued at each Mount
    )
    pem = read(tmp_path / "mnt")["tls.pem"]
    assert b"PRIVATE KEY-----" in pem and pem.count(b"BEGIN CERTIFICATE") == 2
    (secret,) = yaml.safe_load_all((tmp_path / "s.yaml").read_text())
    assert secret["type"] == "kubernetes.io/tls"
    assert base64.b64decode(secret["data"]["tls.crt"]).count(b"BEGIN CERTIFICATE") == 2
    assert b"PRIVATE KEY" in base64.b64decode(secret["data"]["tls.key"])


def test_vault_database_example(world: dict[str, Any], postgres: Postgres, tmp_path: Path) -> None:
    mount(
        world,
        EXAMPLES / "vault-database.yaml",
        tmp_path / "mnt",
        params={"vaultAddress": world["vault"].addr},
        same_content=False,  # credentials issued at each Mount
    )
    got = read(tmp_path / "mnt")
    user = got["db-username"].decode()
    assert postgres.can_login(user, got["db-password"].decode()) == user


def test_aws_examples(world: dict[str, Any], tmp_path: Path) -> None:
    mount(world, EXAMPLES / "aws-secretsmanager.yaml", tmp_path / "sm")
    got = read(tmp_path / "sm")
    assert (got["db-username"], got["db-port"]) == (b"ex-user", b"5432")
    mount(world, EXAMPLES / "aws-ssm.yaml", tmp_path / "ssm")
    assert read(tmp_path / "ssm") == {
        "_prod_app_feature-flags": b"a,b",
        "api-url": b"https://api.example.com",
    }


def test_kms_example_with_encrypt_output(world: dict[str, Any], tmp_path: Path) -> None:
    key = boto3.client("kms", **world["admin"]).create_key()["KeyMetadata"]["KeyId"]
    out = subprocess.run(
        cli("encrypt", "--key-id", key, "--region", "us-east-1", "--context", "app=web"),
        input="kms-example-token",
        capture_output=True,
        text=True,
        timeout=60,
        env={
            **os.environ,
            "AWS_ENDPOINT_URL": world["moto"],
            "AWS_ACCESS_KEY_ID": "admin",
            "AWS_SECRET_ACCESS_KEY": "admin",
        },
    )
    assert out.returncode == 0, out.stderr
    ciphertext = yaml.safe_load(out.stdout)[0]["ciphertext"]
    spc = tmp_path / "aws-kms.yaml"
    spc.write_text(
        (EXAMPLES / "aws-kms.yaml")
        .read_text()
        .replace("cmVwbGFjZSB3aXRoIHRoZSBvdXRwdXQgb2YgY3NpcHJvdmlkZXIgZW5jcnlwdA==", ciphertext)
    )
    mount(world, spc, tmp_path / "mnt")
    assert read(tmp_path / "mnt") == {"api-token": b"kms-example-token"}


def test_mixed_native_example(world: dict[str, Any], tmp_path: Path) -> None:
    mount(world, EXAMPLES / "mixed-native.yaml", tmp_path / "mnt")
    assert read(tmp_path / "mnt") == {
        "db-username": b"e2e-user-Zq81",
        "db-port": b"5432",
        "api-url": b"https://api.example.com",
    }


def objects(spc: Path) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = yaml.safe_load(load_spc(spc).parameters["objects"])
    return found


def sops_placeholder(example: Path) -> str:
    """The placeholder document of an example's sops objects (one, in each of them)."""
    (document,) = {o["document"] for o in objects(example)}
    assert "PLACEHOLDER" in document
    return str(document)


def with_sops_document(example: Path, document: str, dest: Path) -> Path:
    """The example with its placeholder sops document replaced, in every object, by
    `document`, indented alike; every other byte as committed."""
    text = example.read_text()
    placeholder = sops_placeholder(example)
    first = placeholder.splitlines()[0]
    found = re.search(rf"^( +){re.escape(first)}$", text, re.M)
    assert found, first
    block = textwrap.indent(placeholder, found.group(1))
    assert text.count(block) == len(objects(example))
    dest.write_text(text.replace(block, textwrap.indent(document, found.group(1))))
    before, after = objects(example), objects(dest)
    assert [o.pop("document") for o in after] == [document] * len(after)
    assert after == [{k: v for k, v in o.items() if k != "document"} for o in before]
    assert {k: v for k, v in load_spc(dest).parameters.items() if k != "objects"} == {
        k: v for k, v in load_spc(example).parameters.items() if k != "objects"
    }
    return dest


def assert_sops_mount(got: dict[str, bytes], expected: bytes, log: str) -> None:
    """The sops examples' two objects: the whole document (the same data, in the same
    order, as `sops decrypt` prints) and the password picked by jmesPath."""
    assert set(got) == {"db.yaml", "db-password"}
    assert json.dumps(yaml.safe_load(got["db.yaml"])) == json.dumps(yaml.safe_load(expected))
    password = yaml.safe_load(expected)["db"]["password"]
    assert got["db-password"] == password.encode()
    assert password not in log


@pytest.mark.sops
def test_sops_age_example(world: dict[str, Any], tmp_path: Path) -> None:
    example = EXAMPLES / "sops-age.yaml"
    docs = [d for d in yaml.safe_load_all(example.read_text()) if d]
    (pod,) = [d for d in docs if d["kind"] == "Pod"]
    ref = pod["spec"]["volumes"][0]["csi"]["nodePublishSecretRef"]["name"]
    (secret,) = [d for d in docs if d["kind"] == "Secret" and d["metadata"]["name"] == ref]
    identity = secret["stringData"]["sops-age-key"]
    assert identity.startswith("AGE-SECRET-KEY-1")
    (document,) = {o["document"] for o in objects(example)}
    expected = sops.decrypt(document, "yaml", identity)

    # the driver passes the nodePublishSecretRef Secret's data in the Mount request
    mount(
        world,
        example,
        tmp_path / "mnt",
        secrets={"sops-age-key": identity},
        sync_shape=False,  # the sync controller passes no nodePublishSecretRef (below)
    )
    assert_sops_mount(read(tmp_path / "mnt"), expected, logs(world))
    assert identity not in logs(world)

    # a pod without the Secret gets nothing (the driver sends `null` secrets)
    without = attempt(world, example, tmp_path / "without")
    assert not without.ok and without.code == "PermissionDenied", without.event
    assert "no sops-age-key in the volume's nodePublishSecretRef" in without.event
    assert not read(tmp_path / "without")
    # nor does the sync controller, which has no nodePublishSecretRef to pass
    spc = load_spc(example)
    synced = world["driver"]["provider"].sync(spc.provider, spc.parameters, service_account="app")
    assert not synced.ok and "no sops-age-key" in synced.error


@pytest.mark.sops
def test_sops_kms_example_with_sops_output(world: dict[str, Any], tmp_path: Path) -> None:
    example = EXAMPLES / "sops-kms.yaml"
    (entry,) = yaml.safe_load(sops_placeholder(example))["sops"]["kms"]
    region = entry["arn"].split(":")[3]
    admin = {**world["admin"], "region_name": region}
    arn = boto3.client("kms", **admin).create_key()["KeyMetadata"]["Arn"]
    context = ",".join(f"{k}:{v}" for k, v in entry["context"].items())
    env = {
        "AWS_ENDPOINT_URL": world["moto"],
        "AWS_ACCESS_KEY_ID": "admin",
        "AWS_SECRET_ACCESS_KEY": "admin",
        "AWS_REGION": region,
    }
    document = sops.encrypt_with(
        SOPS_PLAIN, "yaml", ["--kms", arn, "--encryption-context", context], env
    )
    assert yaml.safe_load(document)["sops"]["kms"][0]["context"] == entry["context"]
    spc = with_sops_document(example, document, tmp_path / "sops-kms.yaml")
    mount(world, spc, tmp_path / "mnt")
    assert_sops_mount(read(tmp_path / "mnt"), sops.decrypt(document, "yaml", env=env), logs(world))


@pytest.mark.sops
def test_sops_vault_transit_example_with_sops_output(world: dict[str, Any], tmp_path: Path) -> None:
    example = EXAMPLES / "sops-vault-transit.yaml"
    (entry,) = yaml.safe_load(sops_placeholder(example))["sops"]["hc_vault"]
    engine, key = entry["engine_path"], entry["key_name"]
    assert TRANSIT_KEYS[engine] == key
    bao = world["vault"]
    env = {"VAULT_ADDR": bao.addr, "VAULT_TOKEN": bao.token}
    document = sops.encrypt_with(
        SOPS_PLAIN, "yaml", ["--hc-vault-transit", f"{bao.addr}/v1/{engine}/keys/{key}"], env
    )
    spc = with_sops_document(example, document, tmp_path / "sops-vault-transit.yaml")
    decrypts = bao.requests_to(f"{engine}/decrypt/{key}")
    mount(world, spc, tmp_path / "mnt", params={"vaultAddress": bao.addr})
    assert bao.requests_to(f"{engine}/decrypt/{key}") > decrypts  # by the pod's login
    assert_sops_mount(read(tmp_path / "mnt"), sops.decrypt(document, "yaml", env=env), logs(world))


def test_vault_transit_example_with_encrypt_output(world: dict[str, Any], tmp_path: Path) -> None:
    example = EXAMPLES / "vault-transit.yaml"
    (committed,) = objects(example)
    assert TRANSIT_KEYS[committed["mount"]] == committed["key"]
    bao = world["vault"]
    out = subprocess.run(
        cli(
            "encrypt",
            "--vault-transit",
            committed["key"],
            "--transit-mount",
            committed["mount"],
            "--object-name",
            committed["objectName"],
        ),
        input="transit-example-pw-K2",
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "VAULT_ADDR": bao.addr, "VAULT_TOKEN": bao.token},
    )
    assert out.returncode == 0, out.stderr
    (printed,) = yaml.safe_load(out.stdout)
    # the example is what encrypt prints, but for the ciphertext
    assert {k: v for k, v in printed.items() if k != "ciphertext"} == {
        k: v for k, v in committed.items() if k != "ciphertext"
    }
    assert printed["ciphertext"].startswith("vault:v1:")
    text = example.read_text()
    assert text.count(committed["ciphertext"]) == 1 and "PLACEHOLDER" in committed["ciphertext"]
    spc = tmp_path / "vault-transit.yaml"
    spc.write_text(text.replace(committed["ciphertext"], printed["ciphertext"]))
    path = f"{committed['mount']}/decrypt/{committed['key']}"
    decrypts = bao.requests_to(path)
    mount(world, spc, tmp_path / "mnt", params={"vaultAddress": bao.addr})
    assert bao.requests_to(path) > decrypts
    assert read(tmp_path / "mnt") == {"db-password": b"transit-example-pw-K2"}
    assert "transit-example-pw-K2" not in logs(world)


def test_every_example_is_covered() -> None:
    assert {p.name for p in EXAMPLES.glob("*.yaml")} == {
        "file.yaml",
        "vault-kv.yaml",
        "vault-pki.yaml",
        "vault-database.yaml",
        "aws-secretsmanager.yaml",
        "aws-ssm.yaml",
        "aws-kms.yaml",
        "mixed-native.yaml",
        "sops-age.yaml",
        "sops-kms.yaml",
        "sops-vault-transit.yaml",
        "vault-transit.yaml",
    }
