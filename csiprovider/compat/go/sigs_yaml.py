"""sigs.k8s.io/yaml decoding into a Go struct, as ASCP reads its `objects`.

`yaml.Unmarshal(y, &obj)` in sigs.k8s.io/yaml is three steps, each emulated here:

1. yaml.v2 decodes the document into interface{}: YAML 1.1 scalars (`yes`, `on`, `y`
   are booleans; `0600` is the integer 384, `0o600` and `0x1F` parse too; no sexagesimal
   numbers), timestamps kept as their text, `!!binary` decoded, merge keys applied where
   they stand (a later `<<` overrides keys before it), explicit tags checked ("cannot
   decode !!str `x` as a !!int").
2. The result is made JSON-able with the target struct in view: non-string keys become
   strings (floats as float32 %g, `.inf`), a scalar bound for a Go string field becomes
   its text (`yes` → "true", `0x1F` → "31", `1.23456789` → "1.2345679"), nil and uint64
   keys are refused; json.Marshal then refuses NaN and infinities anywhere (also under
   keys the struct ignores) and replaces invalid UTF-8.
3. encoding/json decodes that JSON into the struct: object keys in sorted order, fields
   matched exactly or case-insensitively (with Go's folding: U+017F long s is `s`,
   U+212A Kelvin sign is `k`), unknown keys ignored, null leaves a field as it is, a value
   of the wrong JSON kind is a type error naming the struct and field path, and the first
   error wins.

Messages are the Go libraries' own (sigs.k8s.io/yaml >= 1.4 wording, what ASCP builds
with). Known divergences: YAML syntax error texts are PyYAML's, a tag directly followed
by `,` `[` `]` in a flow collection is read as libyaml 0.2.5 reads it, and the value
printed in "unsupported map key" errors orders map entries only approximately.
"""

from __future__ import annotations

import base64
import binascii
import math
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from csiprovider.compat.go import yaml_v3
from csiprovider.compat.go.encoding_json import InterfaceKeyMap
from csiprovider.compat.go.fmt import sharp_v
from csiprovider.compat.go.strconv import format_float

_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
_FFFD = "csiprovider.compat.go.encoding_json.fffd"
_TO_JSON = "error converting YAML to JSON: "
_FROM_JSON = "error unmarshaling JSON: while decoding JSON: "

# yaml.v2's resolve table: YAML 1.1 booleans on top of yaml.v3's (the same otherwise).
_YAML11_MAP = {
    **{s: ("!!bool", True) for s in ("y", "Y", "yes", "Yes", "YES", "on", "On", "ON")},
    **{s: ("!!bool", False) for s in ("n", "N", "no", "No", "NO", "off", "Off", "OFF")},
}


class DecodeError(ValueError):
    """A document sigs.k8s.io/yaml or encoding/json refuses, in their words."""


class _Fatal(Exception):
    def __init__(self, message: str, anchored: Node | None = None) -> None:
        super().__init__(message)
        self.anchored = anchored


# ------------------------------------------------------------------ Go types


@dataclass(frozen=True)
class GoType:
    """The part of a Go type decoding needs: string, struct (json names), slice, pointer."""

    kind: str
    name: str
    elem: GoType | None = None
    fields: tuple[tuple[str, GoType], ...] = ()

    @property
    def short(self) -> str:
        return self.name.rsplit(".", 1)[-1]


STRING = GoType("string", "string")


def struct(name: str, fields: list[tuple[str, GoType]]) -> GoType:
    return GoType("struct", name, fields=tuple(fields))


def slice_of(elem: GoType) -> GoType:
    return GoType("slice", "[]" + elem.name, elem)


def pointer_to(elem: GoType) -> GoType:
    return GoType("ptr", "*" + elem.name, elem)


_FOLD_TO_ASCII = {"\u017f": "S", "\u212a": "K"}  # the only non-ASCII runes that fold to ASCII


def _fold(name: str) -> str:
    """encoding/json's case folding, as far as it matters against ASCII field names."""
    return "".join(c.upper() if c.isascii() else _FOLD_TO_ASCII.get(c, c) for c in name)


def _field(target: GoType, key: str) -> tuple[str, GoType] | None:
    for name, kind in target.fields:
        if name == key:
            return name, kind
    folded = _fold(key)
    for name, kind in target.fields:
        if _fold(name) == folded:
            return name, kind
    return None


def _zero(target: GoType) -> Any:
    if target.kind == "string":
        return ""
    if target.kind == "struct":
        return {name: _zero(kind) for name, kind in target.fields}
    return None


# ------------------------------------------------------------------ 1. yaml.v2


