"""Typed objects a dialect produces and the resolver consumes.

A dialect turns SPC parameters into `MountObject`s; each names a hashable `source`
(what to fetch, and as whom) so identical fetches within a Mount run once.
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


@dataclass(frozen=True)
class FileSource:
    """A file under `<file-root>/<namespace>/`: the namespace is the pod's identity."""

    namespace: str
    path: str
    listing: bool = False  # a directory: every file under it becomes a file of the object




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
    options: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    optional: bool = False  # a missing or unreadable object does not fail the Mount

    @property
    def label(self) -> str:
        """How error messages name this object."""
        return f"objects[{self.index}] (objectName {self.object_name!r})"


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
