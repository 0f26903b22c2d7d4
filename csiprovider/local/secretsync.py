"""Render `spec.secretObjects` into Kubernetes Secret manifests, as the driver's sync does.

The driver builds each Secret from the files in the mounted volume (not from the
provider's response): `data[].objectName` names a file there, `key` the Secret key. For
`kubernetes.io/tls` it splits a PEM bundle into `tls.crt` (certificates only) and
`tls.key` (the key, re-encoded as PKCS#1 RSA or SEC1 EC).
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12

MANAGED_LABEL = "secrets-store.csi.k8s.io/managed"
TLS = "kubernetes.io/tls"


class SyncError(ValueError):
    """A secretObject cannot be built; worded like the driver's events, never with content."""


def mounted_files(target_dir: str | os.PathLike[str]) -> dict[str, str]:
    """Relative path → absolute path of every file in the volume, skipping `..` entries."""
    root = Path(target_dir)
    files: dict[str, str] = {}
    for entry in sorted(os.listdir(root)):
        if entry.startswith(".."):
            continue
        full = root / entry
        if full.is_dir():  # follows the symlink into ..data
            for dirpath, _dirs, names in os.walk(full, followlinks=True):
                for name in names:
                    path = Path(dirpath) / name
                    files[str(Path(entry) / path.relative_to(full))] = str(path)
        elif full.exists():
            files[entry] = str(full)
    return files


def render_secrets(
    secret_objects: Sequence[Mapping[str, Any]],
    target_dir: str | os.PathLike[str],
    namespace: str,
) -> list[dict[str, Any]]:
    """One Secret manifest per secretObject, in SPC order."""
    files = mounted_files(target_dir)
    return [_render(obj, files, namespace) for obj in secret_objects]


def dump_manifests(secrets: Sequence[Mapping[str, Any]]) -> str:
    return yaml.safe_dump_all([dict(s) for s in secrets], sort_keys=False)


def _render(obj: Mapping[str, Any], files: Mapping[str, str], namespace: str) -> dict[str, Any]:
    name = str(obj.get("secretName") or "").strip()
    if not name:
        raise SyncError("failed to validate secret object in spc: secret name is empty")
    raw_type = str(obj.get("type") or "")
    if not raw_type:
        raise SyncError(f"secret {name}: failed to validate secret object: secret type is empty")
    secret_type = raw_type.strip() or "Opaque"  # the driver validates before trimming
    entries = obj.get("data") or []
    if not entries:
        raise SyncError(f"secret {name}: failed to validate secret object: data is empty")
    data: dict[str, str] = {}
    for entry in entries:
        object_name = str(entry.get("objectName") or "").strip()
        key = str(entry.get("key") or "").strip()
        if not object_name:
            raise SyncError(f"secret {name}: object name in secretObjects.data is empty")
        if not key:
            raise SyncError(f"secret {name}: key in secretObjects.data is empty")
        if object_name not in files:
            raise SyncError(
                f"secret {name}: file matching objectName {object_name} not found in the pod"
            )
        content = Path(files[object_name]).read_bytes()
        if secret_type == TLS:
            content = _tls_part(content, key, name, object_name)
        data[key] = base64.b64encode(content).decode()
    labels = {**(obj.get("labels") or {}), MANAGED_LABEL: "true"}
    metadata: dict[str, Any] = {"name": name, "namespace": namespace, "labels": labels}
    if obj.get("annotations"):
        metadata["annotations"] = dict(obj["annotations"])
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata,
        "type": secret_type,
        "data": data,
    }


def _tls_part(content: bytes, key: str, secret: str, object_name: str) -> bytes:
    if key not in ("tls.crt", "tls.key"):
        raise SyncError(
            f"secret {secret}: key '{key}' is not supported. Only 'tls.key' and "
            "'tls.crt' are supported"
        )
    try:
        return _cert_chain(content) if key == "tls.crt" else _private_key(content)
    except (ValueError, TypeError) as exc:
        raise SyncError(
            f"secret {secret}: failed to get cert data from file {object_name}: "
            f"{type(exc).__name__}"
        ) from None


def _cert_chain(content: bytes) -> bytes:
    if b"-----BEGIN" in content:
        certs = x509.load_pem_x509_certificates(content)
    else:
        _key, cert, extra = pkcs12.load_key_and_certificates(content, None)
        certs = ([cert] if cert else []) + list(extra)
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def _private_key(content: bytes) -> bytes:
    key: Any = None
    blocks = [m for m in _PEM_BLOCK.finditer(content) if m.group(1) != b"CERTIFICATE"]
    if blocks:  # like the driver: the last non-certificate block is the key
        key = serialization.load_pem_private_key(blocks[-1].group(0), password=None)
    elif b"-----BEGIN" not in content:
        key, _cert, _extra = pkcs12.load_key_and_certificates(content, None)
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ValueError("unknown private key type: only RSA and ECDSA are supported")
    # TraditionalOpenSSL is PKCS#1 "RSA PRIVATE KEY" for RSA and SEC1 "EC PRIVATE KEY" for EC.
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----.*?-----END \1-----\s*", re.S)