class _GoMap(dict[tuple[str, Any], tuple[Any, Any]]):
    """map[interface{}]interface{}: keys told apart by Go type (1, true and 1.0 differ)."""

    def put(self, key: Any, value: Any) -> None:
        if isinstance(key, float) and math.isnan(key):
            self[("nan", len(self))] = (key, value)  # NaN never equals itself
        else:
            self[(_go_kind(key), key)] = (key, value)

    def plain(self) -> InterfaceKeyMap:
        return InterfaceKeyMap({k: _plain(v) for k, v in self.values()})


def _plain(value: Any) -> Any:
    if isinstance(value, _GoMap):
        return value.plain()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _go_kind(value: Any) -> str:
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int" if _INT64_MIN <= value <= _INT64_MAX else "uint64"
    if isinstance(value, float):
        return "float64"
    return "string"


def _explicit(node: Node) -> str:
    return yaml_v3.short_tag(node.tag) if node.tag else ""


def _is_merge(node: Node) -> bool:
    return (
        isinstance(node, ScalarNode)
        and node.value == "<<"
        and ((not node.tag and not node.style) or _explicit(node) == "!!merge")
    )


class _Yaml2:
    """yaml.v2's decoder into interface{}."""

    def __init__(self) -> None:
        self.active: set[int] = set()

    def value(self, node: Node) -> Any:
        key = id(node)
        if key in self.active:
            raise _Fatal("value contains itself", anchored=node)
        self.active.add(key)
        try:
            if isinstance(node, SequenceNode):
                return [self.value(item) for item in node.value]
            if isinstance(node, MappingNode):
                out = _GoMap()
                self.mapping(node, out)
                return out
            return self.scalar(node)
        finally:
            self.active.discard(key)

    def scalar(self, node: Node) -> Any:
        tag = _explicit(node)
        if not tag and getattr(node, "style", None):  # quoted, literal, folded: a string
            return node.value
        if tag == "!!binary":
            raw = node.value.replace("\n", "").replace("\r", "")
            try:
                data = base64.b64decode(raw, validate=True)
            except (binascii.Error, ValueError):
                raise _Fatal("!!binary value contains invalid base64 data") from None
            return data.decode("utf-8", "surrogateescape")
        try:
            rtag, value = yaml_v3.resolve(tag, node.value, yaml11=_YAML11_MAP)
        except yaml_v3.ResolveError as exc:
            raise _Fatal(str(exc)) from None
        if rtag == "!!timestamp":
            return node.value  # yaml.v2 keeps a timestamp in interface{} as its text
        return value

    def mapping(self, node: MappingNode, out: _GoMap) -> None:
        for key_node, value_node in node.value:
            if _is_merge(key_node):
                self.merge(value_node, out)
                continue
            key = self.value(key_node)
            if isinstance(key, list | _GoMap):
                raise _Fatal(f"invalid map key: {sharp_v(_plain(key))}")
            out.put(key, self.value(value_node))

    def merge(self, node: Node, out: _GoMap) -> None:
        """yaml.v2's merge: applied in place; in a sequence, earlier maps win."""
        if isinstance(node, MappingNode):
            self.into(node, out)
        elif isinstance(node, SequenceNode):
            for item in reversed(node.value):
                if not isinstance(item, MappingNode):
                    raise _Fatal("map merge requires map or sequence of maps as the value")
                self.into(item, out)
        else:
            raise _Fatal("map merge requires map or sequence of maps as the value")

    def into(self, node: MappingNode, out: _GoMap) -> None:
        key = id(node)
        if key in self.active:
            raise _Fatal("value contains itself", anchored=node)
        self.active.add(key)
        try:
            self.mapping(node, out)
        finally:
            self.active.discard(key)


def compose(text: str) -> Node | None:
    """The first document's node tree (None for an empty document), or a syntax error."""
    try:
        for document in yaml.compose_all(text, Loader=yaml_v3.ComposeLoader):
            mark = yaml_v3.flow_question_mark(text)
            if mark is not None:
                raise DecodeError(
                    f"{_TO_JSON}yaml: line {mark.line + 1}: did not find "
                    "expected ',' or ']' or '}' (a `?` inside a plain scalar "
                    "in a flow collection)"
                )
            return document
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        if problem.startswith("found undefined alias") and mark is not None:
            name = yaml_v3.anchor_at(text, int(mark.index) + 1)
            raise DecodeError(f"{_TO_JSON}yaml: unknown anchor '{name}' referenced") from None
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise DecodeError(f"{_TO_JSON}yaml: {where}{problem}") from None
    except yaml.YAMLError as exc:
        raise DecodeError(f"{_TO_JSON}yaml: {type(exc).__name__}") from None
    return None


# ------------------------------------------------------------------ 2. to JSON


