"""Go's fmt `%#v` of the values a YAML decoder produces, for the error messages that
print them (yaml's "invalid map key: %#v", sigs.k8s.io/yaml's "unsupported map key").

Values are modelled as the decoders return them: None (nil), bool, int (int; past int64
a uint64, which %#v prints in hex), float (float64), str (string), list ([]interface {}),
dict (map[string]interface {}) and `InterfaceKeyMap` (map[interface {}]interface {}).
Map entries are printed in sorted key order; for map[interface {}]interface {} Go sorts
keys of different types by an internal type order we only approximate (ints, floats,
strings, then the rest).
"""

from __future__ import annotations

import math
from typing import Any

from csiprovider.compat.go.encoding_json import InterfaceKeyMap
from csiprovider.compat.go.strconv import format_float, quote

_INT64_MAX = (1 << 63) - 1


def _key_order(key: Any) -> tuple[int, Any]:
    if isinstance(key, bool):
        return (4, key)
    if isinstance(key, int):
        return (0, key)
    if isinstance(key, float):
        return (1, -math.inf if math.isnan(key) else key)
    if isinstance(key, str):
        return (2, key.encode("utf-8", "surrogateescape"))
    return (5, repr(key))


def sharp_v(value: Any, nested: bool = False) -> str:
    """`%#v` of value (`nested`: as an element of an interface{} container)."""
    if value is None:
        return "interface {}(nil)" if nested else "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value) if value <= _INT64_MAX else hex(value)
    if isinstance(value, float):
        return format_float(value)
    if isinstance(value, str):
        return quote(value)
    if isinstance(value, list | tuple):
        return "[]interface {}{" + ", ".join(sharp_v(v, True) for v in value) + "}"
    if isinstance(value, dict):
        general = isinstance(value, InterfaceKeyMap)
        keys = sorted(value, key=_key_order)
        body = ", ".join(f"{sharp_v(k, general)}:{sharp_v(value[k], True)}" for k in keys)
        kind = "map[interface {}]interface {}" if general else "map[string]interface {}"
        return kind + "{" + body + "}"
    return repr(value)
