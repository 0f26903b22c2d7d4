r"""SOPS documents: parse an encrypted document, decrypt its values with the data key,
verify its MAC and write it back out as `sops --decrypt` does.

The format, as SOPS 3 writes it (github.com/getsops/sops, read to learn):

* every encrypted leaf is `ENC[AES256_GCM,data:<b64>,iv:<b64>,tag:<b64>,type:<t>]`,
  AES-256-GCM under the 32-byte data key, additional data = the keys of its path joined
  as `k1:k2:` (list indices are not part of the path); an empty string stays empty;
* which leaves are encrypted: all, unless `unencrypted_suffix`, `encrypted_suffix`,
  `unencrypted_regex` or `encrypted_regex` (checked in that order, on every key of the
  path; the regexes are Go's, ASCII `\d`/`\w`/`\b`) say otherwise;
* a document is read as sops' stores read it: YAML with yaml.v3's scalar rules (not
  PyYAML's YAML 1.1 ones), INI with go-ini's (comments belong to sections and keys);
* the MAC is the upper-case hex SHA-512 over the plaintext leaves in document order
  (only the encrypted ones, after a fixed prefix, with `mac_only_encrypted`), stored
  encrypted with the data key and `lastmodified` as additional data;
* metadata lives under the top-level `sops` key (yaml, json, binary), the `[sops]`
  section (ini, flattened below it) or flattened `sops_*` keys (dotenv).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import yaml
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from csiprovider.compat.go import yaml_v3
from csiprovider.compat.go.encoding_json import _float as go_json_float
from csiprovider.compat.go.encoding_json import _string as go_json_string
from csiprovider.compat.go.strconv import format_float as go_format_g
from csiprovider.compat.go.yaml_v3 import GoTime

FORMATS = ("yaml", "json", "dotenv", "ini", "binary")
_ENC = re.compile(r"ENC\[AES256_GCM,data:(.+),iv:(.+),tag:(.+),type:(.+)\]")
_MAC_ONLY_ENCRYPTED_INIT = bytes([
    0x8a, 0x3f, 0xd2, 0xad, 0x54, 0xce, 0x66, 0x52, 0x7b, 0x10, 0x34, 0xf3, 0xd1, 0x47, 0xbe,
    0x0b, 0x0b, 0x97, 0x5b, 0x3b, 0xf4, 0x4f, 0x72, 0xc6, 0xfd, 0xad, 0xec, 0x81, 0x76, 0xf2,
    0x7d, 0x69])
_INT64 = (-(1 << 63), (1 << 63) - 1)
_MAP = "__map_"
_LIST = "__list_"


class SopsError(Exception):
    """The document is not a SOPS document we can decrypt; the message names no value."""


class KeyError_(SopsError):
    """No available identity unwraps the data key."""


@dataclass(frozen=True)
class Comment:
    """A comment line of the tree (dotenv): encrypted like a value, never in the MAC."""

    value: str


@dataclass(frozen=True)
class _CommentKey(Comment):
    """A comment as a key of the tree, told apart from an equal comment by its line."""

    line: int = 0


@dataclass
class Metadata:
    """The `sops` block, as far as decryption needs it."""

    key_groups: list[dict[str, Any]]
    shamir_threshold: int
    last_modified: str
    mac: str
    unencrypted_suffix: str = ""
    encrypted_suffix: str = ""
    unencrypted_regex: str = ""
    encrypted_regex: str = ""
    mac_only_encrypted: bool = False
    comment_regexes: bool = False
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class Parsed:
    """An encrypted document: its tree (dicts keep their order) and its metadata."""

    format: str
    tree: dict[str, Any]
    metadata: Metadata


def infer_format(text: str) -> str:
    """The format of an encrypted document, from its content."""
    stripped = text.lstrip()
    if stripped.startswith("{"):
        return "json"
    if re.search(r"^sops_mac=", text, re.MULTILINE):
        return "dotenv"
    if re.search(r"^\s*\[sops\]\s*$", text, re.MULTILINE):
        return "ini"
    return "yaml"


# -- parsing -------------------------------------------------------------------------


def _json_int(text: str) -> int | float:
    number = int(text)
    return number if _INT64[0] <= number <= _INT64[1] else float(text)


_QUOTED = frozenset({"'", '"', "|", ">"})
_YAML11_TRUE = frozenset({"y", "Y", "yes", "Yes", "YES", "on", "On", "ON"})


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
                raise SopsError("document has a non-string key; sops supports string keys "
                                "only")
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
        raise SopsError("document has a YAML value that does not fit its explicit tag"
                        ) from None
    if rtag == "!!merge":
        return "<<"
    return value


def parse(text: str, fmt: str) -> Parsed:
    """Split an encrypted document into its tree and its metadata."""
    if fmt in ("json", "binary"):
        try:
            tree = json.loads(text, parse_int=_json_int)
        except json.JSONDecodeError as exc:
            raise SopsError(f"document is not valid JSON ({exc.msg} at line {exc.lineno})"
                            ) from None
        except ValueError:
            raise SopsError("document is not valid JSON") from None
        if not isinstance(tree, dict):
            raise SopsError("document is not a JSON object")
        raw = tree.pop("sops", None)
    elif fmt == "yaml":
        docs = [d for d in _load_yaml(text) if d is not None]
        if len(docs) != 1 or not isinstance(docs[0], dict):
            raise SopsError("document must be one YAML mapping (multi-document YAML is not "
                            "supported)")
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
                raise SopsError("document has a non-string key; sops supports string keys "
                                "only")
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
            tree[_CommentKey(line[1:], number)] = None  # keyed by line: repeats allowed
            continue
        key, eq, value = line.partition("=")
        if not eq:
            raise SopsError(f"invalid dotenv line {number}: no '='")
        value = value.replace("\\n", "\n")
        if key.startswith("sops_"):
            flat[key[len("sops_"):]] = value
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
            inline = _ini_inline_comment(line[close + 1:])
            if inline:
                comment.append(inline)
            section_comment = "".join(comment).strip()
            comment = []
            if name in sections:
                raise SopsError(f"ini line {number}: section [{name}] appears twice (sops "
                                "would keep both; not supported)")
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
            branch[_CommentKey(_strip_comment(section_comment), 0)] = None
        for n, (key, (value, key_comment)) in enumerate(keys.items(), 1):
            branch[key] = value
            if key_comment:
                branch[_CommentKey(_strip_comment(key_comment), n)] = None
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
    return text[min(found):] if found else ""


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
        return line[len(quote):close].strip(), delimiter + 1
    if delimiter == 0:
        raise SopsError(f"ini line {number}: empty key name")
    return line[:delimiter].strip(), delimiter + 1


def _ini_read_value(rest: str, next_line: Callable[[], tuple[str, bool]],
                    comment: list[str], number: int) -> str:
    """go-ini readValue (and its multi-line and continuation readers)."""
    line = rest.lstrip()
    if not line:
        return ""
    quote = '"""' if len(line) > 3 and line.startswith('"""') else \
        "`" if line[0] == "`" else ""
    if quote:
        close = line.rfind(quote, len(quote))
        if close >= 0:
            return line[len(quote):close]
        value = line[len(quote):]
        while True:  # readMultilines
            data, eof = next_line()
            close = data.rfind(quote)
            if close >= 0:
                inline = _ini_inline_comment(data[close:])
                if inline:
                    comment.append(inline.strip())
                return value + data[:close]
            value += data
            if eof:
                raise SopsError(f"ini line {number}: missing closing {quote}")
    line = line.strip()
    if line.endswith("\\"):  # readContinuationLines
        value = line[:-1]
        while True:
            data = next_line()[0].strip()
            if not data:
                return value
            value += data
            if not value.endswith("\\"):
                return value
            value = value[:-1]
    inline = _ini_inline_comment(line)
    if inline:
        comment.append(inline)
        line = line[:len(line) - len(inline)].strip()
    for mark in "'\"":
        if len(line) >= 2 and line[0] == mark == line[-1] and \
                line.find(mark, 1) == len(line) - 1:
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
                while len(node) <= token:
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


_RFC3339 = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2})(?:\.[0-9]+)?"
                      r"(Z|[-+][0-9]{2}:[0-9]{2})")


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
        raise SopsError("document has no MAC (sops.mac); refusing an unauthenticated "
                        "document")
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
        mac_only = only is True or (isinstance(only, str) and only in _YAML11_TRUE)
    else:
        mac_only = only is True
    return Metadata(
        key_groups=groups, shamir_threshold=threshold,
        last_modified=_go_rfc3339(text("lastmodified")),
        mac=mac, unencrypted_suffix=text("unencrypted_suffix"),
        encrypted_suffix=text("encrypted_suffix"),
        unencrypted_regex=text("unencrypted_regex"), encrypted_regex=text("encrypted_regex"),
        mac_only_encrypted=mac_only,
        comment_regexes=bool(raw.get("unencrypted_comment_regex")
                             or raw.get("encrypted_comment_regex")),
        raw=raw)


# -- the data key ----------------------------------------------------------------------


def data_key(metadata: Metadata, unwrap: Callable[[str, dict[str, Any]], bytes | None]) -> bytes:
    """The data key: `unwrap(kind, entry)` tries one master key of a group (an `age`
    entry...) and answers its plaintext or None. One group only (no Shamir)."""
    groups = len(metadata.key_groups)
    if groups != 1:
        threshold = metadata.shamir_threshold or groups
        raise SopsError(f"document splits its data key across {groups} key groups (Shamir "
                        f"secret sharing, shamir_threshold {threshold}), which this provider "
                        "does not support: re-encrypt it with one key group (list the master "
                        "keys directly in the .sops.yaml creation rule, not under key_groups, "
                        "and run `sops updatekeys`)")
    tried: list[str] = []
    for kind in ("age", "hc_vault", "kms", "gcp_kms", "azure_kv", "pgp"):
        entries = metadata.key_groups[0].get(kind) or []
        if not isinstance(entries, list):
            continue
        for entry in entries:
            if not isinstance(entry, dict):
                continue
            tried.append(kind)
            key = unwrap(kind, entry)
            if key is not None:
                if len(key) != 32:
                    raise SopsError("the data key is not 32 bytes")
                return key
    kinds = ", ".join(sorted(set(tried))) or "none"
    raise KeyError_(f"no master key of the document could be decrypted (master keys: {kinds})")


# -- decryption ----------------------------------------------------------------------


def _b64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise SopsError("an encrypted value is not valid base64") from None


def decrypt_value(value: str, key: bytes, aad: str) -> Any:
    if value == "":
        return ""
    match = _ENC.match(value)
    if match is None:
        raise SopsError("a value that should be encrypted is not in sops' ENC[...] format")
    data, iv, tag, kind = match.groups()
    try:
        plain = AESGCM(key).decrypt(_b64(iv), _b64(data) + _b64(tag), aad.encode())
    except (InvalidTag, ValueError):
        raise SopsError("a value failed to decrypt (tampered, or moved to another key)"
                        ) from None
    text = plain.decode("utf-8", "surrogateescape")
    try:
        if kind == "str":
            return text
        if kind == "int":
            return int(text)
        if kind == "float":
            return float(text)
        if kind == "bytes":
            return plain
        if kind == "bool":
            return _parse_bool(text)
        if kind == "time":
            return GoTime(text, text)  # time.MarshalText: RFC 3339 with nanoseconds
        if kind == "comment":
            return Comment(text)
    except ValueError:
        raise SopsError(f"an encrypted value of type {kind} does not parse") from None
    raise SopsError(f"unknown encrypted value type {kind!r}")


def _parse_bool(text: str) -> bool:
    if text in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if text in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise ValueError(text)


def to_bytes(value: Any) -> bytes:
    """sops.ToBytes: what of a leaf the MAC covers."""
    if isinstance(value, bool):
        return b"True" if value else b"False"
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    if isinstance(value, int):
        return str(value).encode()
    if isinstance(value, float):
        return format_float(value).encode()
    if isinstance(value, bytes):
        return value
    raise SopsError(f"cannot authenticate a value of type {type(value).__name__}")


def format_float(value: float) -> str:
    """strconv.FormatFloat(v, 'f', -1, 64)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return format(Decimal(repr(value)).normalize(), "f")


