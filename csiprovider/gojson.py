"""JSON bytes identical to Go's encoding/json, for values read from Vault responses.

vault-csi-provider writes a whole secret (no `secretKey`) as `json.Marshal(secret)`, and
pods compare or hash those files. Python's json module differs from Go's encoder in
key order, spacing, number re-formatting (`1.0`, `1e3`, big ints), and escaping (`<`,
`>`, `&`, U+2028/U+2029, invalid UTF-8), so we keep numbers as their literal text
(`Number`, like Go's `UseNumber`) and re-implement the encoder's rules.

Escaping follows Go >= 1.22 (`\\b` and `\\f` short escapes; older Go wrote \\u0008 and
\\u000c).
"""

from __future__ import annotations

import codecs
import datetime as dt
import json
import math
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

__all__ = ["Number", "Ordered", "dumps", "loads", "parse_secret",
           "vault_envelope"]

_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")
_INTEGER = re.compile(r"-?[0-9]+")
_ESCAPE = re.compile("[\x00-\x1f\"\\\\<>&\u2028\u2029\ud800-\udfff]")
_SHORT = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r",
          "\t": "\\t"}
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]+))?(Z|[-+][0-9]{2}:[0-9]{2})"
)
_ZERO_TIME = "0001-01-01T00:00:00Z"


class Number(str):
    """A JSON number kept as its literal text, re-emitted verbatim (Go's json.Number)."""


class Ordered(dict[str, Any]):
    """A JSON object whose keys are emitted in insertion order (a Go struct)."""


def _one_fffd_per_byte(exc: UnicodeError) -> tuple[str, int]:
    # Go's decoder replaces each invalid byte by U+FFFD (Python's "replace" may
    # collapse a truncated sequence into one).
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    return "\ufffd", exc.start + 1


codecs.register_error("csiprovider.gojson.fffd", _one_fffd_per_byte)


def _fix_surrogates(value: Any) -> Any:
    """Go decodes a lone \\uD800-style escape to U+FFFD; Python keeps the surrogate."""
    if isinstance(value, str) and not isinstance(value, Number):
        return _LONE.sub("\ufffd", value) if _LONE.search(value) else value
    if isinstance(value, list):
        return [_fix_surrogates(v) for v in value]
    if isinstance(value, dict):
        return {_fix_surrogates(k): _fix_surrogates(v) for k, v in value.items()}
    return value


_LONE = re.compile("[\ud800-\udfff]")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"invalid character {name[0]!r} looking for beginning of value")


def loads(text: str | bytes) -> Any:
    """Parse JSON as Go does with UseNumber: numbers become `Number` (their literal).

    Invalid UTF-8 and lone surrogate escapes inside strings become U+FFFD, NaN and
    Infinity are rejected. Raises ValueError.
    """
    if isinstance(text, bytes | bytearray):
        text = bytes(text).decode("utf-8", errors="csiprovider.gojson.fffd")
    value = json.loads(text, parse_int=Number, parse_float=Number,
                       parse_constant=_reject_constant)
    return _fix_surrogates(value)


def _escape_char(match: re.Match[str]) -> str:
    ch = match.group()
    short = _SHORT.get(ch)
    if short is not None:
        return short
    code = ord(ch)
    if 0xD800 <= code <= 0xDFFF:
        return "\\ufffd"  # invalid UTF-8 (e.g. surrogateescape'd byte) or lone surrogate
    return f"\\u{code:04x}"


def _string(text: str) -> str:
    return '"' + _ESCAPE.sub(_escape_char, text) + '"'


def _sort_key(key: str) -> bytes:
    try:
        return key.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return key.encode("utf-8", "surrogatepass")


