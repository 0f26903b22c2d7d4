"""An AWS object's value out of what was fetched, before the extraction step.

As ASCP: SecretString as text, SecretBinary as raw bytes, an SSM parameter's Value. The
extraction step (csiprovider.extract) then applies `jmesPath` with ASCP's wording: a
string result as is; better than ASCP, a number, boolean or object result is written as
JSON instead of refused (ASCP #250), `encoding: base64` decodes a value (ASCP #659), and
each failure says what it is (ASCP reports a bad JMESPath as a permissions problem, #552).
"""

from __future__ import annotations

from csiprovider.errors import NotFound
from csiprovider.model import Listing, MountObject, Rendered
from csiprovider.stores.aws.values import AwsValue, ParameterTree, ParameterValues, SecretValue


def render(obj: MountObject, fetched: AwsValue) -> Rendered:
    if isinstance(fetched, ParameterTree):
        return Listing(dict(fetched.items))
    if isinstance(fetched, ParameterValues):
        found = fetched.found.get(obj.part)
        if found is None:
            raise NotFound(
                f"{obj.label}: parameter {obj.extraction.subject!r} not found in {fetched.region}"
            )
        return str(found["Value"]).encode()
    if isinstance(fetched, SecretValue):
        if fetched.string is not None:
            return fetched.string.encode()
        return bytes(fetched.binary) if fetched.binary is not None else b""
    return fetched.data