_PERL = {"d": "0-9", "w": "0-9A-Za-z_", "s": "\\t\\n\\f\\r "}
_POSIX = {
    "alnum": "0-9A-Za-z", "alpha": "A-Za-z", "ascii": "\\x00-\\x7f", "blank": "\\t ",
    "cntrl": "\\x00-\\x1f\\x7f", "digit": "0-9", "graph": "!-~", "lower": "a-z",
    "print": " -~", "punct": "!-/:-@\\[-`{-~", "space": "\\t\\n\\v\\f\\r ", "upper": "A-Z",
    "word": "0-9A-Za-z_", "xdigit": "0-9A-Fa-f"}
_WORD = "[0-9A-Za-z_]"
_BOUNDARY = f"(?:(?<={_WORD})(?!{_WORD})|(?<!{_WORD})(?={_WORD}))"
_NOT_BOUNDARY = f"(?:(?<={_WORD})(?={_WORD})|(?<!{_WORD})(?!{_WORD}))"


def go_regexp(source: str) -> re.Pattern[str]:
    r"""A Go (RE2) regular expression as Python's `re` reads it, for the key regexes
    (sops matches them with regexp.Match): Go's `\d`, `\w`, `\s`, `\b` and `[[:name:]]`
    are ASCII-only (Python's `\d` matches any Unicode digit, `\w` any letter, and it
    reads `[[:digit:]]` as a set of characters), `\z` is Python's `\Z`, `\Q...\E` quotes
    and `\x{...}` names a code point. Raises re.error or ValueError for what Python
    cannot express."""
    out: list[str] = []
    flags = 0
    i, n = 0, len(source)
    in_class = class_start = False
    while i < n:
        c = source[i]
        if c == "\\" and i + 1 < n:
            e = source[i + 1]
            if e in "dws":
                out.append(_PERL[e] if in_class else f"[{_PERL[e]}]")
            elif e in "DWS":
                if in_class:
                    out.append(c + e)  # a negated class inside a class: ASCII mode
                    flags |= re.ASCII
                else:
                    out.append(f"[^{_PERL[e.lower()]}]")
            elif e in "bB" and not in_class:
                out.append(_BOUNDARY if e == "b" else _NOT_BOUNDARY)
            elif e == "z" and not in_class:
                out.append(r"\Z")
            elif e == "Q":
                end = source.find("\\E", i + 2)
                stop = n if end < 0 else end
                out.append(re.escape(source[i + 2:stop]))
                i = n if end < 0 else end + 2
                class_start = False
                continue
            elif e == "x" and source[i + 2:i + 3] == "{":
                end = source.find("}", i + 3)
                if end < 0:
                    raise ValueError("unterminated \\x{")
                out.append(f"\\U{int(source[i + 3:end], 16):08x}")
                i = end + 1
                class_start = False
                continue
            else:
                out.append(c + e)
            i += 2
            class_start = False
            continue
        if in_class:
            if c == "[" and source.startswith("[:", i):
                end = source.find(":]", i + 2)
                name = source[i + 2:end] if end > 0 else ""
                if name in _POSIX:
                    out.append(_POSIX[name])
                    i = end + 2
                    class_start = False
                    continue
                if name.startswith("^") and name[1:] in _POSIX:
                    raise ValueError("negated POSIX class")
            if c == "]" and not class_start:
                in_class = False
                out.append(c)
            else:
                out.append("\\[" if c == "[" else c)
            class_start = False
            i += 1
            continue
        out.append(c)
        i += 1
        if c == "[":
            in_class = class_start = True
            if source[i:i + 1] == "^":
                out.append("^")
                i += 1
    return re.compile("".join(out), flags)


