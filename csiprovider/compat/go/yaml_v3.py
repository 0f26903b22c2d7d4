"""Decode vault-csi-provider's `objects` parameter the way gopkg.in/yaml.v3 does.

vault-csi-provider runs `yaml.Unmarshal([]byte(objects), &[]config.Secret{})`. PyYAML's
constructor disagrees with yaml.v3 on what a plain scalar means (YAML 1.1 `yes`/`on`
booleans, sexagesimal ints, `0777` vs `0o777`, timestamps, duplicate keys silently
merged), and any disagreement changes file names, modes or the request body sent to
Vault. So we only borrow PyYAML's *composer* (parsing, anchors, aliases) and convert the
node graph with yaml.v3's resolver and decoder rules ourselves (resolve.go, decode.go).

yaml.v3 scans with an older libyaml than PyYAML's: a `?` inside a plain scalar in a flow
collection (`{a: b?c}`) ends the scalar there, so such a document is refused here too.
Error messages are yaml.v3's, including its byte-wise truncation of long values
(a rune cut in two shows as U+FFFD per byte, where Go's message holds the raw bytes).

Known divergences from yaml.v3 (tests/compat/go/test_differential.py checks the rest
against the real library): a redefined anchor is an error (yaml.v3 lets the later one
win); syntax error texts are PyYAML's; a tag directly followed by `,` `[` `]` in a flow
collection ends before it (yaml.v3's scanner makes them part of the tag); an alias used
as a mapping key counts as the scalar it points to; nesting deeper than Python's
recursion limit (~1000, yaml.v3 allows 10000) is refused; in an AnyKeyMap Python merges
the keys `1` and `true` (Go keeps both).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import math
import re
from collections.abc import Iterable
from typing import Any, ClassVar

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from csiprovider import limits
from csiprovider.compat.go.encoding_json import InterfaceKeyMap
from csiprovider.compat.go.fmt import sharp_v
from csiprovider.compat.go.strconv import quote

__all__ = ["STRING_FIELDS", "AnyKeyMap", "GoTime", "YamlError", "load_objects"]

# The string fields of vault-csi-provider's config.Secret (yaml tags are case-sensitive).
STRING_FIELDS = frozenset({"objectName", "secretPath", "secretKey", "method", "encoding"})
_FILE_PERMISSION = "filePermission"
_SECRET_ARGS = "secretArgs"

_STR, _INT, _FLOAT, _BOOL, _NULL = "!!str", "!!int", "!!float", "!!bool", "!!null"
_TIMESTAMP, _BINARY, _MERGE, _MAP, _SEQ = ("!!timestamp", "!!binary", "!!merge", "!!map", "!!seq")
_RESOLVABLE = frozenset({"", _STR, _BOOL, _INT, _FLOAT, _NULL, _TIMESTAMP})
_LONG_PREFIX = "tag:yaml.org,2002:"
_QUOTED_STYLES = frozenset({'"', "'", "|", ">"})

# Go type names, as yaml.v3's type errors print them.
_T_SECRETS = "[]config.Secret"
_T_SECRET = "config.Secret"
_T_STRING = "string"
_T_FILEMODE = "fs.FileMode"
_T_STRMAP = "map[string]interface {}"

_UINT32_MAX = 0xFFFFFFFF
_FFFD = "csiprovider.compat.go.encoding_json.fffd"  # one U+FFFD per invalid byte
_INT64_MIN, _INT64_MAX, _UINT64_MAX = -(1 << 63), (1 << 63) - 1, (1 << 64) - 1

_RESOLVE_MAP: dict[str, tuple[str, Any]] = {
    **{s: (_BOOL, True) for s in ("true", "True", "TRUE")},
    **{s: (_BOOL, False) for s in ("false", "False", "FALSE")},
    **{s: (_NULL, None) for s in ("", "~", "null", "Null", "NULL")},
    **{s: (_FLOAT, math.nan) for s in (".nan", ".NaN", ".NAN")},
    **{s: (_FLOAT, math.inf) for s in (".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF")},
    **{s: (_FLOAT, -math.inf) for s in ("-.inf", "-.Inf", "-.INF")},
    "<<": (_MERGE, "<<"),
}
_YAML_STYLE_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_DOT_FLOAT = re.compile(r"\.[0-9]+([eE][-+]?[0-9]+)?")
_TIMESTAMP_RE = re.compile(
    r"(?P<y>[0-9]{4})-(?P<mo>[0-9]{1,2})-(?P<d>[0-9]{1,2})"
    r"(?:(?P<sep>[Tt ])(?P<h>[0-9]{1,2}):(?P<mi>[0-9]{1,2}):(?P<s>[0-9]{1,2})"
    r"(?:[.,](?P<frac>[0-9]+))?(?P<tz>Z|[-+][0-9]{2}:[0-9]{2})?)?"
)

_Base: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class ComposeLoader(_Base):  # type: ignore[misc,valid-type]
    """Composer whose implicit tags are "": we resolve scalars with yaml.v3's table."""

    def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
        return ""