def _float(value: float) -> str:
    """Go's float64 encoder: shortest round-trip digits, 'f' form in [1e-6, 1e21)."""
    if math.isnan(value) or math.isinf(value):
        raise ValueError(f"json: unsupported value: {value!r}")
    absolute = abs(value)
    if absolute != 0 and (absolute < 1e-6 or absolute >= 1e21):
        text = repr(value)  # shortest digits, 'e' form, two-digit exponent like Go
        mantissa, _, exponent = text.partition("e")
        sign, digits = exponent[0], exponent[1:].lstrip("0") or "0"
        if sign == "+" or len(digits) >= 2:
            digits = digits.rjust(2, "0")
        return f"{mantissa.removesuffix('.0')}e{sign}{digits}"
    return format(Decimal(repr(value)).normalize(), "f")


def _encode(value: Any, out: list[str]) -> None:
    if isinstance(value, str):
        if isinstance(value, Number):
            literal = str.__str__(value) or "0"
            if not _NUMBER.fullmatch(literal):
                raise ValueError(f"json: invalid number literal {literal!r}")
            out.append(literal)
        else:
            out.append(_string(value))
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        out.append(str(int(value)))
    elif isinstance(value, float):
        out.append(_float(value))
    elif isinstance(value, Mapping):
        keys = list(value.keys())
        if not all(isinstance(k, str) for k in keys):
            raise TypeError("json: unsupported type: map[interface {}]interface {}")
        if not isinstance(value, Ordered):
            keys.sort(key=_sort_key)
        out.append("{")
        for i, key in enumerate(keys):
            if i:
                out.append(",")
            out.append(_string(key))
            out.append(":")
            _encode(value[key], out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _encode(item, out)
        out.append("]")
    else:
        raise TypeError(f"json: unsupported type: {type(value).__name__}")


def dumps(value: Any) -> bytes:
    """Go's json.Marshal: compact, map keys sorted by UTF-8 bytes, HTML-safe escaping.

    `Ordered` objects keep their key order. Python floats use Go's float64 format;
    NaN/Inf raise ValueError, non-string map keys TypeError. No trailing newline.
    """
    out: list[str] = []
    _encode(value, out)
    return "".join(out).encode("utf-8")


# --- api.Secret ------------------------------------------------------------------------


class _Fields:
    """Decode a JSON object into a Go struct: exact, then case-insensitive field names."""

    def __init__(self, struct: str, path: str, names: list[str]) -> None:
        self.struct, self.path, self.names = struct, path, names
        self.folded: dict[str, str] = {}
        for name in names:
            self.folded.setdefault(name.casefold(), name)

    def items(self, obj: Mapping[str, Any]) -> list[tuple[str, str, Any]]:
        found = []
        for key, value in obj.items():
            name = key if key in self.names else self.folded.get(key.casefold())
            if name is not None:
                found.append((name, f"{self.path}{name}", value))
        return found

    def error(self, value: Any, field: str, go_type: str) -> ValueError:
        kind = _json_kind(value)
        return ValueError(
            f"json: cannot unmarshal {kind} into Go struct field {self.struct}.{field} "
            f"of type {go_type}"
        )


def _json_kind(value: Any) -> str:
    if isinstance(value, Number):
        return f"number {str.__str__(value)}"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return f"number {value}"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list | tuple):
        return "array"
    return "null"


def _go_string(fields: _Fields, field: str, value: Any, current: str) -> str:
    if value is None:
        return current
    if isinstance(value, str) and not isinstance(value, Number):
        return value
    raise fields.error(value, field, "string")


def _go_int(fields: _Fields, field: str, value: Any, current: int) -> int:
    if value is None:
        return current
    if isinstance(value, bool) or not isinstance(value, int | Number):
        raise fields.error(value, field, "int")
    if isinstance(value, int):
        number = value
    elif _INTEGER.fullmatch(value):
        number = int(value)
    else:
        raise fields.error(value, field, "int")
    if not _INT64_MIN <= number <= _INT64_MAX:
        raise fields.error(value, field, "int")
    return number


def _go_bool(fields: _Fields, field: str, value: Any, current: bool) -> bool:
    if value is None:
        return current
    if isinstance(value, bool):
        return value
    raise fields.error(value, field, "bool")


