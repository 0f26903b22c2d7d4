"""The MountRequest, parsed once into a typed, validated `MountParams`.

Everything downstream (dialects, resolver, writer) works on `MountParams`, never on
the raw JSON strings, so every request-level check lives here.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from csiprovider import limits
from csiprovider.errors import InvalidArgument
from csiprovider.v1alpha1 import service_pb2 as pb

POD_NAME = "csi.storage.k8s.io/pod.name"
POD_NAMESPACE = "csi.storage.k8s.io/pod.namespace"
POD_UID = "csi.storage.k8s.io/pod.uid"
SERVICE_ACCOUNT_NAME = "csi.storage.k8s.io/serviceAccount.name"
SERVICE_ACCOUNT_TOKENS = "csi.storage.k8s.io/serviceAccount.tokens"
EPHEMERAL = "csi.storage.k8s.io/ephemeral"
SECRET_PROVIDER_CLASS = "secretProviderClass"

_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")

# Kubernetes' own name rules (DNS-1123 label / subdomain); UIDs are UUIDs in practice.
_LABEL = r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?"
_SEGMENT = r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?"
_SUBDOMAIN = re.compile(rf"(?=.{{1,253}}$){_SEGMENT}(?:\.{_SEGMENT})*")
_NAME_RULES = {
    POD_NAMESPACE: (re.compile(_LABEL), "a DNS-1123 label (lowercase letters, digits, '-')"),
    POD_NAME: (_SUBDOMAIN, "a DNS-1123 subdomain"),
    SERVICE_ACCOUNT_NAME: (_SUBDOMAIN, "a DNS-1123 subdomain"),
    POD_UID: (re.compile(r"[A-Za-z0-9][-A-Za-z0-9]{0,127}"), "a UID (letters, digits, '-')"),
}


@dataclass(frozen=True)
class PodInfo:
    """Who the volume is for, as the kubelet told the driver."""

    name: str
    namespace: str
    uid: str
    service_account: str


@dataclass(frozen=True)
class ServiceAccountToken:
    """A projected service-account token the driver obtained for one audience."""

    token: str = field(repr=False)
    expiration: str


@dataclass(frozen=True)
class MountParams:
    """One Mount call, validated.

    `parameters` holds every attribute string (SPC parameters and volume context);
    `secrets` and tokens are kept out of repr so a logged params object leaks nothing.
    """

    parameters: Mapping[str, str]
    target_path: str
    default_mode: int
    pod: PodInfo
    spc_name: str
    secrets: Mapping[str, str] = field(repr=False)
    tokens: Mapping[str, ServiceAccountToken] = field(repr=False)
    current_versions: Mapping[str, str]


def parse_mount_request(request: pb.MountRequest) -> MountParams:
    """Validate a MountRequest; raise InvalidArgument naming the field and the fix."""
    limits.check_size(
        request.attributes,
        "MountRequest.attributes",
        limits.MAX_ATTRIBUTES_BYTES,
        "shorten the SecretProviderClass parameters",
    )
    limits.check_size(
        request.secrets,
        "MountRequest.secrets",
        limits.MAX_SECRETS_BYTES,
        "shorten the nodePublishSecretRef Secret",
    )
    attributes = _string_map(request.attributes, "attributes", required=True)
    # The driver sends Go's json.Marshal of the volume's secrets: `null` for a volume
    # without nodePublishSecretRef (a nil map), which is most of them.
    raw_secrets = "" if request.secrets.strip() == "null" else request.secrets
    secrets = _string_map(raw_secrets, "secrets", required=False)
    # With Kubernetes 1.35's opt-in the driver passes the service-account tokens in the
    # secrets too (and copies them to the attributes): they are not the Secret's data.
    secret_tokens = secrets.pop(SERVICE_ACCOUNT_TOKENS, "")
    for key, (rule, what) in _NAME_RULES.items():
        value = attributes.get(key, "")
        if value and not rule.fullmatch(value):
            raise InvalidArgument(
                f"invalid {key} {limits.quote(value)}: it must be {what}, as Kubernetes names it"
            )
    target_path = request.target_path
    if not target_path:
        raise InvalidArgument(
            "missing target path: MountRequest.target_path must name the pod volume directory"
        )
    if (
        not os.path.isabs(target_path)
        or os.path.normpath(target_path) != target_path
        or "\x00" in target_path
    ):
        raise InvalidArgument(
            f"invalid target path {limits.quote(target_path)}: it must be a clean absolute "
            "directory path (no '..', '.', '//' or trailing '/')"
        )
    return MountParams(
        parameters={k: v for k, v in attributes.items() if k != SERVICE_ACCOUNT_TOKENS},
        target_path=target_path,
        default_mode=parse_permission(request.permission),
        pod=PodInfo(
            name=attributes.get(POD_NAME, ""),
            namespace=attributes.get(POD_NAMESPACE, ""),
            uid=attributes.get(POD_UID, ""),
            service_account=attributes.get(SERVICE_ACCOUNT_NAME, ""),
        ),
        spc_name=attributes.get(SECRET_PROVIDER_CLASS, ""),
        secrets=secrets,
        tokens=_tokens(attributes.get(SERVICE_ACCOUNT_TOKENS) or secret_tokens),
        current_versions={v.id: v.version for v in request.current_object_version},
    )


def parse_permission(raw: str) -> int:
    """The driver JSON-encodes the file mode as a decimal number ("420" is 0644)."""
    if not raw:
        raise InvalidArgument(
            "missing permission: MountRequest.permission must be a JSON decimal file mode, "
            'e.g. "420"'
        )
    try:
        value = json.loads(raw) if len(raw) <= 16 else None
    except ValueError:
        value = None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0o777:
        raise InvalidArgument(
            f"invalid permission {limits.quote(raw)}: expected a JSON decimal file mode "
            'between 0 and 511, e.g. "420" for 0644'
        )
    return value


def _json_object(raw: str, name: str, expected: str) -> dict[str, Any]:
    """Decode a JSON object; json's messages give line/column only, never the text."""
    if limits.json_nested_deeper(raw):
        raise InvalidArgument(
            f"failed to parse {name} as JSON: nested deeper than "
            f"{limits.MAX_JSON_DEPTH} levels; {expected}"
        )
    try:
        value: Any = json.loads(raw)
    except ValueError as exc:
        raise InvalidArgument(f"failed to parse {name} as JSON ({exc}): {expected}") from None
    if not isinstance(value, dict):
        raise InvalidArgument(f"invalid {name}: {expected}, got {type(value).__name__}")
    if not _SURROGATE_ESCAPE.search(raw):
        return value  # JSON can only make a lone surrogate from a \udXXX escape
    for key, item in value.items():
        for text in (key, item) if isinstance(item, str) else (key,):
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                raise InvalidArgument(
                    f"invalid {name}: {limits.quote(key)} holds text that "
                    "is not valid UTF-8 (a lone surrogate escape)"
                ) from None
    return value


