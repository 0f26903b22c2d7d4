"""The decrypted document as `sops --decrypt` writes it: JSON as Go's encoder indents it,
dotenv, INI as go-ini writes it, YAML as yaml.v3 writes it, binary as the bytes; and
its plain data for the extraction step."""

from __future__ import annotations

import base64
import math
import re
from typing import Any

import yaml

from csiprovider.compat.go import yaml_v3
from csiprovider.compat.go.encoding_json import _float as go_json_float
from csiprovider.compat.go.encoding_json import _string as go_json_string
from csiprovider.compat.go.strconv import format_float
from csiprovider.compat.go.yaml_v3 import GoTime
from csiprovider.stores.sops.document import (
    YAML11_TRUE,
    Comment,
    SopsError,
)


def emit(fmt: str, tree: dict[str, Any]) -> bytes:
    """The decrypted document as `sops --decrypt` writes it (yaml: same data and order)."""
    if fmt == "binary":
        data = tree.get("data")
        if not isinstance(data, str):
            raise SopsError("binary document has no string 'data'")
        return data.encode("utf-8", "surrogateescape")
    if fmt == "json":
        return (_json(tree, 0) + "\n").encode("utf-8", "surrogateescape")
    if fmt == "dotenv":
        lines = []
        for key, value in tree.items():
            if isinstance(key, Comment):
                lines.append(f"#{key.value}\n")
            elif isinstance(value, dict | list):
                raise SopsError(f"dotenv cannot hold a complex value (key {key!r})")
            else:
                shown = (
                    value.replace("\n", "\\n") if isinstance(value, str) else _scalar_text(value)
                )
                lines.append(f"{key}={shown}\n")
        return "".join(lines).encode("utf-8", "surrogateescape")
    if fmt == "ini":
        return _ini(tree).encode("utf-8", "surrogateescape")
    text = yaml.dump(
        _yaml_data(tree),
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        indent=4,
        width=1 << 30,
    )
    return text.encode()