def decrypt(parsed: Parsed, key: bytes) -> dict[str, Any]:
    """Decrypt every value and verify the MAC; answers the plaintext tree."""
    meta = parsed.metadata
    if meta.comment_regexes:
        raise SopsError("unencrypted_comment_regex/encrypted_comment_regex are not supported")
    digest = hashlib.sha512()
    if meta.mac_only_encrypted:
        digest.update(_MAC_ONLY_ENCRYPTED_INIT)
    patterns = {}
    for name in ("unencrypted_regex", "encrypted_regex"):
        source = getattr(meta, name)
        if source:
            try:
                patterns[name] = go_regexp(source)
            except (re.error, ValueError):
                raise SopsError(f"sops.{name} is not a regular expression this provider "
                                "understands") from None

    def encrypted(path: list[str]) -> bool:
        result = True
        if meta.unencrypted_suffix and any(p.endswith(meta.unencrypted_suffix) for p in path):
            result = False
        if meta.encrypted_suffix:
            result = any(p.endswith(meta.encrypted_suffix) for p in path)
        if "unencrypted_regex" in patterns and any(
                patterns["unencrypted_regex"].search(p) for p in path):
            result = False
        if "encrypted_regex" in patterns:
            result = any(patterns["encrypted_regex"].search(p) for p in path)
        return result

    def leaf(value: Any, path: list[str]) -> Any:
        is_comment = isinstance(value, Comment)
        secret = encrypted(path)
        if secret:
            aad = ":".join(path) + ":"
            if is_comment:
                try:
                    plain = decrypt_value(value.value, key, aad)
                except SopsError:
                    plain = value  # a comment written before sops encrypted comments
                if not isinstance(plain, Comment):
                    plain = Comment(str(plain))
                value = plain
            elif isinstance(value, str):
                value = decrypt_value(value, key, aad)
            else:
                raise SopsError("a value that should be encrypted is not a string")
        if (not meta.mac_only_encrypted or secret) and not is_comment:
            digest.update(to_bytes(value))
        return value

    def walk(value: Any, path: list[str]) -> Any:
        if isinstance(value, dict):
            out: dict[Any, Any] = {}
            for k, v in value.items():
                if isinstance(k, Comment):
                    plain = leaf(Comment(k.value), path)
                    out[_CommentKey(plain.value, getattr(k, "line", 0))] = None
                else:
                    out[k] = walk(v, [*path, k])
            return out
        if isinstance(value, list):
            return [walk(v, path) for v in value]
        if value is None:
            return None
        return leaf(value, path)

    plain: dict[str, Any] = walk(parsed.tree, [])
    computed = digest.hexdigest().upper()
    try:
        stored = decrypt_value(meta.mac, key, meta.last_modified)
    except SopsError:
        raise SopsError("MAC mismatch: the MAC does not decrypt (tampered metadata)") from None
    if not isinstance(stored, str) or not hmac.compare_digest(
            stored.encode("utf-8", "surrogateescape"), computed.encode()):
        raise SopsError("MAC mismatch: the document was tampered with or reordered")
    return plain


