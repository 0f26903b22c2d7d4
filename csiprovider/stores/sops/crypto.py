"""The data key and the values: unwrap the data key with one of the document's master
keys, decrypt each value (AES-256-GCM, the tree path as additional data), verify the
MAC."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Callable
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from csiprovider.compat.go import strconv as go_strconv
from csiprovider.compat.go.yaml_v3 import GoTime
from csiprovider.stores.sops.document import (
    Comment,
    CommentKey,
    KeyError_,
    Metadata,
    Parsed,
    SopsError,
)

# Linear: no group can take another's `,` or `]` (with `.+` a crafted value backtracks
# for minutes while holding the GIL).
_ENC = re.compile(r"ENC\[AES256_GCM,data:([^,\]]*),iv:([^,\]]*),tag:([^,\]]*),type:([a-z]+)\]")
_MAC_ONLY_ENCRYPTED_INIT = bytes(
    [
        0x8A,
        0x3F,
        0xD2,
        0xAD,
        0x54,
        0xCE,
        0x66,
        0x52,
        0x7B,
        0x10,
        0x34,
        0xF3,
        0xD1,
        0x47,
        0xBE,
        0x0B,
        0x0B,
        0x97,
        0x5B,
        0x3B,
        0xF4,
        0x4F,
        0x72,
        0xC6,
        0xFD,
        0xAD,
        0xEC,
        0x81,
        0x76,
        0xF2,
        0x7D,
        0x69,
    ]
)

MAX_REGEX_CHARS = 1024  # a key regex; sops writes what the user typed
REGEX_MAX_MEM = 8 << 20  # RE2's default budget: a hostile regex costs milliseconds


def data_key(metadata: Metadata, unwrap: Callable[[str, dict[str, Any]], bytes | None]) -> bytes:
    """The data key: `unwrap(kind, entry)` tries one master key of a group (an `age`
    entry...) and answers its plaintext or None. One group only (no Shamir)."""
    groups = len(metadata.key_groups)
    if groups != 1:
        threshold = metadata.shamir_threshold or groups
        raise SopsError(
            f"document splits its data key across {groups} key groups (Shamir "
            f"secret sharing, shamir_threshold {threshold}), which this provider "
            "does not support: re-encrypt it with one key group (list the master "
            "keys directly in the .sops.yaml creation rule, not under key_groups, "
            "and run `sops updatekeys`)"
        )
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


def _b64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise SopsError("an encrypted value is not valid base64") from None


def decrypt_value(value: str, key: bytes, aad: str) -> Any:
    if value == "":
        return ""
    match = _ENC.match(value)  # anchored at the start only, as sops matches it
    if match is None:
        raise SopsError("a value that should be encrypted is not in sops' ENC[...] format")
    data, iv, tag, kind = match.groups()
    try:
        plain = AESGCM(key).decrypt(_b64(iv), _b64(data) + _b64(tag), aad.encode())
    except (InvalidTag, ValueError):
        raise SopsError("a value failed to decrypt (tampered, or moved to another key)") from None
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
        return go_strconv.format_float(value, fmt="f").encode()  # FormatFloat(v, 'f', -1, 64)
    if isinstance(value, bytes):
        return value
    raise SopsError(f"cannot authenticate a value of type {type(value).__name__}")


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
            if len(source) > MAX_REGEX_CHARS:
                raise SopsError(
                    f"sops.{name} is {len(source)} characters, more than {MAX_REGEX_CHARS}"
                )
            from csiprovider.compat.go import regexp as go_regexp  # RE2: with a regex

            try:  # Go's regexp, as sops matches keys: RE2, its memory bounded
                patterns[name] = go_regexp.compile(source, max_mem=REGEX_MAX_MEM)
            except go_regexp.RegexpError as exc:
                raise SopsError(f"sops.{name}: {exc}") from None

    def encrypted(path: list[str]) -> bool:
        result = True
        if meta.unencrypted_suffix and any(p.endswith(meta.unencrypted_suffix) for p in path):
            result = False
        if meta.encrypted_suffix:
            result = any(p.endswith(meta.encrypted_suffix) for p in path)
        if "unencrypted_regex" in patterns and any(
            patterns["unencrypted_regex"].search(p) for p in path
        ):
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
                    out[CommentKey(plain.value, getattr(k, "line", 0))] = None
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
        stored.encode("utf-8", "surrogateescape"), computed.encode()
    ):
        raise SopsError("MAC mismatch: the document was tampered with or reordered")
    return plain
