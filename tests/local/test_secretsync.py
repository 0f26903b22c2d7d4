"""secretObjects rendered into Secret manifests the way the driver's sync builds them."""

from __future__ import annotations

import base64
import datetime
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from csiprovider.atomic_writer import FileProjection, write_atomic
from csiprovider.local.secretsync import SyncError, dump_manifests, mounted_files, render_secrets


def mount(target: Path, files: dict[str, bytes]) -> Path:
    write_atomic(target, {k: FileProjection(data=v, mode=0o644) for k, v in files.items()})
    return target


def cert_for(key: Any, cn: str) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def decoded(secret: dict[str, Any]) -> dict[str, bytes]:
    return {k: base64.b64decode(v) for k, v in secret["data"].items()}


def test_opaque_with_labels_and_annotations(tmp_path: Path) -> None:
    target = mount(tmp_path, {"user": b"u1", "pass": b"p1", "nested/x": b"n"})
    (secret,) = render_secrets(
        [
            {
                "secretName": " db ",
                "type": "Opaque",
                "labels": {"app": "web"},
                "annotations": {"note": "x"},
                "data": [
                    {"objectName": "user", "key": "username"},
                    {"objectName": " pass", "key": "password "},
                ],
            }
        ],
        target,
        "prod",
    )
    assert secret["metadata"] == {
        "name": "db",
        "namespace": "prod",
        "annotations": {"note": "x"},
        "labels": {"app": "web", "secrets-store.csi.k8s.io/managed": "true"},
    }
    assert secret["type"] == "Opaque"
    assert decoded(secret) == {"username": b"u1", "password": b"p1"}
    assert mounted_files(target) == {
        "user": str(target / "user"),
        "pass": str(target / "pass"),
        "nested/x": str(target / "nested" / "x"),
    }


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ({"type": "Opaque", "data": [{"objectName": "a", "key": "k"}]}, "secret name is empty"),
        (
            {"secretName": "s", "data": [{"objectName": "a", "key": "k"}]},
            "secret s: failed to validate secret object: secret type is empty",
        ),
        (
            {"secretName": "s", "type": "Opaque"},
            "secret s: failed to validate secret object: data is empty",
        ),
        (
            {"secretName": "s", "type": "Opaque", "data": [{"objectName": "a", "key": " "}]},
            "secret s: key in secretObjects.data is empty",
        ),
        (
            {"secretName": "s", "type": "Opaque", "data": [{"objectName": "missing", "key": "k"}]},
            "secret s: file matching objectName missing not found in the pod",
        ),
        (
            {
                "secretName": "s",
                "type": "kubernetes.io/tls",
                "data": [{"objectName": "a", "key": "ca.crt"}],
            },
            "key 'ca.crt' is not supported. Only 'tls.key' and 'tls.crt' are supported",
        ),
    ],
)
def test_errors(tmp_path: Path, obj: dict[str, Any], message: str) -> None:
    target = mount(tmp_path, {"a": b"top-secret-value"})
    with pytest.raises(SyncError) as info:
        render_secrets([obj], target, "default")
    assert message in str(info.value)
    assert "top-secret-value" not in str(info.value)


@pytest.mark.parametrize("kind", ["rsa-pkcs1", "rsa-pkcs8", "ec-pkcs8", "ec-sec1"])
def test_tls_split(tmp_path: Path, kind: str) -> None:
    key: Any = (
        rsa.generate_private_key(65537, 2048)
        if kind.startswith("rsa")
        else ec.generate_private_key(ec.SECP256R1())
    )
    fmt = (
        serialization.PrivateFormat.PKCS8
        if kind.endswith("pkcs8")
        else serialization.PrivateFormat.TraditionalOpenSSL
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())
    leaf, ca = (
        cert_for(key, "leaf.example"),
        cert_for(ec.generate_private_key(ec.SECP256R1()), "ca"),
    )
    bundle = key_pem + pem(leaf) + pem(ca)
    target = mount(tmp_path, {"bundle.pem": bundle})
    (secret,) = render_secrets(
        [
            {
                "secretName": "tls",
                "type": "kubernetes.io/tls",
                "data": [
                    {"objectName": "bundle.pem", "key": "tls.crt"},
                    {"objectName": "bundle.pem", "key": "tls.key"},
                ],
            }
        ],
        target,
        "default",
    )
    data = decoded(secret)
    assert data["tls.crt"] == pem(leaf) + pem(ca)
    header = b"RSA PRIVATE KEY" if kind.startswith("rsa") else b"EC PRIVATE KEY"
    assert data["tls.key"].startswith(b"-----BEGIN " + header + b"-----")
    loaded: Any = serialization.load_pem_private_key(data["tls.key"], None)
    assert loaded.public_key().public_numbers() == leaf.public_key().public_numbers()  # type: ignore[union-attr]


def test_hidden_entries_are_not_files(tmp_path: Path) -> None:
    target = mount(tmp_path, {"a": b"1"})
    (target / "..stray").write_text("x")
    assert set(mounted_files(target)) == {"a"}
    assert os.path.islink(target / "..data")


def test_dump_round_trips(tmp_path: Path) -> None:
    target = mount(tmp_path, {"a": b"\x00\xffbinary"})
    secrets = render_secrets(
        [
            {"secretName": "s1", "type": "Opaque", "data": [{"objectName": "a", "key": "k"}]},
            {"secretName": "s2", "type": "Opaque", "data": [{"objectName": "a", "key": "k"}]},
        ],
        target,
        "ns",
    )
    docs = list(yaml.safe_load_all(dump_manifests(secrets)))
    assert [d["metadata"]["name"] for d in docs] == ["s1", "s2"]
    assert base64.b64decode(docs[0]["data"]["k"]) == b"\x00\xffbinary"
    assert docs[0]["apiVersion"] == "v1" and docs[0]["kind"] == "Secret"


def test_tls_from_pfx(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.serialization import pkcs12

    key = rsa.generate_private_key(65537, 2048)
    leaf = cert_for(key, "pfx.example")
    pfx = pkcs12.serialize_key_and_certificates(b"x", key, leaf, None, serialization.NoEncryption())
    target = mount(tmp_path, {"cert.pfx": pfx})
    (secret,) = render_secrets(
        [
            {
                "secretName": "tls",
                "type": "kubernetes.io/tls",
                "data": [
                    {"objectName": "cert.pfx", "key": "tls.crt"},
                    {"objectName": "cert.pfx", "key": "tls.key"},
                ],
            }
        ],
        target,
        "default",
    )
    data = decoded(secret)
    assert data["tls.crt"] == pem(leaf)
    assert data["tls.key"].startswith(b"-----BEGIN RSA PRIVATE KEY-----")
