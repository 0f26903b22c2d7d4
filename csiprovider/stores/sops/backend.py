"""The sops backend: decrypts a SOPS document with the pod's own age identities.

Nothing is read from a store: the document is in the SPC and the key material comes
with the Mount request, so the grant's scope is a hash of that key material (pods with
other keys never share a decryption) and no read is kept (`shares_reads = False`)."""

from __future__ import annotations

import hashlib
from collections.abc import Hashable
from typing import Any

from csiprovider.errors import InvalidArgument, PermissionDenied
from csiprovider.model import Document, MountObject, Rendered
from csiprovider.stores import Grant
from csiprovider.stores.sops import document, keys
from csiprovider.stores.sops.source import SopsSource


class SopsBackend:
    shares_reads = False

    def quick(self, obj: MountObject) -> bool:
        return False  # X25519 and a document walk: a thread

    def principal(self, obj: MountObject) -> Hashable:
        return ("sops", _fingerprint(_source(obj)))

    def grant(self, obj: MountObject) -> Grant:
        return Grant(scope=self.principal(obj))

    def authorize(self, obj: MountObject, deadline: float) -> Grant:
        return self.grant(obj)

    def fetch(self, obj: MountObject, grant: Grant, deadline: float) -> bytes | Document:
        source = _source(obj)
        try:
            parsed = document.parse(source.document, source.format)
        except document.SopsError as exc:
            raise InvalidArgument(f"{obj.label}: invalid sops document: {exc}") from None

        def unwrap(kind: str, entry: dict[str, Any]) -> bytes | None:
            return keys.unwrap_age(entry, source.identity) if kind == "age" else None

        try:
            key = document.data_key(parsed.metadata, unwrap)
        except document.KeyError_ as exc:
            hint = (f"the pod's {keys.AGE_SECRET} (nodePublishSecretRef) holds no identity "
                    "of the document's age recipients" if source.identity else
                    f"the pod brings no age identity: put the age key under "
                    f"{keys.AGE_SECRET} in the SPC volume's nodePublishSecretRef")
            raise PermissionDenied(f"{obj.label}: cannot decrypt the sops data key: {exc}; "
                                   f"{hint}") from None
        except document.SopsError as exc:
            raise InvalidArgument(f"{obj.label}: {exc}") from None
        try:
            tree = document.decrypt(parsed, key)
        except document.SopsError as exc:
            raise InvalidArgument(f"{obj.label}: sops document refused: {exc}") from None
        if obj.extraction.selects and source.format != "binary":
            return Document(document.plain_data(tree))
        try:
            return document.emit(source.format, tree)
        except document.SopsError as exc:
            raise InvalidArgument(f"{obj.label}: {exc}") from None

    def render(self, obj: MountObject, fetched: bytes | Document) -> Rendered:
        return fetched

    def object_version(self, obj: MountObject, fetched: Any) -> str | None:
        return None  # the keyed hash of the content


def _source(obj: MountObject) -> SopsSource:
    source = obj.source
    assert isinstance(source, SopsSource)
    return source


def _fingerprint(source: SopsSource) -> str:
    return hashlib.sha256("\n".join(source.identity).encode()).hexdigest()
