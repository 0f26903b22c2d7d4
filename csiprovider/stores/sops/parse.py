"""Reading an encrypted document as sops' stores read it: YAML with yaml.v3's scalar rules,
JSON, dotenv and INI (go-ini's rules), and the metadata under `sops` (flattened in
dotenv and INI)."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from csiprovider.compat.go import yaml_v3
from csiprovider.compat.go.yaml_v3 import GoTime
from csiprovider.stores.sops.document import (
    YAML11_TRUE,
    Comment,
    CommentKey,
    Metadata,
    Parsed,
    SopsError,
)

_INT64 = (-(1 << 63), (1 << 63) - 1)
_MAP = "__map_"
_LIST = "__list_"


def _json_int(text: str) -> int | float:
    number = int(text)
    return number if _INT64[0] <= number <= _INT64[1] else float(text)


_QUOTED = frozenset({"'", '"', "|", ">"})


def _load_yaml(text: str) -> list[Any]:
    """The documents of a YAML stream as sops reads them: go.yaml.in/yaml/v3 decoding
    each scalar into interface{} (stores/yaml/store.go nodeToTreeValue), so `yes`, `on`,
    `1:30` stay strings, `1e-07` and `08` are floats, `0o17` an int and an unquoted
    timestamp a time (GoTime) - PyYAML's YAML 1.1 resolver reads all of these otherwise,
    which changes the MAC of an unencrypted value and the keys of the tree."""
    try:
        nodes = list(yaml.compose_all(text, Loader=yaml_v3.ComposeLoader))
    except yaml.YAMLError:
        raise SopsError("document is not valid YAML") from None
    built: dict[int, Any] = {}
    try:
        return [_yaml_value(node, built, set()) for node in nodes if node is not None]
    except RecursionError:
        raise SopsError("document is nested too deeply") from None


def _yaml_value(node: Node, built: dict[int, Any], open_: set[int]) -> Any:
    if id(node) in built:  # an alias: the anchored value itself, as PyYAML shares it
        return built[id(node)]
    if id(node) in open_:
        raise SopsError("document has a YAML anchor whose value contains itself")
    if isinstance(node, ScalarNode):
        value = _yaml_scalar(node)
    elif isinstance(node, SequenceNode):
        open_.add(id(node))
        value = [_yaml_value(item, built, open_) for item in node.value]
        open_.discard(id(node))
    elif isinstance(node, MappingNode):
        open_.add(id(node))
        value = {}
        for key_node, value_node in node.value:
            key = _yaml_scalar(key_node) if isinstance(key_node, ScalarNode) else None
            if type(key) is not str:  # sops: "Tree contains a non-string key"
                raise SopsError("document has a non-string key; sops supports string keys only")
            if key in value:
                raise SopsError("document has a key repeated in one mapping")
            value[key] = _yaml_value(value_node, built, open_)
        open_.discard(id(node))
    else:  # pragma: no cover - the composer makes no other node
        raise SopsError("document has a YAML node sops cannot read")
    built[id(node)] = value
    return value


def _yaml_scalar(node: ScalarNode) -> Any:
    """yaml.v3's decoding of a scalar into interface{} (decode.go d.scalar)."""
    tag = yaml_v3.short_tag(node.tag) if node.tag and node.tag != "!" else ""
    if not tag and node.style in _QUOTED:
        tag = "!!str"  # indicatedString
    if tag == "!!binary":
        try:
            data = base64.b64decode("".join(str(node.value).split()), validate=True)
        except (binascii.Error, ValueError):
            raise SopsError("document has a !!binary value that is not base64") from None
        return data.decode("utf-8", "surrogateescape")
    try:
        rtag, value = yaml_v3.resolve(tag, str(node.value))
    except yaml_v3.ResolveError:
        raise SopsError("document has a YAML value that does not fit its explicit tag") from None
    if rtag == "!!merge":
        return "<<"
    return value