class YamlError(ValueError):
    """The `objects` parameter is not what yaml.v3 would decode into []config.Secret."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


class GoTime(str):
    """An unquoted timestamp: yaml.v3 decodes it into interface{} as a time.Time.

    The string value is what Go's json.Marshal writes for that time.Time (RFC 3339 with
    trimmed nanoseconds), i.e. what vault-csi-provider sends in the request body;
    `source` is the text as written in the YAML.
    """

    source: str

    def __new__(cls, rendered: str, source: str) -> GoTime:
        obj = super().__new__(cls, rendered)
        obj.source = source
        return obj


class AnyKeyMap(InterfaceKeyMap):
    """A nested mapping with a key that is not a string (int, bool, null, ...).

    yaml.v3 decodes it as map[interface{}]interface{}, which Go's json.Marshal refuses
    ("unsupported type"); keys keep their resolved Python type so callers can refuse too.
    """


class _Fatal(Exception):
    """yaml.v3's failf: decoding stops at once (`anchored`: the node that contains itself)."""

    def __init__(self, message: str, anchored: Node | None = None) -> None:
        super().__init__(message)
        self.anchored = anchored


def short_tag(tag: str) -> str:
    if tag.startswith(_LONG_PREFIX):
        return "!!" + tag[len(_LONG_PREFIX) :]
    return tag


# --- scalar resolution (resolve.go) ---------------------------------------------------


def _go_parse_uint(text: str, base0: bool = True) -> int | None:
    """strconv.ParseUint(text, 0, 64) for text without underscores; None on error."""
    if not text:
        return None
    base, digits = 10, text
    if text[0] == "0":
        prefix = text[1:2].lower()
        if len(text) >= 3 and prefix in ("b", "o", "x"):
            base, digits = {"b": 2, "o": 8, "x": 16}[prefix], text[2:]
        else:
            base, digits = 8, text[1:]
    if digits == "":
        return 0 if text == "0" else None
    allowed = "0123456789abcdef"[:base]
    if any(c not in allowed for c in digits.lower()):
        return None
    value = int(digits, base)
    return value if value <= _UINT64_MAX else None


def _go_parse_int(text: str) -> int | None:
    """strconv.ParseInt(text, 0, 64) for text without underscores; None on error."""
    sign, body = 1, text
    if text[:1] in ("+", "-"):
        sign, body = (-1 if text[0] == "-" else 1), text[1:]
    magnitude = _go_parse_uint(body)
    if magnitude is None:
        return None
    value = sign * magnitude
    return value if _INT64_MIN <= value <= _INT64_MAX else None


def _underscore_ok(text: str) -> bool:
    """strconv's underscoreOK: '_' only between digits (or after a base prefix)."""
    saw = "^"
    s = text[1:] if text[:1] in ("+", "-") else text
    i, hexa = 0, False
    if len(s) >= 2 and s[0] == "0" and s[1].lower() in "box":
        i, saw, hexa = 2, "0", s[1].lower() == "x"
    while i < len(s):
        c = s[i]
        if (c.isdigit() and c.isascii()) or (hexa and c.lower() in "abcdef"):
            saw = "0"
        elif c == "_":
            if saw != "0":
                return False
            saw = "_"
        elif saw == "_":
            return False
        else:
            saw = "!"
        i += 1
    return saw != "_"


def _go_parse_float(text: str) -> float | None:
    """strconv.ParseFloat for the decimal forms yaml.v3 reaches; None on error/overflow."""
    try:
        value = float(text)
    except ValueError:
        return None
    return None if math.isinf(value) else value  # Go reports ErrRange on overflow


