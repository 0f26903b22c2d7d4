"""Transforms applied to fetched bytes before they become a file."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

import jmespath
import jmespath.exceptions

from csiprovider.errors import InvalidArgument, NotFound
from csiprovider.model import Encoding, MountObject


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


def extract(obj: MountObject, content: bytes) -> bytes | dict[str, bytes]:
    """The native dialect's uniform extraction, the same for every backend: `jmesPath`
    selects a value of a JSON document (strings raw, anything else as JSON) and
    `expand: keys` turns a JSON object into one file per top-level key."""
    path = obj.options.get("extract_jmes", "")
    expand = obj.options.get("expand", "")
    if not path and not expand:
        return content
    try:
        document: Any = json.loads(content)
    except ValueError:
        raise InvalidArgument(
            f"{obj.label}: the value is not JSON, so jmesPath/expand cannot apply; remove "
            "them or store JSON") from None
    if path:
        try:
            document = jmespath.search(path, document)
        except jmespath.exceptions.JMESPathError as exc:
            raise InvalidArgument(f"{obj.label}: invalid jmesPath {path!r}: {exc}") from None
        if document is None:
            raise NotFound(f"{obj.label}: jmesPath {path!r} matches nothing")
    if expand:
        if not isinstance(document, dict):
            raise InvalidArgument(f"{obj.label}: expand: keys needs a JSON object, got "
                                  f"{type(document).__name__}")
        return {str(k): _json_value(v) for k, v in document.items()}
    return _json_value(document)


def _json_value(value: Any) -> bytes:
    if isinstance(value, str):
        return value.encode()
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
