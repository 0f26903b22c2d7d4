"""What a Vault object's file contains, from the response it was fetched with.

- `secretKey`: one top-level key of `data` (descending into KV v2's `data.data`); a
  string is written raw, any other value as compact JSON (vault-csi-provider's rules).
- `jmesPath` (ours): any value inside the data, e.g. `db.password` or `hosts[0]`.
- `secretFormat: data` (ours): the data itself as JSON, not the response envelope.
- `secretFormat: files` (ours): one file per top-level key, under the object's name.
- none of these: the whole response envelope, byte for byte as vault-csi-provider writes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jmespath
import jmespath.exceptions

from csiprovider.compat.go import encoding_json as gojson
from csiprovider.errors import InvalidArgument, NotFound
from csiprovider.model import MountObject
from csiprovider.stores.vault.envelope import vault_envelope


def render(obj: MountObject, response: Mapping[str, Any]) -> bytes | dict[str, bytes]:
    opts = obj.options
    path = opts["secret_path"]
    if opts["secret_key"]:
        data = _data(response, path)
        key = opts["secret_key"]
        if key not in data:
            raise NotFound(
                f'couldn\'t read secret "{obj.object_name}": {{{path}}}: '
                f'{{key "{key}" does not exist at the secret path}}'
            )
        return _value(data[key])
    if opts["jmes_path"]:
        data = _data(response, path)
        try:
            found = jmespath.search(opts["jmes_path"], data)
        except jmespath.exceptions.JMESPathError as exc:
            raise InvalidArgument(
                f"{obj.label}: invalid jmesPath {opts['jmes_path']!r}: {exc}"
            ) from None
        if found is None:
            raise NotFound(
                f"{obj.label}: jmesPath {opts['jmes_path']!r} matches nothing in {path}"
            )
        return _value(found)
    if opts["whole_secret"] == "data":
        return gojson.dumps(_data(response, path))
    if opts["whole_secret"] == "files":
        return {str(k): _value(v) for k, v in _data(response, path).items()}
    return vault_envelope(response)


def _data(response: Mapping[str, Any], path: str) -> Mapping[str, Any]:
    """`data`, or KV v2's nested `data.data` when present."""
    data = response.get("data")
    if not isinstance(data, Mapping):
        warnings = response.get("warnings") or []
        raise NotFound(f'empty response from "{path}", warnings: {list(warnings)}')
    inner = data.get("data")
    return inner if isinstance(inner, Mapping) else data


def _value(value: Any) -> bytes:
    if isinstance(value, str) and not isinstance(value, gojson.Number):
        return value.encode()
    return gojson.dumps(value)