def _parse_timestamp(text: str) -> GoTime | None:
    """yaml.v3's parseTimestamp (its four time.Parse layouts), rendered as Go's JSON."""
    m = _TIMESTAMP_RE.fullmatch(text)
    if m is None:
        return None
    sep, tz = m["sep"], m["tz"]
    if sep is not None and (sep == " ") == (tz is not None):
        return None  # T/t layouts need a zone, the space layout has none
    year = int(m["y"])
    try:  # Go accepts year 0 (a leap year, like 2000); Python's date does not
        dt.date(year or 2000, int(m["mo"]), int(m["d"]))
    except ValueError:
        return None
    hour = minute = second = nanos = offset = 0
    if sep is not None:
        hour, minute, second = int(m["h"]), int(m["mi"]), int(m["s"])
        if hour > 23 or minute > 59 or second > 59:
            return None
        nanos = int((m["frac"] or "0")[:9].ljust(9, "0"))
        if tz and tz != "Z":
            tz_h, tz_m = int(tz[1:3]), int(tz[4:6])
            if tz_h > 24 or tz_m > 60:
                return None
            offset = (tz_h * 60 + tz_m) * (-1 if tz[0] == "-" else 1)
    rendered = f"{year:04d}-{int(m['mo']):02d}-{int(m['d']):02d}"
    rendered += f"T{hour:02d}:{minute:02d}:{second:02d}"
    if nanos:
        rendered += "." + f"{nanos:09d}".rstrip("0")
    if offset:
        sign = "-" if offset < 0 else "+"
        rendered += f"{sign}{abs(offset) // 60:02d}:{abs(offset) % 60:02d}"
    else:
        rendered += "Z"
    return GoTime(rendered, text)


def _resolve_untyped(
    tag: str, text: str, table: dict[str, tuple[str, Any]] = _RESOLVE_MAP
) -> tuple[str, Any]:
    hint = text[:1] or "N"
    if hint not in "0123456789+-.yYnNtTfFoO~N":
        return _STR, text
    if text in table:
        return table[text]
    if hint == ".":
        if "_" in text and not _underscore_ok(text):
            return _STR, text
        plain = text.replace("_", "")
        if _DOT_FLOAT.fullmatch(plain):
            value = _go_parse_float(plain)
            if value is not None:
                return _FLOAT, value
        return _STR, text
    if hint in "0123456789+-":
        if tag in ("", _TIMESTAMP):
            stamp = _parse_timestamp(text)
            if stamp is not None:
                return _TIMESTAMP, stamp
        plain = text.replace("_", "")
        ival = _go_parse_int(plain)
        if ival is not None:
            return _INT, ival
        if plain[:1] != "+" and plain[:1] != "-":
            uval = _go_parse_uint(plain)
            if uval is not None:
                return _INT, uval
        if _YAML_STYLE_FLOAT.fullmatch(plain):
            fval = _go_parse_float(plain)
            if fval is not None:
                return _FLOAT, fval
    return _STR, text


def _resolve(
    tag: str, text: str, table: dict[str, tuple[str, Any]] = _RESOLVE_MAP
) -> tuple[str, Any]:
    """yaml.v3's resolve(): the tag and Go value of a scalar (tag is short or "")."""
    if tag not in _RESOLVABLE:
        return tag, text
    rtag, value = (_STR, text) if tag == _STR else _resolve_untyped(tag, text, table)
    if tag in ("", rtag, _STR):
        return rtag, value
    if tag == _FLOAT and rtag == _INT and int(value) <= _INT64_MAX:  # not a uint64
        return _FLOAT, float(value)
    raise _Fatal(f"cannot decode {rtag} `{text}` as a {tag}")


def _explicit(node: Node) -> str:
    """The node's own tag, short; "" when it has none (or the non-specific "!")."""
    return short_tag(node.tag) if node.tag and node.tag != "!" else ""


class ResolveError(ValueError):
    """An explicit tag the scalar does not fit ("cannot decode !!str `x` as a !!int")."""


def resolve(
    tag: str, text: str, yaml11: dict[str, tuple[str, Any]] | None = None
) -> tuple[str, Any]:
    """The (short) tag and value yaml.v3 resolves a plain scalar to; with `yaml11`, the
    extra words yaml.v2 reads as booleans (yaml.v2's resolver is otherwise the same).
    Timestamps come back as GoTime. Raises ResolveError."""
    table = {**_RESOLVE_MAP, **yaml11} if yaml11 else _RESOLVE_MAP
    try:
        return _resolve(tag, text, table)
    except _Fatal as exc:
        raise ResolveError(str(exc)) from None


