"""sigs.k8s.io/yaml decoding into a Go struct, as ASCP reads its `objects`.

sigs.k8s.io/yaml parses YAML 1.1 (yaml.v2: `0600` is the integer 384, `yes` is true),
converts the document to JSON, and encoding/json decodes that into the struct. So keys
match field names case-insensitively, unknown keys are ignored, a scalar bound for a
string field arrives as its JSON text (`yes` → "true", `0x1F` → "31"), and a mapping or
sequence where a string belongs is a Go type error. Messages are the Go libraries' own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_CONSTRUCT = yaml.SafeLoader(stream="")


class DecodeError(ValueError):
    """A document sigs.k8s.io/yaml or encoding/json refuses, in their words."""


def compose(text: str) -> yaml.Node | None:
    """The document's node tree (None for an empty document)."""
    try:
        return yaml.compose(text, Loader=_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or "invalid YAML"
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise DecodeError(f"error converting YAML to JSON: yaml: {where}{problem}") from None


def struct_fields(node: yaml.Node, fields: Mapping[str, str], go_type: str, package: str,
                  nested: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Decode a mapping into `fields` ({lower-case Go field name: our name}): names in
    `nested` keep their node (a nested struct or slice), the others become strings."""
    if not isinstance(node, yaml.MappingNode):
        raise type_error(go_type, f"{package}.{go_type}")
    out: dict[str, Any] = {}
    for key_node, value_node in node.value:
        key = str(key_node.value)
        name = fields.get(key.lower())
        if name is None:
            continue  # unknown keys are ignored, like encoding/json does
        out[name] = value_node if name in nested else string_field(value_node,
                                                                   f"{go_type}.{key}")
    return out


def string_field(node: yaml.Node, where: str) -> str:
    """A scalar as sigs.k8s.io/yaml hands it to a Go string field."""
    if not isinstance(node, yaml.ScalarNode):
        kind = "object" if isinstance(node, yaml.MappingNode) else "array"
        raise type_error(where, "string", kind)
    if node.style in ("'", '"', "|", ">"):
        return str(node.value)
    tag = node.tag.rsplit(":", 1)[-1]
    if tag == "null":
        return ""
    if tag == "bool":
        return "true" if _CONSTRUCT.construct_yaml_bool(node) else "false"
    if tag == "int":
        return str(_CONSTRUCT.construct_yaml_int(node))
    if tag == "float":
        value = _CONSTRUCT.construct_yaml_float(node)
        return str(int(value)) if value.is_integer() and abs(value) < 1e21 else repr(value)
    return str(node.value)


def is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null")


def type_error(where: str, go_type: str, kind: str = "object") -> DecodeError:
    return DecodeError(f"error unmarshaling JSON: while decoding JSON: json: cannot unmarshal "
                       f"{kind} into Go struct field {where} of type {go_type}")
