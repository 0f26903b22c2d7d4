"""What a file fetch reads: a path under the pod's namespace directory."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FileSource:
    """A file under `<file-root>/<namespace>/`: the namespace is the pod's identity."""

    namespace: str
    path: str
    listing: bool = False  # a directory: every file under it becomes a file of the object
    max_items: int = 100  # a listing holding more is refused
