"""The one extraction step: what of a fetched value becomes an object's file(s).

Every store hands over `bytes`, a parsed JSON `Document` or a `Listing` of either
(model.Rendered); every dialect describes what to take with an `Extraction`. The rule is
the same for all of them:

1. Nothing to select: bytes are the file; a Document is written whole as JSON.
2. `key`: one top-level key of the JSON object (vault-csi-provider's `secretKey`).
3. `jmes_path`, then `expand`, work on JSON: a string value (a file, an AWS
   SecretString, a Vault key holding a JSON string) is decoded as JSON first, as Go's
   encoding/json decodes it (numbers kept as written, invalid UTF-8 → U+FFFD).
4. The result: a string is written as its UTF-8 bytes, anything else as the JSON Go's
   `json.Marshal` writes (sorted keys, `<>&` escaped, numbers as written). That is what
   vault-csi-provider writes for a non-string `secretKey`, so Vault objects stay byte for
   byte compatible; ASCP writes strings only, and every dialect follows the same rule
   for the rest (docs/native-dialect.md). A JMESPath result is computed, so its numbers
   are Go's float64/int64 forms.
5. `decode`: the object's encoding (base64, hex) turns the result into the file's bytes.

A Listing is a directory: steps 2 to 4 apply to each item. Error messages follow the
object's `Wording`, so scripts written for vault-csi-provider and ASCP keep matching.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from csiprovider.errors import InvalidArgument, NotFound
from csiprovider.model import Document, Encoding, Listing, MountObject, Rendered, Wording

__all__ = ["decode", "extract"]

# jmespath and the Go JSON codec load with the first object that selects something: a
# daemon serving only whole files never needs them (its idle memory is a target).


def extract(obj: MountObject, rendered: Rendered) -> bytes | dict[str, bytes]:
    """One file's bytes, or {relative name: bytes} for a directory (before `decode`)."""
    if isinstance(rendered, Listing):
        out: dict[str, bytes] = {}
        for name, item in rendered.items.items():
            value = _one(obj, item)
            if isinstance(value, bytes):
                out[name] = value
            else:
                out.update({f"{name}/{k}": v for k, v in value.items()})
        return out
    return _one(obj, rendered)


def decode(data: bytes, obj: MountObject) -> bytes:
    """Decode stored bytes with the object's encoding; the error names the object, never
    the content."""
    encoding = obj.encoding
    if encoding is Encoding.UTF8:
        return data
    try:
        if encoding is Encoding.BASE64:
            return base64.b64decode(b"".join(data.split()), validate=True)
        return bytes.fromhex(data.decode("ascii").strip())
    except (binascii.Error, ValueError):
        if obj.extraction.wording is Wording.AWS:
            raise InvalidArgument(
                f"{obj.label}: value is not valid base64; remove "
                "encoding: base64 or store the value base64-encoded"
            ) from None
        raise InvalidArgument(
            f"{obj.label}: content is not valid {encoding.value}; fix the stored value or set "
            'encoding to the one it is stored in ("utf-8", "base64" or "hex")'
        ) from None


def _one(obj: MountObject, value: bytes | Document) -> bytes | dict[str, bytes]:
    spec = obj.extraction
    if not spec.selects and isinstance(value, bytes):
        return value  # a whole file: nothing to load, nothing to do
    from csiprovider.compat.go import encoding_json as go_json

    if not spec.selects:
        assert isinstance(value, Document)
        return go_json.dumps(value.value)
    document: Any = value.value if isinstance(value, Document) else _json(obj, value)
    if spec.key:
        if not isinstance(document, Mapping) or spec.key not in document:
            raise NotFound(
                f'couldn\'t read secret "{obj.object_name}": {{{spec.subject}}}: '
                f'{{key "{spec.key}" does not exist at the secret path}}'
            )
        document = document[spec.key]
        if not (spec.jmes_path or spec.expand):
            return _bytes(obj, document)
        if _is_string(document):  # a key holding a JSON document
            document = _json(obj, document.encode())
    if spec.jmes_path:
        document = _search(obj, document)
    if spec.expand:
        if not isinstance(document, Mapping):
            raise InvalidArgument(
                f"{obj.label}: expand: keys needs a JSON object, got {_kind(document)}"
            )
        return {str(k): _bytes(obj, v) for k, v in document.items()}
    return _bytes(obj, document)


def _json(obj: MountObject, content: bytes) -> Any:
    from csiprovider.compat.go import encoding_json as go_json

    try:
        return go_json.loads(content)
    except (ValueError, RecursionError):
        spec = obj.extraction
        if spec.wording is Wording.AWS:
            raise InvalidArgument(
                f"Invalid JSON used with jmesPath in secret: {spec.subject}. ({obj.label} "
                f"selects {spec.jmes_path!r} from a value that is not JSON)"
            ) from None
        raise InvalidArgument(
            f"{obj.label}: the value is not JSON, so jmesPath/expand cannot apply; remove "
            "them or store JSON"
        ) from None


def _search(obj: MountObject, document: Any) -> Any:
    import jmespath
    import jmespath.exceptions

    spec = obj.extraction
    path = spec.jmes_path
    try:
        found = jmespath.search(path, _numbers(document))
    except jmespath.exceptions.JMESPathError as exc:
        if spec.wording is Wording.AWS:
            raise InvalidArgument(f"Invalid JMES Path: {path}. ({obj.label}: {exc})") from None
        raise InvalidArgument(f"{obj.label}: invalid jmesPath {path!r}: {exc}") from None
    if found is None:
        if spec.wording is Wording.AWS:
            raise NotFound(
                f"JMES Path - {path} for object alias - {obj.file_name} does not "
                "point to a valid object."
            )
        where = f" in {spec.subject}" if spec.wording is Wording.VAULT else ""
        raise NotFound(f"{obj.label}: jmesPath {path!r} matches nothing{where}")
    return found


def _numbers(value: Any) -> Any:
    """Numbers as JMESPath compares and computes them (a Number is text until here)."""
    from csiprovider.compat.go import encoding_json as go_json

    if isinstance(value, go_json.Number):
        text = str.__str__(value)
        return int(text) if text.lstrip("-").isdigit() else float(text)
    if isinstance(value, Mapping):
        return {k: _numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_numbers(v) for v in value]
    return value


def _is_string(value: Any) -> bool:
    from csiprovider.compat.go import encoding_json as go_json

    return isinstance(value, str) and not isinstance(value, go_json.Number)


def _bytes(obj: MountObject, value: Any) -> bytes:
    from csiprovider.compat.go import encoding_json as go_json

    if isinstance(value, str) and not isinstance(value, go_json.Number):
        return value.encode()
    try:
        return go_json.dumps(value)
    except ValueError:  # a computed number out of float64's range
        raise InvalidArgument(
            f"{obj.label}: the selected value cannot be written as JSON (a number out of range)"
        ) from None


def _kind(value: Any) -> str:
    from csiprovider.compat.go import encoding_json as go_json

    if isinstance(value, go_json.Number):
        return "number"
    return "nothing" if value is None else type(value).__name__