def _node_tag(node: Node) -> str:
    """The Tag yaml.v3's parser gives a node."""
    explicit = _explicit(node)
    if explicit:
        return explicit
    if isinstance(node, MappingNode):
        return _MAP
    if isinstance(node, SequenceNode):
        return _SEQ
    if getattr(node, "style", None) in _QUOTED_STYLES:
        return _STR
    if node.value == "<<":  # a plain << is tagged !!merge by the parser itself
        return _MERGE
    return _resolve("", node.value)[0]


def _is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and _node_tag(node) == _NULL


def _is_merge(node: Node) -> bool:
    if not isinstance(node, ScalarNode) or node.value != "<<":
        return False
    # PyYAML's pure composer says style None for plain scalars, libyaml's says "".
    return (_explicit(node) == "" and not node.style) or _explicit(node) == _MERGE


# --- decoding (decode.go) -------------------------------------------------------------

_MISSING: Any = object()


class _Decoder:
    _ALIAS_LOW: ClassVar[int] = 400_000
    _ALIAS_HIGH: ClassVar[int] = 4_000_000

    def __init__(self, string_fields: frozenset[str]) -> None:
        self.errors: list[str] = []
        self.string_fields = string_fields
        self.seen: set[int] = set()
        self.active: set[int] = set()
        self.decode_count = 0
        self.alias_count = 0
        self.alias_depth = 0
        self.merged: set[Any] | None = None

    # bookkeeping shared by every decode step (yaml.v3's d.unmarshal / d.alias)
    def _enter(self, node: Node) -> bool:
        key = id(node)
        if key in self.active:
            raise _Fatal("value contains itself", anchored=node)
        aliased = key in self.seen
        self.seen.add(key)
        self.decode_count += 1
        if aliased:
            self.alias_depth += 1
        if self.alias_depth > 0:
            self.alias_count += 1
        if (
            self.alias_count > 100
            and self.decode_count > 1000
            and self.alias_count / self.decode_count > self._allowed_ratio()
        ):
            raise _Fatal("document contains excessive aliasing")
        self.active.add(key)
        return aliased

    def _leave(self, node: Node, aliased: bool) -> None:
        self.active.discard(id(node))
        if aliased:
            self.alias_depth -= 1

    def _allowed_ratio(self) -> float:
        count = self.decode_count
        if count <= self._ALIAS_LOW:
            return 0.99
        if count >= self._ALIAS_HIGH:
            return 0.10
        span = self._ALIAS_HIGH - self._ALIAS_LOW
        return 0.99 - 0.89 * ((count - self._ALIAS_LOW) / span)

    def terror(self, node: Node, tag: str, go_type: str) -> None:
        tag = _node_tag(node) or tag
        text = ""
        if tag not in (_SEQ, _MAP) and isinstance(node, ScalarNode):
            value = node.value.encode("utf-8", "surrogateescape")
            # Go slices bytes: a rune cut in two shows as U+FFFD per byte.
            shown = value[:7] + b"..." if len(value) > 10 else value
            text = " `" + shown.decode("utf-8", _FFFD) + "`"
        self.errors.append(f"line {_line(node)}: cannot unmarshal {tag}{text} into {go_type}")

    def unique_keys(self, node: MappingNode) -> bool:
        before = len(self.errors)
        pairs = node.value
        for i, (ki, _) in enumerate(pairs):
            for kj, _ in pairs[i + 1 :]:
                if type(ki) is type(kj) and _key_text(ki) == _key_text(kj):
                    self.errors.append(
                        f"line {_line(kj)}: mapping key {quote(_key_text(kj))} "
                        f"already defined at line {_line(ki)}"
                    )
        return len(self.errors) == before

    # scalar → (tag, resolved) per d.scalar's prologue
    def scalar(self, node: Node) -> tuple[str, Any]:
        explicit = _explicit(node)
        if explicit == _STR or (explicit == "" and getattr(node, "style", None) in _QUOTED_STYLES):
            return _STR, node.value
        tag, value = _resolve(explicit, node.value)
        if tag == _BINARY:
            raw = value.replace("\n", "").replace("\r", "")
            try:
                data = base64.b64decode(raw, validate=True)
            except (binascii.Error, ValueError):
                raise _Fatal("!!binary value contains invalid base64 data") from None
            value = data.decode("utf-8", errors="surrogateescape")
        return tag, value

    # typed targets --------------------------------------------------------------------
    def secrets(self, node: Node) -> list[dict[str, Any]]:
        aliased = self._enter(node)
        try:
            if isinstance(node, SequenceNode):
                out: list[dict[str, Any]] = []
                for item in node.value:
                    secret = self.secret(item)
                    if secret is not None:
                        out.append(secret)
                return out
            if isinstance(node, MappingNode):
                if self.unique_keys(node):
                    self.terror(node, _MAP, _T_SECRETS)
                return []
            tag, value = self.scalar(node)
            if value is not None:
                self.terror(node, tag, _T_SECRETS)
            return []
        finally:
            self._leave(node, aliased)

    def secret(self, node: Node) -> dict[str, Any] | None:
        aliased = self._enter(node)
        try:
            if isinstance(node, MappingNode):
                if not self.unique_keys(node):
                    return None
                out: dict[str, Any] = {}
                self.struct_into(node, out)
                return out
            if isinstance(node, SequenceNode):
                self.terror(node, _SEQ, _T_SECRET)
                return None
            tag, value = self.scalar(node)
            if value is not None:  # a null item is silently skipped
                self.terror(node, tag, _T_SECRET)
            return None
        finally:
            self._leave(node, aliased)

    def struct_into(self, node: MappingNode, out: dict[str, Any]) -> None:
        merged, self.merged = self.merged, None
        merge_node: Node | None = None
        for key_node, value_node in node.value:
            if _is_merge(key_node):
                merge_node = value_node
                continue
            name = self.string(key_node)
            if name is _MISSING:
                continue
            if merged is not None:
                if name in merged:
                    continue
                merged.add(name)
            if name in self.string_fields:
                text = self.string(value_node)
                out[name] = "" if text is _MISSING else text
            elif name == _FILE_PERMISSION:
                out[name] = self.file_mode(value_node)
            elif name == _SECRET_ARGS:
                out[name] = self.string_map(value_node)
            else:
                out[name] = self.sandboxed(value_node)
        self.merged = merged
        if merge_node is not None:
            self.merge(node, merge_node, lambda n: self.struct_into_checked(n, out))

    def struct_into_checked(self, node: MappingNode, out: dict[str, Any]) -> None:
        aliased = self._enter(node)
        try:
            if self.unique_keys(node):
                self.struct_into(node, out)
        finally:
            self._leave(node, aliased)

    def sandboxed(self, node: Node) -> Any:
        """An unknown key: yaml.v3 never decodes it, so its problems are not errors."""
        sub = _Decoder(self.string_fields)
        try:
            value = sub.iface(node)
        except _Fatal:
            return None
        return None if sub.errors else value

    def string(self, node: Node) -> Any:
        """Decode into a Go string: the scalar's text; _MISSING for null (left unset)."""
        aliased = self._enter(node)
        try:
            if isinstance(node, MappingNode | SequenceNode):
                if isinstance(node, MappingNode) and not self.unique_keys(node):
                    return _MISSING
                self.terror(node, _MAP if isinstance(node, MappingNode) else _SEQ, _T_STRING)
                return _MISSING
            tag, value = self.scalar(node)
            if value is None:
                return _MISSING
            if tag == _BINARY:
                return value
            return node.value
        finally:
            self._leave(node, aliased)

    def file_mode(self, node: Node) -> int:
        """Decode into os.FileMode (uint32): ints and (truncated) floats only."""
        aliased = self._enter(node)
        try:
            if not isinstance(node, ScalarNode):
                if isinstance(node, MappingNode) and not self.unique_keys(node):
                    return 0
                self.terror(node, _MAP if isinstance(node, MappingNode) else _SEQ, _T_FILEMODE)
                return 0
            tag, value = self.scalar(node)
            if value is None:
                return 0
            if isinstance(value, int) and not isinstance(value, bool):
                if 0 <= value <= _UINT32_MAX:
                    return value
            elif (
                # Go's uint64(f) truncates toward zero (amd64: -1 < f < 0 gives 0).
                isinstance(value, float) and -1.0 < value < math.inf and int(value) <= _UINT32_MAX
            ):
                return int(value)
            self.terror(node, tag, _T_FILEMODE)
            return 0
        finally:
            self._leave(node, aliased)

    def string_map(self, node: Node) -> dict[str, Any] | None:
        """Decode into map[string]interface{} (secretArgs)."""
        aliased = self._enter(node)
        try:
            if isinstance(node, MappingNode):
                if not self.unique_keys(node):
                    return None
                out: dict[str, Any] = {}
                self.map_into(node, out, typed_keys=True)
                return out
            if isinstance(node, SequenceNode):
                self.terror(node, _SEQ, _T_STRMAP)
                return None
            tag, value = self.scalar(node)
            if value is not None:
                self.terror(node, tag, _T_STRMAP)
            return None
        finally:
            self._leave(node, aliased)

    def map_into(self, node: MappingNode, out: dict[Any, Any], typed_keys: bool) -> None:
        merged, self.merged = self.merged, None
        merge_node: Node | None = None
        is_new = not out
        for key_node, value_node in node.value:
            if _is_merge(key_node):
                merge_node = value_node
                continue
            key = self.string(key_node) if typed_keys else self.iface(key_node, as_key=True)
            if key is _MISSING:
                continue
            if merged is not None:
                if _hashable(key) in merged:
                    continue
                merged.add(_hashable(key))
            value = self.iface(value_node)
            if value is not _MISSING or (_is_null(value_node) and (is_new or key not in out)):
                out[key] = None if value is _MISSING else value
        self.merged = merged
        if merge_node is not None:
            self.merge(node, merge_node, lambda n: self.map_into_checked(n, out, typed_keys))

    def map_into_checked(self, node: MappingNode, out: dict[Any, Any], typed_keys: bool) -> None:
        aliased = self._enter(node)
        try:
            if self.unique_keys(node):
                self.map_into(node, out, typed_keys)
        finally:
            self._leave(node, aliased)

    def merge(self, parent: MappingNode, source: Node, apply: Any) -> None:
        """yaml.v3's d.merge: keys already in the parent (or merged earlier) win."""
        outer = self.merged
        if outer is None:
            self.merged = set()
            for key_node, _ in parent.value:
                key = self.iface(key_node, as_key=True)
                if key is not _MISSING:
                    self.merged.add(_hashable(key))
        if isinstance(source, MappingNode):
            apply(source)
        elif isinstance(source, SequenceNode):
            for item in source.value:
                if not isinstance(item, MappingNode):
                    raise _Fatal("map merge requires map or sequence of maps as the value")
                apply(item)
        else:
            raise _Fatal("map merge requires map or sequence of maps as the value")
        self.merged = outer

    # generic interface{} target ---------------------------------------------------------
    def iface(self, node: Node, as_key: bool = False) -> Any:
        aliased = self._enter(node)
        try:
            if isinstance(node, SequenceNode):
                items = [self.iface(item) for item in node.value]
                items = [i for i in items if i is not _MISSING]
                if as_key:
                    raise _Fatal(f"invalid map key: {sharp_v(items)}")
                return items
            if isinstance(node, MappingNode):
                if not self.unique_keys(node):
                    return _MISSING
                string_keys = all(_node_tag(k) in (_STR, _MERGE) for k, _ in node.value)
                out: dict[Any, Any] = {} if string_keys else AnyKeyMap()
                self.map_into(node, out, typed_keys=string_keys)
                if as_key:
                    raise _Fatal(f"invalid map key: {sharp_v(out)}")
                return out
            _, value = self.scalar(node)
            return value
        finally:
            self._leave(node, aliased)


