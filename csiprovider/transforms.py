"""Transforms applied to fetched bytes before they become a file."""

from __future__ import annotations

import base64
import binascii

from csiprovider.errors import InvalidArgument
from csiprovider.model import Encoding


def decode(data: bytes, encoding: Encoding, label: str) -> bytes:
    """Decode stored bytes; the error names the object, never the content."""
    if encoding is Encoding.UTF8:
        return data
    try:
        if encoding is Encoding.BASE64:
            return base64.b64decode(b"".join(data.split()), validate=True)
        return bytes.fromhex(data.decode("ascii").strip())
    except (binascii.Error, ValueError):
        raise InvalidArgument(
            f"{label}: content is not valid {encoding.value}; fix the stored value or set "
            'encoding to the one it is stored in ("utf-8", "base64" or "hex")'
        ) from None