def _key_string(key: Any, value: Any) -> str:
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, str):
        return key
    if isinstance(key, int) and _INT64_MIN <= key <= _INT64_MAX:
        return str(key)
    if isinstance(key, float):
        text = format_float(key, 32)
        return {"+Inf": ".inf", "-Inf": "-.inf", "NaN": ".nan"}.get(text, text)
    kind = "%!s(<nil>)" if key is None else "uint64"
    raise DecodeError(
        f"{_TO_JSON}unsupported map key of type: {kind}, key: {sharp_v(key)}, "
        f"value: {sharp_v(_plain(value))}"
    )


def _to_json(value: Any, target: GoType | None) -> Any:
    """sigs.k8s.io/yaml's convertToJSONableObject."""
    while target is not None and target.kind == "ptr":
        target = target.elem
    if isinstance(value, _GoMap):
        out: dict[str, Any] = {}
        for key, item in value.values():
            name = _key_string(key, item)
            field = _field(target, name) if target is not None and target.kind == "struct" else None
            out[name] = _to_json(item, field[1] if field else None)
        return out
    if isinstance(value, list):
        elem = target.elem if target is not None and target.kind == "slice" else None
        return [_to_json(item, elem) for item in value]
    if (
        target is not None
        and target.kind == "string"
        and value is not None
        and not isinstance(value, str)
    ):
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int):
            return str(value)
        return format_float(value, 32)
    return value


def _marshal(value: Any) -> Any:
    """json.Marshal's checks and rewrites: sorted keys, no NaN/Inf, valid UTF-8."""
    if isinstance(value, dict):
        return {
            _utf8(k): _marshal(value[k])
            for k in sorted(value, key=lambda k: k.encode("utf-8", "surrogateescape"))
        }
    if isinstance(value, list):
        return [_marshal(v) for v in value]
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        raise DecodeError(f"{_TO_JSON}json: unsupported value: {format_float(value)}")
    if isinstance(value, str):
        return _utf8(value)
    return value


def _utf8(text: str) -> str:
    raw = text.encode("utf-8", "surrogateescape")
    return raw.decode("utf-8", _FFFD)


# ------------------------------------------------------------------ 3. encoding/json


def _json_kind(value: Any) -> str:
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return "object" if isinstance(value, dict) else "array"


def _decode(value: Any, target: GoType, current: Any, context: tuple[str, tuple[str, ...]]) -> Any:
    """encoding/json's decode of a JSON value into `current` (a value of `target`)."""
    if target.kind == "ptr":
        if value is None:
            return None
        assert target.elem is not None
        start = current if current is not None else _zero(target.elem)
        return _decode(value, target.elem, start, context)
    if value is None:  # null: nil for a slice, no effect on a string or a struct
        return None if target.kind == "slice" else current
    if target.kind == "string" and isinstance(value, str):
        return value
    if target.kind == "slice" and isinstance(value, list):
        assert target.elem is not None
        out = list(current or [])
        for i, item in enumerate(value):  # into the existing elements, like Go
            if i < len(out):
                out[i] = _decode(item, target.elem, out[i], context)
            else:
                out.append(_decode(item, target.elem, _zero(target.elem), context))
        return out[: len(value)]
    if target.kind == "struct" and isinstance(value, dict):
        fields = dict(current)
        for key, item in value.items():
            found = _field(target, key)
            if found is not None:
                name, kind = found
                fields[name] = _decode(
                    item, kind, fields[name], (target.short, (*context[1], name))
                )
        return fields
    struct_name, stack = context
    where = f"Go struct field {struct_name}.{'.'.join(stack)}" if stack else "Go value"
    raise DecodeError(
        f"{_FROM_JSON}json: cannot unmarshal {_json_kind(value)} into {where} of type {target.name}"
    )


def unmarshal(text: str, target: GoType) -> Any:
    """sigs.k8s.io/yaml's Unmarshal into a pointer to `target`; DecodeError in Go's words."""
    root = compose(text)
    if root is None:
        return _zero(target)
    try:
        value = _Yaml2().value(root)
    except _Fatal as exc:
        if exc.anchored is not None:
            name = yaml_v3.anchor_name(text, exc.anchored)
            raise DecodeError(f"{_TO_JSON}yaml: anchor '{name}' {exc}") from None
        raise DecodeError(f"{_TO_JSON}yaml: {exc}") from None
    except RecursionError:
        raise DecodeError(f"{_TO_JSON}yaml: document is nested too deeply") from None
    data = _marshal(_to_json(value, target))
    if data is None:  # JSON null leaves the target as it was
        return _zero(target)
    return _decode(data, target, _zero(target), ("", ()))