def parse(text: str, fmt: str) -> Parsed:
    """Split an encrypted document into its tree and its metadata."""
    if fmt in ("json", "binary"):
        try:
            tree = json.loads(text, parse_int=_json_int)
        except json.JSONDecodeError as exc:
            raise SopsError(
                f"document is not valid JSON ({exc.msg} at line {exc.lineno})"
            ) from None
        except ValueError:
            raise SopsError("document is not valid JSON") from None
        if not isinstance(tree, dict):
            raise SopsError("document is not a JSON object")
        raw = tree.pop("sops", None)
    elif fmt == "yaml":
        docs = [d for d in _load_yaml(text) if d is not None]
        if len(docs) != 1 or not isinstance(docs[0], dict):
            raise SopsError(
                "document must be one YAML mapping (multi-document YAML is not supported)"
            )
        tree = docs[0]
        raw = tree.pop("sops", None)
    elif fmt == "dotenv":
        tree, raw = _parse_dotenv(text)
    elif fmt == "ini":
        tree, raw = _parse_ini(text)
    else:
        raise SopsError(f"unknown format {fmt!r}")
    if not isinstance(raw, dict):
        raise SopsError("document has no sops metadata; is it encrypted with sops?")
    _check_keys(tree)
    return Parsed(fmt, tree, _metadata(raw, fmt))


def _check_keys(value: Any) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str | Comment):
                raise SopsError("document has a non-string key; sops supports string keys only")
            _check_keys(item)
    elif isinstance(value, list):
        for item in value:
            _check_keys(item)


def _parse_dotenv(text: str) -> tuple[dict[Any, Any], dict[str, Any]]:
    tree: dict[Any, Any] = {}
    flat: dict[str, str] = {}
    for number, line in enumerate(text.split("\n"), 1):
        if not line:
            continue
        if line.startswith("#"):
            tree[CommentKey(line[1:], number)] = None  # keyed by line: repeats allowed
            continue
        key, eq, value = line.partition("=")
        if not eq:
            raise SopsError(f"invalid dotenv line {number}: no '='")
        value = value.replace("\\n", "\n")
        if key.startswith("sops_"):
            flat[key[len("sops_") :]] = value
        else:
            tree[key] = value
    return tree, _unflatten(flat)


