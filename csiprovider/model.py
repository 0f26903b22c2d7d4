"""Typed objects a dialect produces and the resolver consumes.

A dialect turns SPC parameters into `MountObject`s (fetched from a store) and
`TemplateObject`s (rendered from the others once they are fetched). A `MountObject` names
a hashable `source` (what to fetch, and as whom) so identical fetches within a Mount run
once, and an `Extraction` (what of the fetched value becomes its file). A backend renders
what it fetched as `bytes`, a parsed JSON `Document` or a `Listing` of either; the one
extraction step (csiprovider.extract) takes it from there, the same for every store.
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Encoding(StrEnum):
    """How the fetched bytes are stored; they are decoded before being written."""

    UTF8 = "utf-8"
    BASE64 = "base64"
    HEX = "hex"


class Wording(StrEnum):
    """Whose error messages an object's extraction speaks: scripts written for
    vault-csi-provider and ASCP look for their words."""

    NATIVE = "native"
    VAULT = "vault"
    AWS = "aws"


@dataclass(frozen=True)
class Extraction:
    """What of a fetched value becomes the object's file(s), in this order: `key` (one
    top-level key of a JSON object), then `jmes_path`, then `expand` (one file per
    top-level key). Nothing set: the value as fetched."""

    key: str = ""
    jmes_path: str = ""
    expand: bool = False
    wording: Wording = Wording.NATIVE
    subject: str = ""  # what messages name: the Vault secret path, the AWS secret name
    reply: bool = False  # the store's whole reply, not its value (a Vault envelope)

    @property
    def selects(self) -> bool:
        return bool(self.key or self.jmes_path or self.expand)


@dataclass(frozen=True)
class Document:
    """A fetched value already decoded from JSON (a Vault secret's data), with numbers
    kept as written (compat.go.encoding_json.Number)."""

    value: Any


@dataclass(frozen=True)
class Listing:
    """Everything under a prefix, by path relative to it: the object becomes a
    directory with one file per item."""

    items: Mapping[str, bytes | Document]


Rendered = bytes | Document | Listing
"""What a backend makes of a fetch, before extraction."""


@dataclass(frozen=True)
class MountObject:
    """One object of a SecretProviderClass, as the resolver needs it."""

    index: int
    backend: str
    object_name: str
    file_name: str
    mode: int
    encoding: Encoding
    source: Hashable
    spec_json: str = field(repr=False)
    extraction: Extraction = Extraction()
    optional: bool = False  # a missing or unreadable object does not fail the Mount
    write: bool = True  # False: only an input of the SPC's templates
    part: int = 0  # which value of a fetch that brings several (a slot of an SSM batch)
    store_version: bool = False  # version: the store's own (ASCP's VersionId), not an HMAC

    @property
    def label(self) -> str:
        """How error messages name this object."""
        return f"objects[{self.index}] (objectName {self.object_name!r})"


@dataclass(frozen=True)
class TemplateObject:
    """A file rendered from the fetched objects of its SPC (csiprovider.native.templates),
    after every fetch of the Mount is done."""

    index: int
    object_name: str
    file_name: str
    mode: int
    template: str = field(repr=False)
    spec_json: str = field(repr=False)
    optional: bool = False

    @property
    def label(self) -> str:
        return f"objects[{self.index}] (objectName {self.object_name!r})"


SpcObject = MountObject | TemplateObject
"""One entry of an SPC's objects, as a dialect returns it."""


def canonical_json(spec: Mapping[str, Any]) -> str:
    """Stable JSON of an object's config: the same config always hashes the same."""
    return json.dumps(spec, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class OutputFile:
    """A file of the volume: path relative to the target, mode and contents."""

    path: str
    mode: int
    contents: bytes = field(repr=False)


@dataclass(frozen=True)
class MountResult:
    """Everything a Mount produces, ready for the response or the writer."""

    files: tuple[OutputFile, ...]
    versions: tuple[tuple[str, str], ...]

    @property
    def size(self) -> int:
        return sum(len(f.contents) for f in self.files)
