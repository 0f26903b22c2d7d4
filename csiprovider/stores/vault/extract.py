"""What a Vault object's fetch becomes before the extraction step (csiprovider.extract).

- no `secretKey`, `jmesPath` or `secretFormat`: the whole response envelope, byte for
  byte as vault-csi-provider writes it (envelope.py).
- otherwise the secret's data as a `Document` (KV v2's `data.data` when present), from
  which the extraction takes `secretKey` (a string raw, anything else as Go's JSON:
  vault-csi-provider's rule), `jmesPath` (ours), or, for `secretFormat: files`, one file
  per top-level key (ours); `secretFormat: data` writes the data itself as JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from csiprovider.errors import NotFound
from csiprovider.model import Document, MountObject, Rendered
from csiprovider.stores.vault.envelope import vault_envelope


def render(obj: MountObject, response: Mapping[str, Any]) -> Rendered:
    if obj.extraction.reply:
        return vault_envelope(response)
    return Document(_data(response, obj.extraction.subject))


def _data(response: Mapping[str, Any], path: str) -> Mapping[str, Any]:
    """`data`, or KV v2's nested `data.data` when present."""
    data = response.get("data")
    if not isinstance(data, Mapping):
        warnings = response.get("warnings") or []
        raise NotFound(f'empty response from "{path}", warnings: {list(warnings)}')
    inner = data.get("data")
    return inner if isinstance(inner, Mapping) else data