def _parse_ini(text: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """gopkg.in/ini.v1 as sops' ini store loads a document (LoadSources with
    AllowNonUniqueSections): `=` or `:` between key and value, quoted keys, values in
    backticks or triple quotes (over several lines), continuation lines (a trailing
    backslash), surrounding quotes dropped, an unquoted value cut at its first `#` or `;`
    (an inline comment).
    Comments above a section header (or after it) are the section's, comments above a
    key (or after its value) the key's: in the tree the section's comment comes first
    and a key's right after it (stores/ini/store.go), each encrypted by sops."""
    parts = text.removeprefix("\ufeff").split("\n")
    lines = [part + "\n" for part in parts[:-1]] + [parts[-1]]
    tree: dict[str, Any] = {}
    sections: dict[str, tuple[str, dict[str, list[str]]]] = {}  # name: comment, keys
    sops: dict[str, str] = {}
    current: dict[str, list[str]] | None = None
    comment: list[str] = []
    index = 0

    def next_line() -> tuple[str, bool]:
        nonlocal index
        if index >= len(lines):
            return "", True
        index += 1
        return lines[index - 1], index == len(lines)

    while index < len(lines):
        number = index + 1
        line = next_line()[0].lstrip()
        if not line:
            continue
        if line[0] in "#;":
            comment.append(line)
            continue
        if line[0] == "[":
            close = line.rfind("]")
            if close < 0:
                raise SopsError(f"ini line {number}: unclosed section")
            name = line[1:close]
            inline = _ini_inline_comment(line[close + 1 :])
            if inline:
                comment.append(inline)
            section_comment = "".join(comment).strip()
            comment = []
            if name in sections:
                raise SopsError(
                    f"ini line {number}: section [{name}] appears twice (sops "
                    "would keep both; not supported)"
                )
            current = {}
            sections[name] = (section_comment, current)
            continue
        key, offset = _ini_key(line, number)
        value = _ini_read_value(line[offset:], next_line, comment, number)
        if current is None:  # go-ini's section before any header
            current = {}
            sections["DEFAULT"] = ("", current)
        current[key] = [value, "".join(comment).strip()]  # a repeated key: the last wins,
        comment = []  # in the first one's place
    for name, (section_comment, keys) in sections.items():
        if name == "sops":
            sops = {k: v.replace("\\n", "\n") for k, (v, _) in keys.items()}
            continue
        branch: dict[Any, Any] = {}
        if section_comment:
            branch[CommentKey(_strip_comment(section_comment), 0)] = None
        for n, (key, (value, key_comment)) in enumerate(keys.items(), 1):
            branch[key] = value
            if key_comment:
                branch[CommentKey(_strip_comment(key_comment), n)] = None
        tree[name] = branch
    return tree, _unflatten(sops)


def _strip_comment(comment: str) -> str:
    """stores/ini stripCommentChar."""
    if comment.startswith(";"):
        return comment.lstrip("; ")
    if comment.startswith("#"):
        return comment.lstrip("# ")
    return comment


def _ini_inline_comment(text: str) -> str:
    """go-ini cleanComment: from the first `#` or `;` on."""
    found = [i for i in (text.find("#"), text.find(";")) if i >= 0]
    return text[min(found) :] if found else ""


def _ini_key(line: str, number: int) -> tuple[str, int]:
    """go-ini readKeyName: the key and where its value starts."""
    quote = ""
    if line[0] == '"':
        quote = '"""' if len(line) > 6 and line.startswith('"""') else '"'
    elif line[0] == "`":
        quote = "`"
    start = 0
    if quote:
        close = line.find(quote, len(quote))
        if close < 0:
            raise SopsError(f"ini line {number}: missing closing key quote")
        start = close + len(quote)
    found = [i for i in (line.find("=", start), line.find(":", start)) if i >= 0]
    if not found:
        raise SopsError(f"ini line {number}: no '=' or ':'")
    delimiter = min(found)
    if quote:
        return line[len(quote) : close].strip(), delimiter + 1
    if delimiter == 0:
        raise SopsError(f"ini line {number}: empty key name")
    return line[:delimiter].strip(), delimiter + 1


def _ini_read_value(
    rest: str, next_line: Callable[[], tuple[str, bool]], comment: list[str], number: int
) -> str:
    """go-ini readValue (and its multi-line and continuation readers)."""
    line = rest.lstrip()
    if not line:
        return ""
    quote = '"""' if len(line) > 3 and line.startswith('"""') else "`" if line[0] == "`" else ""
    if quote:
        close = line.rfind(quote, len(quote))
        if close >= 0:
            return line[len(quote) : close]
        parts = [line[len(quote) :]]
        while True:  # readMultilines
            data, eof = next_line()
            close = data.rfind(quote)
            if close >= 0:
                inline = _ini_inline_comment(data[close:])
                if inline:
                    comment.append(inline.strip())
                parts.append(data[:close])
                return "".join(parts)
            parts.append(data)
            if eof:
                raise SopsError(f"ini line {number}: missing closing {quote}")
    line = line.strip()
    if line.endswith("\\"):  # readContinuationLines
        parts = [line[:-1]]  # joined once: a long run of lines stays linear
        while True:
            data = next_line()[0].strip()
            if not data:
                return "".join(parts)
            if not data.endswith("\\"):
                parts.append(data)
                return "".join(parts)
            parts.append(data[:-1])
    inline = _ini_inline_comment(line)
    if inline:
        comment.append(inline)
        line = line[: len(line) - len(inline)].strip()
    for mark in "'\"":
        if len(line) >= 2 and line[0] == mark == line[-1] and line.find(mark, 1) == len(line) - 1:
            return line[1:-1]
    return line


def _unflatten(flat: dict[str, str]) -> dict[str, Any]:
    """`age__list_0__map_enc=...` -> {"age": [{"enc": ...}]} (stores/flatten.go)."""
    root: dict[str, Any] = {}
    for key, value in flat.items():
        tokens: list[str | int] = []
        for part in re.split(r"(__map_|__list_)", key):
            if part in (_MAP, _LIST):
                tokens.append(part)
                continue
            if tokens and tokens[-1] == _LIST:
                tokens[-1] = int(part) if part.isdigit() else 0
            elif tokens and tokens[-1] == _MAP:
                tokens[-1] = part
            else:
                tokens.append(part)
        node: Any = root
        for i, token in enumerate(tokens):
            last = i == len(tokens) - 1
            nxt: Any = value if last else ([] if isinstance(tokens[i + 1], int) else {})
            if isinstance(token, int):
                if not isinstance(node, list):
                    raise SopsError("invalid flattened sops metadata")
                if token >= len(flat):  # each item needs a key of its own: a forgery
                    raise SopsError(
                        f"invalid flattened sops metadata (list index {token} "
                        f"among {len(flat)} keys)"
                    )
                while len(node) <= token:  # keys come in any order (ini's are sorted)
                    node.append(None)
                if node[token] is None or last:
                    node[token] = nxt
                node = node[token]
            else:
                if not isinstance(node, dict):
                    raise SopsError("invalid flattened sops metadata")
                if token not in node or last:
                    node[token] = nxt
                node = node[token]
    return root


_RFC3339 = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2})(?:\.[0-9]+)?"
    r"(Z|[-+][0-9]{2}:[0-9]{2})"
)


