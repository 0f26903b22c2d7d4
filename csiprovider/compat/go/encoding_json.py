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

from csiprovider.compat.go.strconv import quote

__all__ = [
    "InterfaceKeyMap",
    "Number",
    "Ordered",
    "StructFields",
    "bool_field",
    "dumps",
    "int_field",
    "json_kind",
    "loads",
    "object_field",
    "string_field",
    "strings_field",
    "time_field",
]

_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")
_INTEGER = re.compile(r"-?[0-9]+")
_ESCAPE = re.compile('[\x00-\x1f"\\\\<>&\u2028\u2029\ud800-\udfff]')
_SHORT = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]+))?(Z|[-+][0-9]{2}:[0-9]{2})"
)
ZERO_TIME = "0001-01-01T00:00:00Z"  # time.Time{} as MarshalJSON writes it


class Number(str):
    """A JSON number kept as its literal text, re-emitted verbatim (Go's json.Number)."""


class Ordered(dict[str, Any]):
    """A JSON object whose keys are emitted in insertion order (a Go struct)."""


class InterfaceKeyMap(dict[Any, Any]):
    """A Go map[interface{}]interface{}: json.Marshal refuses it whatever its keys are."""


def _one_fffd_per_byte(exc: UnicodeError) -> tuple[str, int]:
    # Go's decoder replaces each invalid byte by U+FFFD (Python's "replace" may
    # collapse a truncated sequence into one).
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    return "\ufffd", exc.start + 1


codecs.register_error("csiprovider.compat.go.encoding_json.fffd", _one_fffd_per_byte)


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


_JSON_SPACE = " \t\n\r"
_DECODER = json.JSONDecoder(parse_int=Number, parse_float=Number, parse_constant=_reject_constant)


def loads(text: str | bytes) -> Any:
    """Decode the first JSON value as Go's json.Decoder does with UseNumber.

    Numbers become `Number` (their literal), invalid UTF-8 and lone surrogate escapes
    inside strings become U+FFFD, NaN and Infinity are rejected. Like Decoder.Decode
    (what the Vault client uses), whatever follows the first complete value is not read:
    `{} x` and `1 x` decode, `1.` and `1e` do not (the number is incomplete). Raises
    ValueError.
    """
    if isinstance(text, bytes | bytearray):
        text = bytes(text).decode("utf-8", errors="csiprovider.compat.go.encoding_json.fffd")
    start = len(text) - len(text.lstrip(_JSON_SPACE))
    try:
        value, end = _DECODER.raw_decode(text, start)
    except RecursionError:
        raise ValueError("json: document nested too deeply") from None
    if isinstance(value, Number):  # Go's scanner was still inside the number
        literal, following = str.__str__(value), text[end : end + 1]
        if (following == "." and not any(c in literal for c in ".eE")) or (
            following in ("e", "E") and not any(c in literal for c in "eE")
        ):
            raise ValueError(f"invalid character {following!r} in numeric literal")
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
        shown = "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")
        raise ValueError(f"json: unsupported value: {shown}")
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
                raise ValueError(f"json: invalid number literal {quote(literal)}")
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
        if isinstance(value, InterfaceKeyMap) or not all(isinstance(k, str) for k in keys):
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


# --- Unmarshal into a Go struct's fields ----------------------------------------------


class StructFields:
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
        kind = json_kind(value)
        return ValueError(
            f"json: cannot unmarshal {kind} into Go struct field {self.struct}.{field} "
            f"of type {go_type}"
        )


def json_kind(value: Any) -> str:
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


def string_field(fields: StructFields, field: str, value: Any, current: str) -> str:
    if value is None:
        return current
    if isinstance(value, str) and not isinstance(value, Number):
        return value
    raise fields.error(value, field, "string")


def int_field(fields: StructFields, field: str, value: Any, current: int) -> int:
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


def bool_field(fields: StructFields, field: str, value: Any, current: bool) -> bool:
    if value is None:
        return current
    if isinstance(value, bool):
        return value
    raise fields.error(value, field, "bool")


def strings_field(fields: StructFields, field: str, value: Any) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list | tuple):
        raise fields.error(value, field, "[]string")
    return [string_field(fields, field, item, "") for item in value]


def object_field(fields: StructFields, field: str, value: Any, go_type: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise fields.error(value, field, go_type)
    return value


def time_field(fields: StructFields, field: str, value: Any, current: str) -> str:
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