def _go_strings(fields: _Fields, field: str, value: Any) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list | tuple):
        raise fields.error(value, field, "[]string")
    return [_go_string(fields, field, item, "") for item in value]


def _go_object(fields: _Fields, field: str, value: Any, go_type: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise fields.error(value, field, go_type)
    return value


def _go_time(fields: _Fields, field: str, value: Any, current: str) -> str:
    """time.Time's UnmarshalJSON (strict RFC 3339) then MarshalJSON (RFC 3339 nano)."""
    if value is None:
        return current
    if not isinstance(value, str) or isinstance(value, Number):
        raise ValueError("Time.UnmarshalJSON: input is not a JSON string")
    m = _RFC3339.fullmatch(value)
    try:
        if m is None:
            raise ValueError
        year, month, day, hour, minute, second = (int(m[i]) for i in range(1, 7))
        dt.datetime(year, month, day, hour, minute, second)
        zone = m[8]
        if zone != "Z" and (int(zone[1:3]) >= 24 or int(zone[4:6]) >= 60):
            raise ValueError
    except ValueError:
        raise ValueError(f"parsing time {_string(value)} as RFC 3339: invalid") from None
    text = value[:19]
    nanos = (m[7] or "")[:9].rstrip("0")
    if nanos:
        text += "." + nanos
    if zone in ("Z", "+00:00", "-00:00"):
        return text + "Z"
    return text + zone


_SECRET = ["request_id", "lease_id", "lease_duration", "renewable", "data", "warnings",
           "auth", "wrap_info", "mount_type"]
_AUTH = ["client_token", "accessor", "policies", "token_policies", "identity_policies",
         "metadata", "orphan", "entity_id", "lease_duration", "renewable", "mfa_requirement"]
_WRAP = ["token", "accessor", "ttl", "creation_time", "creation_path", "wrapped_accessor"]
_MFA_REQ = ["mfa_request_id", "mfa_constraints"]
_MFA_METHOD = ["type", "id", "uses_passcode", "name"]


def _auth(obj: Mapping[str, Any], path: str) -> Ordered:
    f = _Fields("Secret", path, _AUTH)
    out = Ordered((name, None) for name in _AUTH)
    out.update(client_token="", accessor="", orphan=False, entity_id="", lease_duration=0,
               renewable=False)
    for name, field, value in f.items(obj):
        if name in ("client_token", "accessor", "entity_id"):
            out[name] = _go_string(f, field, value, out[name])
        elif name in ("policies", "token_policies", "identity_policies"):
            out[name] = _go_strings(f, field, value)
        elif name == "metadata":
            if value is None:
                out[name] = None
            else:
                meta = dict(out[name] or {})
                for key, item in _go_object(f, field, value, "map[string]string").items():
                    meta[key] = _go_string(f, field, item, "")
                out[name] = meta
        elif name in ("orphan", "renewable"):
            out[name] = _go_bool(f, field, value, out[name])
        elif name == "lease_duration":
            out[name] = _go_int(f, field, value, out[name])
        elif name == "mfa_requirement":
            out[name] = None if value is None else _mfa_requirement(
                _go_object(f, field, value, "api.MFARequirement"), field + ".")
    return out


def _mfa_requirement(obj: Mapping[str, Any], path: str) -> Ordered:
    f = _Fields("Secret", path, _MFA_REQ)
    request_id, constraints = "", None
    for name, field, value in f.items(obj):
        if name == "mfa_request_id":
            request_id = _go_string(f, field, value, request_id)
        elif value is None:
            constraints = None
        else:
            merged = dict(constraints or {})
            for key, item in _go_object(f, field, value, "map[string]*api.MFAConstraintAny"
                                        ).items():
                merged[key] = None if item is None else _mfa_any(
                    _go_object(f, field, item, "api.MFAConstraintAny"), field + ".")
            constraints = merged
    out = Ordered()
    if request_id:
        out["mfa_request_id"] = request_id
    if constraints:
        out["mfa_constraints"] = constraints
    return out


def _mfa_any(obj: Mapping[str, Any], path: str) -> Ordered:
    f = _Fields("Secret", path, ["any"])
    methods: list[Any] | None = None
    for _, field, value in f.items(obj):
        if value is None:
            methods = None
            continue
        if not isinstance(value, list | tuple):
            raise f.error(value, field, "[]*api.MFAMethodID")
        methods = [None if m is None else _mfa_method(
            _go_object(f, field, m, "api.MFAMethodID"), field + ".") for m in value]
    return Ordered(any=methods) if methods else Ordered()


def _mfa_method(obj: Mapping[str, Any], path: str) -> Ordered:
    f = _Fields("Secret", path, _MFA_METHOD)
    values: dict[str, Any] = {"type": "", "id": "", "uses_passcode": False, "name": ""}
    for name, field, value in f.items(obj):
        if name == "uses_passcode":
            values[name] = _go_bool(f, field, value, values[name])
        else:
            values[name] = _go_string(f, field, value, values[name])
    return Ordered((k, v) for k, v in values.items() if v)  # all omitempty


def _wrap_info(obj: Mapping[str, Any], path: str) -> Ordered:
    f = _Fields("Secret", path, _WRAP)
    out = Ordered(token="", accessor="", ttl=0, creation_time=_ZERO_TIME, creation_path="",
                  wrapped_accessor="")
    for name, field, value in f.items(obj):
        if name == "ttl":
            out[name] = _go_int(f, field, value, out[name])
        elif name == "creation_time":
            out[name] = _go_time(f, field, value, out[name])
        else:
            out[name] = _go_string(f, field, value, out[name])
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
    f = _Fields("Secret", "", _SECRET)
    request_id = lease_id = mount_type = ""
    lease_duration, renewable = 0, False
    data: dict[str, Any] | None = None
    warnings: list[str] | None = None
    auth: Ordered | None = None
    wrap: Ordered | None = None
    for name, field, value in f.items(response or {}):
        if name == "request_id":
            request_id = _go_string(f, field, value, request_id)
        elif name == "lease_id":
            lease_id = _go_string(f, field, value, lease_id)
        elif name == "mount_type":
            mount_type = _go_string(f, field, value, mount_type)
        elif name == "lease_duration":
            lease_duration = _go_int(f, field, value, lease_duration)
        elif name == "renewable":
            renewable = _go_bool(f, field, value, renewable)
        elif name == "data":
            data = None if value is None else {
                **(data or {}), **_go_object(f, field, value, "map[string]interface {}")}
        elif name == "warnings":
            warnings = _go_strings(f, field, value)
        elif name == "auth":
            auth = None if value is None else _auth(
                _go_object(f, field, value, "api.SecretAuth"), "auth.")
        elif name == "wrap_info":
            wrap = None if value is None else _wrap_info(
                _go_object(f, field, value, "api.SecretWrapInfo"), "wrap_info.")
    zero = (not request_id and not lease_id and not mount_type and lease_duration == 0
            and not renewable and data is None and warnings is None and auth is None
            and wrap is None)
    if zero and response:
        raw = dict(response)
        if "errors" in raw:
            if len(raw) == 1:
                return None
            errors = raw["errors"]
            if errors is not None and not isinstance(errors, list | tuple):
                raise ValueError(f"json: cannot unmarshal {_json_kind(errors)} into Go "
                                 "value of type []string")
            texts = []
            for item in errors or ():
                if item is not None and (not isinstance(item, str) or isinstance(item, Number)):
                    raise ValueError(f"json: cannot unmarshal {_json_kind(item)} into Go "
                                     "value of type string")
                texts.append(item or "")
            raise ValueError(" ".join(texts))
        data = raw
    out = Ordered(request_id=request_id, lease_id=lease_id, lease_duration=lease_duration,
                  renewable=renewable, data=data, warnings=warnings)
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