def _hashable(key: Any) -> Any:
    return ("nan", id(key)) if isinstance(key, float) and math.isnan(key) else key


def _key_text(node: Node) -> str:
    return node.value if isinstance(node, ScalarNode) else ""


def _line(node: Node) -> int:
    mark = node.start_mark
    return int(mark.line) + 1 if mark is not None else 0


_ANCHOR_NAME = re.compile(r"[0-9A-Za-z_-]*")


def anchor_at(text: str, index: int) -> str:
    """The anchor name written at text[index:] (as libyaml scans one)."""
    found = _ANCHOR_NAME.match(text, index)
    return found[0] if found else ""


def anchor_name(text: str, node: Node) -> str:
    """The anchor a node was defined with (composed nodes do not keep it)."""
    index = node.start_mark.index if node.start_mark is not None else -1
    events = yaml.parse(text, Loader=_Base)
    while True:
        try:
            event = next(events)
        except (StopIteration, yaml.YAMLError):  # the first document was read by then
            return ""
        anchor = getattr(event, "anchor", None)
        if (
            anchor
            and not isinstance(event, yaml.AliasEvent)
            and (event.start_mark is not None and event.start_mark.index == index)
        ):
            return str(anchor)


def flow_question_mark(text: str, loader: Any = None) -> yaml.Mark | None:
    """Where a plain scalar inside a flow collection holds a `?` (`{a: b?c}`).

    yaml.v3 and yaml.v2 scan with an older libyaml, in which `?` ends a plain scalar in
    flow context, so they reject such a document ("did not find expected ',' or '}'");
    the libyaml under PyYAML reads `b?c` as one scalar."""
    if "?" not in text:
        return None
    depth = content = 0
    tokens = yaml.scan(text, Loader=loader or _Base)
    while True:
        try:
            token = next(tokens)
        except (StopIteration, yaml.YAMLError):  # past the first document: not read
            return None
        if isinstance(token, yaml.DocumentStartToken | yaml.DocumentEndToken):
            if content:
                return None
            continue
        content += not isinstance(token, yaml.StreamStartToken)
        if isinstance(token, yaml.FlowSequenceStartToken | yaml.FlowMappingStartToken):
            depth += 1
        elif isinstance(token, yaml.FlowSequenceEndToken | yaml.FlowMappingEndToken):
            depth -= 1
        elif (
            depth > 0 and isinstance(token, yaml.ScalarToken) and token.plain and "?" in token.value
        ):
            mark: yaml.Mark | None = token.start_mark
            return mark
    return None


