r"""SOPS documents: the model shared by reading (`parse`), decrypting (`crypto`) and
writing (`emit`) a document as `sops --decrypt` does.

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

import re
from dataclasses import dataclass, field
from typing import Any

FORMATS = ("yaml", "json", "dotenv", "ini", "binary")
YAML11_TRUE = frozenset({"y", "Y", "yes", "Yes", "YES", "on", "On", "ON"})
"""What yaml.v3 reads as true into a bool field (its YAML 1.1 compatibility)."""


class SopsError(Exception):
    """The document is not a SOPS document we can decrypt; the message names no value."""


class KeyError_(SopsError):
    """No available identity unwraps the data key."""


@dataclass(frozen=True)
class Comment:
    """A comment line of the tree (dotenv): encrypted like a value, never in the MAC."""

    value: str


@dataclass(frozen=True)
class CommentKey(Comment):
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