def _string_map(raw: str, name: str, *, required: bool) -> dict[str, str]:
    expected = f"MountRequest.{name} must be a JSON object of strings"
    if not raw:
        if required:
            raise InvalidArgument(f"missing {name}: {expected}")
        return {}
    value = _json_object(raw, name, expected)
    bad = sorted(k for k, v in value.items() if not isinstance(v, str))
    if bad:
        raise InvalidArgument(
            f"invalid {name}: the value of {', '.join(map(repr, bad[:5]))} is not a string; "
            f"every value in MountRequest.{name} must be a string"
        )
    return value


def _tokens(raw: str) -> dict[str, ServiceAccountToken]:
    if not raw:
        return {}
    value = _json_object(
        raw,
        SERVICE_ACCOUNT_TOKENS,
        'it must be a JSON object mapping audience to {"token", "expirationTimestamp"}',
    )
    tokens: dict[str, ServiceAccountToken] = {}
    for audience, entry in value.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("token"), str):
            raise InvalidArgument(
                f"invalid {SERVICE_ACCOUNT_TOKENS}: the entry for audience "
                f'{limits.quote(audience)} has no string "token"'
            )
        try:
            entry["token"].encode("ascii")
        except UnicodeEncodeError:
            raise InvalidArgument(
                f"invalid {SERVICE_ACCOUNT_TOKENS}: the token for audience "
                f"{limits.quote(audience)} is not ASCII, as a JWT is"
            ) from None
        expiration = entry.get("expirationTimestamp", "")
        tokens[audience] = ServiceAccountToken(
            token=entry["token"], expiration=expiration if isinstance(expiration, str) else ""
        )
    return tokens
