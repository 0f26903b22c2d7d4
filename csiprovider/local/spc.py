"""Reading a SecretProviderClass manifest (for `csiprovider mount`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

KIND = "SecretProviderClass"
GROUP = "secrets-store.csi.x-k8s.io"


class SpcError(ValueError):
    """The manifest is not a usable SecretProviderClass; the message says why."""


@dataclass(frozen=True)
class SecretProviderClass:
    name: str
    namespace: str | None
    provider: str
    parameters: Mapping[str, str]
    secret_objects: Sequence[Mapping[str, Any]] = field(default_factory=list)


def load_spc(path: str | Path, name: str | None = None) -> SecretProviderClass:
    """The SecretProviderClass of a YAML file: the one named `name`, or the only one
    (a file of several needs a name to choose)."""
    try:
        docs = list(yaml.safe_load_all(Path(path).read_text()))
    except OSError as exc:
        raise SpcError(f"cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise SpcError(f"{path} is not valid YAML: {exc}") from None
    found = [d for d in docs if isinstance(d, dict) and d.get("kind") == KIND]
    if not found:
        raise SpcError(f"{path} holds no document of kind {KIND}")
    names = [
        str((d.get("metadata") or {}).get("name", ""))
        if isinstance(d.get("metadata"), dict)
        else ""
        for d in found
    ]
    if name is not None:
        if name not in names:
            raise SpcError(
                f"{path} has no {KIND} named {name!r}; it has: {', '.join(repr(n) for n in names)}"
            )
        return parse_spc(found[names.index(name)], str(path))
    if len(found) > 1:
        raise SpcError(
            f"{path} holds {len(found)} SecretProviderClasses "
            f"({', '.join(repr(n) for n in names)}); pick one with --spc-name"
        )
    return parse_spc(found[0], str(path))


def parse_spc(doc: Mapping[str, Any], where: str = "manifest") -> SecretProviderClass:
    """Validate the fields the driver relies on, as the API server's schema would."""
    api = str(doc.get("apiVersion", ""))
    if not api.startswith(f"{GROUP}/"):
        raise SpcError(f"{where}: apiVersion must be {GROUP}/v1, got {api!r}")
    meta = doc.get("metadata") or {}
    name = meta.get("name") if isinstance(meta, dict) else None
    if not isinstance(name, str) or not name:
        raise SpcError(f"{where}: metadata.name is required")
    spec = doc.get("spec")
    if not isinstance(spec, dict):
        raise SpcError(f"{where}: spec is required")
    provider = spec.get("provider")
    if not isinstance(provider, str) or not provider:
        raise SpcError(f"{where}: spec.provider is required (the provider's socket name)")
    raw_params = spec.get("parameters") or {}
    if not isinstance(raw_params, dict):
        raise SpcError(f"{where}: spec.parameters must be a map of strings")
    for key, value in raw_params.items():
        if not isinstance(value, str):
            raise SpcError(
                f"{where}: spec.parameters.{key} must be a string; quote the value in YAML"
            )
    secret_objects = spec.get("secretObjects") or []
    if not isinstance(secret_objects, list):
        raise SpcError(f"{where}: spec.secretObjects must be a list")
    namespace = meta.get("namespace")
    return SecretProviderClass(
        name=name,
        namespace=namespace if isinstance(namespace, str) else None,
        provider=provider,
        parameters={str(k): v for k, v in raw_params.items()},
        secret_objects=secret_objects,
    )
