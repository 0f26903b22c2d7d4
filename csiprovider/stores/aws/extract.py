"""File contents of AWS objects: the value itself, or a JMESPath selection of it.

As ASCP: SecretString as text, SecretBinary as raw bytes, a string JMESPath result as
is. Better: a number, boolean or object result is written as JSON instead of refused
(ASCP #250), `encoding: base64` decodes a value (ASCP #659), and each failure says what
it is (ASCP reports a bad JMESPath as a permissions problem, #552).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

import jmespath
import jmespath.exceptions

from csiprovider.errors import InvalidArgument, NotFound
from csiprovider.model import MountObject


def raw_value(obj: MountObject, fetched: Mapping[str, Any]) -> bytes:
    if "parameters" in fetched:
        found = fetched["parameters"].get(obj.options["selector_index"])
        if found is None:
            raise NotFound(f"{obj.label}: parameter {obj.options['name']!r} not found in "
                           f"{fetched.get('region', '')}")
        return str(found["Value"]).encode()
    if fetched.get("SecretString") is not None:
        return str(fetched["SecretString"]).encode()
    binary = fetched.get("SecretBinary")
    return bytes(binary) if binary is not None else b""


def render_value(obj: MountObject, fetched: Mapping[str, Any]) -> bytes:
    value = raw_value(obj, fetched)
    path = obj.options.get("jmes_path")
    if path:
        try:
            document = json.loads(value)
        except ValueError:
            raise InvalidArgument(
                f"Invalid JSON used with jmesPath in secret: {obj.options['name']}. "
                f"({obj.label} selects {path!r} from a value that is not JSON)") from None
        try:
            found = jmespath.search(path, document)
        except jmespath.exceptions.JMESPathError as exc:
            raise InvalidArgument(f"Invalid JMES Path: {path}. ({obj.label}: {exc})") from None
        if found is None:
            raise NotFound(f"JMES Path - {path} for object alias - {obj.file_name} does not "
                           "point to a valid object.")
        value = found.encode() if isinstance(found, str) else json.dumps(
            found, separators=(",", ":")).encode()
    if obj.options.get("decode") == "base64":
        try:
            value = base64.b64decode(b"".join(value.split()), validate=True)
        except (binascii.Error, ValueError):
            raise InvalidArgument(f"{obj.label}: value is not valid base64; remove "
                                  "encoding: base64 or store the value base64-encoded") from None
    return value