def _compose(text: str) -> Node | None:
    """The first document's root node (yaml.v3 ignores later documents)."""
    try:
        for document in yaml.compose_all(text, Loader=ComposeLoader):
            mark = flow_question_mark(text)
            if mark is not None:
                raise YamlError(
                    f"yaml: line {mark.line + 1}: did not find expected ',' or "
                    "']' or '}' (a `?` inside a plain scalar in a flow collection)",
                    mark.line + 1,
                )
            return document
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        if problem.startswith("found undefined alias") and mark is not None:
            # yaml.v3's parser: "unknown anchor 'name' referenced", without a line
            name = anchor_at(text, int(mark.index) + 1)
            raise YamlError(
                f"yaml: unknown anchor '{name}' referenced", int(mark.line) + 1
            ) from None
        line = int(mark.line) + 1 if mark is not None else None
        where = f"line {line}: " if line is not None else ""
        raise YamlError(f"yaml: {where}{problem}", line) from None
    except yaml.YAMLError as exc:
        raise YamlError(f"yaml: {type(exc).__name__}") from None
    except RecursionError:
        raise YamlError("yaml: document is nested too deeply") from None
    return None


def load_objects(text: str, extra_string_fields: Iterable[str] = ()) -> list[dict[str, Any]]:
    """Decode `objects` as yaml.v3 decodes it into vault-csi-provider's []config.Secret.

    Each entry holds only the keys written in the YAML: string fields as the scalar's
    text ("" for null), filePermission as an int (0 for null), secretArgs as a dict
    (None for null) with yaml.v3-resolved values, other keys decoded generically (or as
    strings when named in `extra_string_fields`) and dropped when yaml.v3 would have
    failed to decode them. Raises YamlError with yaml.v3's wording.
    """
    # Before libyaml's recursive composer; aliases are bounded by yaml.v3's rule below.
    limits.check_yaml(text, "objects", expansion=False)
    root = _compose(text)
    if root is None:
        return []
    decoder = _Decoder(STRING_FIELDS | frozenset(extra_string_fields))
    try:
        objects = decoder.secrets(root)
    except _Fatal as exc:
        if exc.anchored is not None:
            raise YamlError(f"yaml: anchor '{anchor_name(text, exc.anchored)}' {exc}") from None
        raise YamlError(f"yaml: {exc}") from None
    except RecursionError:
        raise YamlError("yaml: document is nested too deeply") from None
    if decoder.errors:
        first = decoder.errors[0]
        line = int(first[5 : first.index(":")]) if first.startswith("line ") else None
        raise YamlError("yaml: unmarshal errors:\n  " + "\n  ".join(decoder.errors), line)
    return objects
