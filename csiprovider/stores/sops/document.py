"""SOPS documents: parse an encrypted document, decrypt its values with the data key,
verify its MAC and write it back out as `sops --decrypt` does.

The format, as SOPS 3 writes it (github.com/getsops/sops, read to learn):

* every encrypted leaf is `ENC[AES256_GCM,data:<b64>,iv:<b64>,tag:<b64>,type:<t>]`,
  AES-256-GCM under the 32-byte data key, additional data = the keys of its path joined
  as `k1:k2:` (list indices are not part of the path); an empty string stays empty;
* which leaves are encrypted: all, unless `unencrypted_suffix`, `encrypted_suffix`,
  `unencrypted_regex` or `encrypted_regex` (checked in that order, on every key of the
  path) say otherwise;
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
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import yaml
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from csiprovider.compat.go.encoding_json import _float as go_json_float
from csiprovider.compat.go.encoding_json import _string as go_json_string

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


class _Loader(yaml.SafeLoader):
    """YAML without timestamps (kept as strings) and with string keys checked later."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers
            if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


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
        try:
            docs = list(yaml.load_all(text, Loader=_Loader))
        except yaml.YAMLError:
            raise SopsError("document is not valid YAML") from None
        docs = [d for d in docs if d is not None]
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
    return Parsed(fmt, tree, _metadata(raw))


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
    tree: dict[str, Any] = {}
    section: dict[str, Any] | None = None
    sops: dict[str, str] = {}
    for number, raw_line in enumerate(text.splitlines(), 1):
        line = raw_line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            name = line[1:-1].strip()
            section = sops if name == "sops" else tree.setdefault(name, {})
            continue
        if section is None:
            section = tree.setdefault("DEFAULT", {})  # go-ini's section before any header
        key, eq, value = line.partition("=")
        if not eq:
            raise SopsError(f"ini line {number}: no '='")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'`":
            value = value[1:-1]
        elif value.startswith('"""') and value.endswith('"""'):
            value = value[3:-3]
        section[key.strip()] = value
    return tree, _unflatten({k: v.replace("\\n", "\n") for k, v in sops.items()})


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


def _metadata(raw: dict[str, Any]) -> Metadata:
    def text(key: str) -> str:
        value = raw.get(key)
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
    return Metadata(
        key_groups=groups, shamir_threshold=threshold, last_modified=text("lastmodified"),
        mac=mac, unencrypted_suffix=text("unencrypted_suffix"),
        encrypted_suffix=text("encrypted_suffix"),
        unencrypted_regex=text("unencrypted_regex"), encrypted_regex=text("encrypted_regex"),
        mac_only_encrypted=only is True or str(only).lower() in ("true", "1"),
        comment_regexes=bool(raw.get("unencrypted_comment_regex")
                             or raw.get("encrypted_comment_regex")),
        raw=raw)


# -- the data key ----------------------------------------------------------------------


def data_key(metadata: Metadata, unwrap: Callable[[str, dict[str, Any]], bytes | None]) -> bytes:
    """The data key: `unwrap(kind, entry)` tries one master key of a group (an `age`
    entry...) and answers its plaintext or None. One group only (no Shamir)."""
    if len(metadata.key_groups) != 1:
        raise SopsError(f"document uses {len(metadata.key_groups)} key groups (Shamir "
                        "secret sharing), which is not supported; use one key group")
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
            return text
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
    return format(Decimal(repr(value)).normalize(), "f")


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
                patterns[name] = re.compile(source)
            except re.error:
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
    text = yaml.safe_dump(plain_data(tree), sort_keys=False, allow_unicode=True,
                          default_flow_style=False)
    return text.encode()


def _ini(tree: dict[str, Any]) -> str:
    """go-ini's writer as sops uses it: `=` aligned per section, sections apart by a
    blank line, the DEFAULT section without a header."""
    blocks = []
    for name, section in tree.items():
        if isinstance(name, Comment) or not isinstance(section, dict):
            continue
        items = [(k, _ini_value(_scalar_text(v))) for k, v in section.items()
                 if not isinstance(k, Comment)]
        if name == "DEFAULT" and not items:
            continue
        width = max((len(k) for k, _ in items), default=0)
        lines = [] if name == "DEFAULT" else [f"[{name}]\n"]
        lines += [f"{k.ljust(width)} = {v}\n" for k, v in items]
        blocks.append("".join(lines))
    return "\n".join(blocks)


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
        return format_float(value)
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
