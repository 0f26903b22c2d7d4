"""What an AWS fetch brings back, before a backend's `render` picks an object's value."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class SecretValue:
    """GetSecretValue: SecretString or SecretBinary, and the version it is."""

    version_id: str
    string: str | None = field(repr=False)
    binary: bytes | None = field(repr=False)
    region: str


@dataclass(frozen=True)
class ParameterValues:
    """GetParameters for a batch: each selector's parameter (None: not found), by slot."""

    found: Mapping[int, Mapping[str, Any] | None] = field(repr=False)
    region: str


@dataclass(frozen=True)
class ParameterTree:
    """GetParametersByPath: every value under the path, by name relative to it."""

    items: Mapping[str, bytes] = field(repr=False)


@dataclass(frozen=True)
class Plaintext:
    """KMS Decrypt's plaintext."""

    data: bytes = field(repr=False)


AwsValue = SecretValue | ParameterValues | ParameterTree | Plaintext
