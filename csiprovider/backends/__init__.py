"""Backends: blocking fetchers, one per secret store, run in the resolver's thread pool."""

from __future__ import annotations

from typing import Protocol

from csiprovider.model import MountObject


class Backend(Protocol):
    """Fetches the raw bytes of one object's source; raises MountError subclasses."""

    def fetch(self, obj: MountObject) -> bytes: ...
