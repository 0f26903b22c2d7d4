"""File paths inside a volume, checked as the driver checks them before it writes.

Every dialect validates its file names when it parses an SPC, so a bad name is refused
with INVALID_ARGUMENT naming the object before anything is fetched; the writer checks
again, as the driver would, before anything touches the disk.
"""

from __future__ import annotations

import os

_MAX_PATH_BYTES = 4096
_MAX_NAME_BYTES = 255


class PayloadError(ValueError):
    """A payload the driver would refuse. The message names the path, never the contents."""


def validate_path(path: str) -> None:
    """Raise PayloadError unless `path` is a file path the driver accepts inside a volume.

    The rules: not empty; relative; at most 4096 bytes; no `..` element; no element longer
    than 255 bytes; a first element not starting with `..` (reserved for the writer); and
    already in clean form (no empty or `.` element, so no `//`, `./` or trailing `/`).
    Lengths count UTF-8 bytes, as the kernel and the driver do.
    """
    if not path:
        raise PayloadError("invalid path: must not be empty")
    if "\0" in path:
        raise PayloadError(f"invalid path: must not contain a NUL character: {path!r}")
    if path.startswith("/"):
        raise PayloadError(f"invalid path: must be relative path: {path}")
    try:
        encoded = os.fsencode(path)
    except UnicodeEncodeError:
        raise PayloadError(f"invalid path: not representable as a file name: {path!r}") from None
    if len(encoded) > _MAX_PATH_BYTES:
        raise PayloadError(
            f"invalid path: must be less than or equal to {_MAX_PATH_BYTES} bytes: {path[:64]}..."
        )
    elements = path.split("/")
    for element in elements:
        if element == "..":
            raise PayloadError(f"invalid path: must not contain '..': {path}")
        if len(os.fsencode(element)) > _MAX_NAME_BYTES:
            raise PayloadError(
                f"invalid path: each name must be less than or equal to {_MAX_NAME_BYTES} "
                f"bytes: {path[:64]}..."
            )
    if elements[0].startswith(".."):
        raise PayloadError(f"invalid path: must not start with '..': {path}")
    if any(element in ("", ".") for element in elements):
        raise PayloadError(
            f"invalid path: must be a clean path (no empty or '.' element, no trailing '/'): {path}"
        )
