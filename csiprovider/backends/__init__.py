"""Backends: blocking fetchers, one per secret store, run in the resolver's thread pool."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from csiprovider.model import MountObject

Rendered = bytes | Mapping[str, bytes]
"""One file's content, or {relative name: content} for an object that expands to a
directory of files under its file name."""


class Backend(Protocol):
    """A secret store. Raises MountError subclasses, with messages naming the object."""

    def fetch(self, obj: MountObject, deadline: float) -> Any:
        """Fetch `obj.source` (blocking, called once per distinct source in a Mount)
        before `deadline` (time.monotonic())."""

    def render(self, obj: MountObject, fetched: Any) -> Rendered:
        """Turn what was fetched into this object's file content."""