def _go_rfc3339(text: str) -> str:
    """time.Parse(time.RFC3339, text).Format(time.RFC3339): what sops authenticates the
    MAC with (stores.go ToInternal, then the MAC's additional data): fractional seconds
    dropped, a zero offset written `Z`. Text that does not parse is kept (sops refuses
    such a document; the MAC will not decrypt here)."""
    match = _RFC3339.fullmatch(text)
    if match is None:
        return text
    zone = match[2]
    if zone != "Z" and zone[1:] == "00:00":
        zone = "Z"
    return match[1] + zone


def _metadata(raw: dict[str, Any], fmt: str) -> Metadata:
    def text(key: str) -> str:
        value = raw.get(key)
        if isinstance(value, GoTime):
            return value.source  # decoded into sops' string field: the text as written
        return "" if value is None else str(value)

    mac = text("mac")
    if not mac:
        raise SopsError("document has no MAC (sops.mac); refusing an unauthenticated document")
    groups = raw.get("key_groups")
    if not groups:
        groups = [raw]
    if not isinstance(groups, list) or not all(isinstance(g, dict) for g in groups):
        raise SopsError("invalid sops.key_groups")
    threshold = raw.get("shamir_threshold") or 0
    try:
        threshold = int(threshold)
    except (TypeError, ValueError):
        raise SopsError("invalid sops.shamir_threshold") from None
    only = raw.get("mac_only_encrypted", False)
    if fmt in ("dotenv", "ini"):  # flattened: stores.DecodeNonStrings
        mac_only = only == "true"
    elif fmt == "yaml":  # yaml.v3 into a bool field, with its YAML 1.1 compatibility
        mac_only = only is True or (isinstance(only, str) and only in YAML11_TRUE)
    else:
        mac_only = only is True
    return Metadata(
        key_groups=groups,
        shamir_threshold=threshold,
        last_modified=_go_rfc3339(text("lastmodified")),
        mac=mac,
        unencrypted_suffix=text("unencrypted_suffix"),
        encrypted_suffix=text("encrypted_suffix"),
        unencrypted_regex=text("unencrypted_regex"),
        encrypted_regex=text("encrypted_regex"),
        mac_only_encrypted=mac_only,
        comment_regexes=bool(
            raw.get("unencrypted_comment_regex") or raw.get("encrypted_comment_regex")
        ),
        raw=raw,
    )