# -- output --------------------------------------------------------------------------


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
                shown = value.replace("\n", "\\n") if isinstance(value, str) else \
                    _scalar_text(value)
                lines.append(f"{key}={shown}\n")
        return "".join(lines).encode("utf-8", "surrogateescape")
    if fmt == "ini":
        return _ini(tree).encode("utf-8", "surrogateescape")
    text = yaml.dump(_yaml_data(tree), Dumper=_Dumper, sort_keys=False, allow_unicode=True,
                     default_flow_style=False, indent=4, width=1 << 30)
    return text.encode()


class _Dumper(yaml.SafeDumper):
    """Scalars as yaml.v3 writes them for sops, so that any YAML reader (1.1 or 1.2)
    reads the same data as from `sops --decrypt`: floats in Go's shortest form (`1e-07`,
    `1000`, `.inf`), times as plain timestamps, multi-line strings as literal blocks, and
    a string quoted whenever PyYAML's or yaml.v3's resolver would read it as another
    type (`yes`, `1e3`, `0o17`); indented by 4, sequences too, lines never folded."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


_YAML11_BOOLS = frozenset(_YAML11_TRUE | {"n", "N", "no", "No", "NO", "off", "Off", "OFF"})
_BASE60 = re.compile(r"[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?")


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = None  # plain where the emitter can, as yaml.v3's stringv
    if "\n" in data:
        style = "|"  # the emitter falls back to quotes where a block cannot hold it
    elif (data in _YAML11_BOOLS or _BASE60.fullmatch(data)
          or yaml_v3.resolve("", data)[0] != "!!str"
          or any(ord(ch) > 0xFFFF for ch in data)):  # yaml.v3 escapes these: \U0001F511
        style = '"'
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


def _represent_float(dumper: yaml.SafeDumper, data: float) -> yaml.ScalarNode:
    shown = go_format_g(data)  # yaml.v3 encode.go: FormatFloat(f, 'g', -1, 64)
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
        text = go_format_g(value).replace("e", "E")  # FormatFloat(v, 'G', -1, 64)
        if "." not in text and "E" not in text and math.isfinite(value):
            text = f"{value:.1f}"  # FormatFloat(v, 'f', 1, 64): not to read as an int
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