class _Dumper(yaml.SafeDumper):
    """Scalars as yaml.v3 writes them for sops, so that any YAML reader (1.1 or 1.2)
    reads the same data as from `sops --decrypt`: floats in Go's shortest form (`1e-07`,
    `1000`, `.inf`), times as plain timestamps, multi-line strings as literal blocks, and
    a string quoted whenever PyYAML's or yaml.v3's resolver would read it as another
    type (`yes`, `1e3`, `0o17`); indented by 4, sequences too, lines never folded."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


_YAML11_BOOLS = frozenset(YAML11_TRUE | {"n", "N", "no", "No", "NO", "off", "Off", "OFF"})
_BASE60 = re.compile(r"[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?")


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = None  # plain where the emitter can, as yaml.v3's stringv
    if "\n" in data:
        style = "|"  # the emitter falls back to quotes where a block cannot hold it
    elif (
        data in _YAML11_BOOLS
        or _BASE60.fullmatch(data)
        or yaml_v3.resolve("", data)[0] != "!!str"
        or any(ord(ch) > 0xFFFF for ch in data)
    ):  # yaml.v3 escapes these: \U0001F511
        style = '"'
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


def _represent_float(dumper: yaml.SafeDumper, data: float) -> yaml.ScalarNode:
    shown = format_float(data)  # yaml.v3 encode.go: FormatFloat(f, 'g', -1, 64)
    text = {"+Inf": ".inf", "-Inf": "-.inf", "NaN": ".nan"}.get(shown, shown)
    # plain, as yaml.v3 writes it: the tag is what PyYAML's resolver reads it as
    tag: str = dumper.resolve(yaml.ScalarNode, text, (True, False))  # type: ignore[no-untyped-call]
    return dumper.represent_scalar(tag, text)


def _represent_time(dumper: yaml.SafeDumper, data: GoTime) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:timestamp", str.__str__(data))


_Dumper.add_representer(str, _represent_str)
_Dumper.add_representer(float, _represent_float)
_Dumper.add_representer(GoTime, _represent_time)


def _yaml_data(value: Any) -> Any:
    """plain_data, keeping times."""
    if isinstance(value, GoTime):
        return value
    if isinstance(value, dict):
        return {k: _yaml_data(v) for k, v in value.items() if not isinstance(k, Comment)}
    if isinstance(value, list):
        return [_yaml_data(v) for v in value if not isinstance(v, Comment)]
    return plain_data(value)


def _ini(tree: dict[str, Any]) -> str:
    """go-ini's writer as sops uses it (stores/ini encodeTree, ini.v1 writeToBuffer):
    comments above their section or key, keys with `"`, `=` or `:` in backticks (with a
    backtick in triple quotes), `=` aligned per section on the keys' byte length,
    sections apart by a blank line, the DEFAULT section without a header."""
    blocks = []
    for name, section in tree.items():
        if isinstance(name, Comment) or not isinstance(section, dict):
            continue
        items = list(section.items())
        lines = []
        if items and isinstance(items[0][0], Comment):
            lines += [_ini_comment(line, trim=False) for line in items[0][0].value.split("\n")]
            items = items[1:]
        keys: list[list[str]] = []  # name as written, value as written, comment
        for key, value in items:
            if isinstance(key, Comment):
                if keys:
                    keys[-1][2] = key.value
                continue
            if '"' in key or "=" in key or ":" in key:
                key = f"`{key}`"
            elif "`" in key:
                key = f'"""{key}"""'
            keys.append([key, _ini_value(_scalar_text(value)), ""])
        if name == "DEFAULT" and not keys:
            continue
        if name != "DEFAULT":
            lines.append(f"[{name}]\n")
        width = max((len(k.encode()) for k, _, _ in keys), default=0)
        for key, value, comment in keys:
            if comment:
                lines += [_ini_comment(line, trim=True) for line in comment.split("\n")]
            lines.append(f"{key}{' ' * (width - len(key.encode()))} = {value}\n")
        blocks.append("".join(lines))
    return "\n".join(blocks)


def _ini_comment(line: str, trim: bool) -> str:
    if line[:1] in ("#", ";"):
        return f"{line[0]} {line[1:].strip()}\n"
    return f"; {line.strip() if trim else line}\n"


def _ini_value(value: str) -> str:
    if "\n" in value or "`" in value:
        return f'"""{value}"""'
    if "#" in value or ";" in value:
        return f"`{value}`"
    if value != value.strip():
        return f'"{value}"'
    return value


def _scalar_text(value: Any) -> str:
    """stores.ValToString."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        text = format_float(value, fmt="G")  # FormatFloat(v, 'G', -1, 64)
        if "." not in text and "E" not in text and math.isfinite(value):
            text = format_float(value, fmt="f", prec=1)  # not to read as an int
        return text
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return "" if value is None else str(value)


def plain_data(value: Any) -> Any:
    """The tree without comments, strings as text: for YAML and for extraction."""
    if isinstance(value, dict):
        return {k: plain_data(v) for k, v in value.items() if not isinstance(k, Comment)}
    if isinstance(value, list):
        return [plain_data(v) for v in value if not isinstance(v, Comment)]
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def _json(value: Any, level: int) -> str:
    """Go's json.Marshal of sops' tree, re-indented with tabs (json.Indent)."""
    pad = "\t" * (level + 1)
    end = "\t" * level
    if isinstance(value, dict):
        items = [(k, v) for k, v in value.items() if not isinstance(k, Comment)]
        if not items:
            return "{}"
        body = ",\n".join(f"{pad}{go_json_string(k)}: {_json(v, level + 1)}" for k, v in items)
        return "{\n" + body + "\n" + end + "}"
    if isinstance(value, list):
        elems = [v for v in value if not isinstance(v, Comment)]
        if not elems:
            return "[]"
        return "[\n" + ",\n".join(pad + _json(v, level + 1) for v in elems) + "\n" + end + "]"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_json_float(value)
    if isinstance(value, bytes):
        return go_json_string(base64.b64encode(value).decode())
    return go_json_string(str(value))
