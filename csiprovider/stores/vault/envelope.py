"""vault-csi-provider's file for a whole secret: `json.Marshal` of `api.ParseSecret(body)`.

With no `secretKey`, vault-csi-provider writes the response envelope, re-shaped by the
Go client's api.Secret struct: its field order, its dropped unknown keys, its Go type
errors. Pods compare or hash those files, so we build the same struct from the decoded
body and marshal it with Go's encoder rules (compat.go.encoding_json).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from csiprovider.compat.go.encoding_json import (
    ZERO_TIME,
    Number,
    Ordered,
    StructFields,
    bool_field,
    dumps,
    int_field,
    json_kind,
    object_field,
    string_field,
    strings_field,
    time_field,
)

_SECRET = [
    "request_id",
    "lease_id",
    "lease_duration",
    "renewable",
    "data",
    "warnings",
    "auth",
    "wrap_info",
    "mount_type",
]
_AUTH = [
    "client_token",
    "accessor",
    "policies",
    "token_policies",
    "identity_policies",
    "metadata",
    "orphan",
    "entity_id",
    "lease_duration",
    "renewable",
    "mfa_requirement",
]
_WRAP = ["token", "accessor", "ttl", "creation_time", "creation_path", "wrapped_accessor"]
_MFA_REQ = ["mfa_request_id", "mfa_constraints"]
_MFA_METHOD = ["type", "id", "uses_passcode", "name"]


def _auth(obj: Mapping[str, Any], path: str) -> Ordered:
    f = StructFields("Secret", path, _AUTH)
    out = Ordered((name, None) for name in _AUTH)
    out.update(
        client_token="", accessor="", orphan=False, entity_id="", lease_duration=0, renewable=False
    )
    for name, field, value in f.items(obj):
        if name in ("client_token", "accessor", "entity_id"):
            out[name] = string_field(f, field, value, out[name])
        elif name in ("policies", "token_policies", "identity_policies"):
            out[name] = strings_field(f, field, value)
        elif name == "metadata":
            if value is None:
                out[name] = None
            else:
                meta = dict(out[name] or {})
                for key, item in object_field(f, field, value, "map[string]string").items():
                    meta[key] = string_field(f, field, item, "")
                out[name] = meta
        elif name in ("orphan", "renewable"):
            out[name] = bool_field(f, field, value, out[name])
        elif name == "lease_duration":
            out[name] = int_field(f, field, value, out[name])
        elif name == "mfa_requirement":
            out[name] = (
                None
                if value is None
                else _mfa_requirement(
                    object_field(f, field, value, "api.MFARequirement"), field + "."
                )
            )
    return out


def _mfa_requirement(obj: Mapping[str, Any], path: str) -> Ordered:
    f = StructFields("Secret", path, _MFA_REQ)
    request_id, constraints = "", None
    for name, field, value in f.items(obj):
        if name == "mfa_request_id":
            request_id = string_field(f, field, value, request_id)
        elif value is None:
            constraints = None
        else:
            merged = dict(constraints or {})
            for key, item in object_field(
                f, field, value, "map[string]*api.MFAConstraintAny"
            ).items():
                merged[key] = (
                    None
                    if item is None
                    else _mfa_any(object_field(f, field, item, "api.MFAConstraintAny"), field + ".")
                )
            constraints = merged
    out = Ordered()
    if request_id:
        out["mfa_request_id"] = request_id
    if constraints:
        out["mfa_constraints"] = constraints
    return out


def _mfa_any(obj: Mapping[str, Any], path: str) -> Ordered:
    f = StructFields("Secret", path, ["any"])
    methods: list[Any] | None = None
    for _, field, value in f.items(obj):
        if value is None:
            methods = None
            continue
        if not isinstance(value, list | tuple):
            raise f.error(value, field, "[]*api.MFAMethodID")
        methods = [
            None
            if m is None
            else _mfa_method(object_field(f, field, m, "api.MFAMethodID"), field + ".")
            for m in value
        ]
    return Ordered(any=methods) if methods else Ordered()


def _mfa_method(obj: Mapping[str, Any], path: str) -> Ordered:
    f = StructFields("Secret", path, _MFA_METHOD)
    values: dict[str, Any] = {"type": "", "id": "", "uses_passcode": False, "name": ""}
    for name, field, value in f.items(obj):
        if name == "uses_passcode":
            values[name] = bool_field(f, field, value, values[name])
        else:
            values[name] = string_field(f, field, value, values[name])
    return Ordered((k, v) for k, v in values.items() if v)  # all omitempty


def _wrap_info(obj: Mapping[str, Any], path: str) -> Ordered:
    f = StructFields("Secret", path, _WRAP)
    out = Ordered(
        token="", accessor="", ttl=0, creation_time=ZERO_TIME, creation_path="", wrapped_accessor=""
    )
    for name, field, value in f.items(obj):
        if name == "ttl":
            out[name] = int_field(f, field, value, out[name])
        elif name == "creation_time":
            out[name] = time_field(f, field, value, out[name])
        else:
            out[name] = string_field(f, field, value, out[name])
    return out


def parse_secret(response: Mapping[str, Any] | None) -> Ordered | None:
    """Go's api.ParseSecret on a decoded body, shaped as api.Secret marshals.

    Struct decoding keeps only api.Secret's fields (names matched exactly, then
    case-insensitively, as encoding/json does) and raises ValueError where Go reports
    a type error. When nothing decoded into a field (a body that is not a standard
    envelope, e.g. `{"foo": 1}` or even `{"lease_duration": 0}`), ParseSecret falls
    back to the raw body: a body holding only `errors` is no secret at all (None);
    `errors` next to other keys is an error (the messages joined by spaces);
    otherwise the whole body becomes `data`. An empty HTTP body is also "no secret"
    in Go, before JSON decoding (callers handle that).
    """
    f = StructFields("Secret", "", _SECRET)
    request_id = lease_id = mount_type = ""
    lease_duration, renewable = 0, False
    data: dict[str, Any] | None = None
    warnings: list[str] | None = None
    auth: Ordered | None = None
    wrap: Ordered | None = None
    for name, field, value in f.items(response or {}):
        if name == "request_id":
            request_id = string_field(f, field, value, request_id)
        elif name == "lease_id":
            lease_id = string_field(f, field, value, lease_id)
        elif name == "mount_type":
            mount_type = string_field(f, field, value, mount_type)
        elif name == "lease_duration":
            lease_duration = int_field(f, field, value, lease_duration)
        elif name == "renewable":
            renewable = bool_field(f, field, value, renewable)
        elif name == "data":
            data = (
                None
                if value is None
                else {**(data or {}), **object_field(f, field, value, "map[string]interface {}")}
            )
        elif name == "warnings":
            warnings = strings_field(f, field, value)
        elif name == "auth":
            auth = (
                None
                if value is None
                else _auth(object_field(f, field, value, "api.SecretAuth"), "auth.")
            )
        elif name == "wrap_info":
            wrap = (
                None
                if value is None
                else _wrap_info(object_field(f, field, value, "api.SecretWrapInfo"), "wrap_info.")
            )
    zero = (
        not request_id
        and not lease_id
        and not mount_type
        and lease_duration == 0
        and not renewable
        and data is None
        and warnings is None
        and auth is None
        and wrap is None
    )
    if zero and response:
        raw = dict(response)
        if "errors" in raw:
            if len(raw) == 1:
                return None
            errors = raw["errors"]
            if errors is not None and not isinstance(errors, list | tuple):
                raise ValueError(
                    f"json: cannot unmarshal {json_kind(errors)} into Go value of type []string"
                )
            texts = []
            for item in errors or ():
                if item is not None and (not isinstance(item, str) or isinstance(item, Number)):
                    raise ValueError(
                        f"json: cannot unmarshal {json_kind(item)} into Go value of type string"
                    )
                texts.append(item or "")
            raise ValueError(" ".join(texts))
        data = raw
    out = Ordered(
        request_id=request_id,
        lease_id=lease_id,
        lease_duration=lease_duration,
        renewable=renewable,
        data=data,
        warnings=warnings,
    )
    if auth is not None:
        out["auth"] = auth
    if wrap is not None:
        out["wrap_info"] = wrap
    if mount_type:
        out["mount_type"] = mount_type
    return out


def vault_envelope(response: Mapping[str, Any] | None) -> bytes:
    """`json.Marshal(secret)` for `secret, _ := api.ParseSecret(body)`.

    Field order is api.Secret's: request_id, lease_id, lease_duration, renewable, data,
    warnings, then auth / wrap_info when non-null and mount_type when non-empty; unknown
    top-level keys are dropped. A body ParseSecret treats as "no secret" gives b"null"
    (Go's Marshal of a nil *Secret). See parse_secret for the non-envelope fallback.
    """
    return dumps(parse_secret(response))
