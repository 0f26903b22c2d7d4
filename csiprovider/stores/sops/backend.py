"""The sops backend: decrypts a SOPS document with the pod's own identities.

The document comes from the SPC or from the pod's namespace directory of the file
backend. Its data key is unwrapped by one of its master keys, tried in this order:

1. `age` entries, with the pod's age identities (its nodePublishSecretRef): local, free;
2. `hc_vault` entries, by `<engine_path>/decrypt/<key_name>` with the pod's own Vault
   login, through the Vault backend (its retries, re-login on 403 and limits); the
   address is the SPC's Vault address, not the entry's (which is where the document was
   encrypted, often not how the cluster reaches Vault);
3. `kms` entries, by KMS Decrypt in the key ARN's region with the pod's own IRSA or Pod
   Identity credentials, through the AWS backend; an entry's `role` is assumed with them
   first, its `context` is the encryption context.

The first that answers wins. If none does, the pod is told every master key's refusal
(each in its store's words) and what it lacks for the others: PERMISSION_DENIED, or
UNAVAILABLE when a store could not be asked (the driver retries the Mount).

Nothing is shared between pods (`shares_reads = False`): every Mount unwraps the data
key again as the pod, so a pod whose Vault policy or IAM policy was revoked stops
getting the document at its next Mount. The store calls run in the sops fetch's thread,
within this backend's concurrency limit.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import re
import time
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

from csiprovider.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    MountError,
    PermissionDenied,
    Unavailable,
)
from csiprovider.limits import MAX_REPLY_BYTES, json_nested_deeper, json_skeleton, yaml_events
from csiprovider.model import Document, MountObject, Rendered
from csiprovider.stores import Backend, Grant, LazyBackend
from csiprovider.stores.sops import crypto, document, emit, keys, parse
from csiprovider.stores.sops.source import SopsSource

_ENTRY = 200  # characters of an entry's names quoted in an error
MAX_DOCUMENT_BYTES = MAX_REPLY_BYTES  # a document kept as a file; in the SPC, the SPC's bound
MAX_DEPTH = 64  # nested maps and lists
_VAULT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
MAX_REMOTE_KEYS = 4  # Vault and KMS master keys tried in one fetch
MAX_NODES = 100_000  # values, keys and collections: the decrypted tree stays a few MB


@dataclass(frozen=True)
class Decrypted:
    """A decrypted document, in both forms its objects may want, made in the fetch's
    thread (writing a large YAML document takes seconds: never on the event loop, never
    once per object): `output` as `sops --decrypt` writes it, `data` for the extraction
    step. Never logged."""

    output: bytes = field(repr=False)
    data: Any = field(repr=False)


class SopsBackend:
    shares_reads = False

    def __init__(self, stores: Mapping[str, Backend] | None = None) -> None:
        """`stores`: the daemon's backends by name; `file`, `vault` and `aws-kms` serve
        documents kept as files, hc_vault entries and kms entries."""
        self._stores = dict(stores or {})

    def quick(self, obj: MountObject) -> bool:
        return False  # X25519, network calls and a document walk: a thread

    def principal(self, obj: MountObject) -> Hashable:
        source = _source(obj)
        return (
            "sops",
            source.pod_uid,
            _fingerprint(source.age),
            source.vault and source.vault.identity,
            source.aws,
        )

    def grant(self, obj: MountObject) -> Grant:
        return Grant(scope=self.principal(obj))

    def authorize(self, obj: MountObject, deadline: float) -> Grant:
        return self.grant(obj)  # each store logs the pod in when its key is tried

    def fetch(self, obj: MountObject, grant: Grant, deadline: float) -> Decrypted:
        source = _source(obj)
        text = self._text(obj, source, deadline)
        _bounded(obj, text, source.format)
        try:
            parsed = parse.parse(text, source.format)
        except document.SopsError as exc:
            raise InvalidArgument(f"{obj.label}: invalid sops document: {exc}") from None
        failures: list[MountError] = []
        remote = _remote_entries(parsed.metadata, source)  # not yet tried

        def unwrap(kind: str, entry: dict[str, Any]) -> bytes | None:
            if time.monotonic() >= deadline:
                if not any(isinstance(f, DeadlineExceeded) for f in failures):
                    failures.append(
                        DeadlineExceeded(
                            f"the Mount deadline passed before the {kind} master keys were tried"
                        )
                    )
                return None
            if kind == "age":
                return keys.unwrap_age(entry, source.age)
            if id(entry) not in remote:
                return None  # no identity for it, or past MAX_REMOTE_KEYS
            # each remote key gets its share of the time left: a Vault that is down
            # (retried until its deadline) does not keep a KMS key from being tried
            share = time.monotonic() + (deadline - time.monotonic()) / len(remote)
            remote.discard(id(entry))
            try:
                return self._unwrap(obj, source, kind, entry, share)
            except MountError as exc:
                failures.append(exc)
                return None

        try:
            key = crypto.data_key(parsed.metadata, unwrap)
        except document.KeyError_ as exc:
            raise _refusal(obj, source, parsed.metadata, str(exc), failures) from None
        except document.SopsError as exc:
            raise InvalidArgument(f"{obj.label}: {exc}") from None
        try:
            tree = crypto.decrypt(parsed, key)
            data = emit.plain_data(tree) if source.format != "binary" else None
            return Decrypted(emit.emit(source.format, tree), data)
        except document.SopsError as exc:
            raise InvalidArgument(f"{obj.label}: sops document refused: {exc}") from None

    def render(self, obj: MountObject, fetched: Decrypted) -> Rendered:
        """The document as `sops --decrypt` writes it, or its data for the extraction
        step: objects of one Mount share a fetch of the same document."""
        if obj.extraction.selects and fetched.data is not None:
            return Document(fetched.data)
        return fetched.output

    def object_version(self, obj: MountObject, fetched: Any) -> str | None:
        return None  # the keyed hash of the content

    # -- the document

    def _text(self, obj: MountObject, source: SopsSource, deadline: float) -> str:
        """The document: from the SPC, or read by the file backend (its confinement to
        the namespace directory and its size limit)."""
        if source.file is None:
            return source.document
        files = self._stores.get("file")
        if files is None:
            raise InvalidArgument(
                f"{obj.label}: path needs the file backend; start the "
                "daemon with --file-root DIR, or put the document in the "
                "SPC (document)"
            )
        read = dataclasses.replace(obj, source=source.file, backend="file")
        content = files.fetch(read, files.authorize(read, deadline), deadline)
        if not isinstance(content, bytes):
            raise InvalidArgument(
                f"{obj.label}: path {source.file.path!r} is a directory; name one sops document"
            )
        try:
            return content.decode()
        except UnicodeDecodeError:
            raise InvalidArgument(
                f"{obj.label}: {source.file.path!r} is not a sops document (not UTF-8 text)"
            ) from None

    # -- master keys

    def _unwrap(
        self,
        obj: MountObject,
        source: SopsSource,
        kind: str,
        entry: dict[str, Any],
        deadline: float,
    ) -> bytes | None:
        if kind == "hc_vault" and "vault" in self._stores:
            return self._vault(obj, source, entry, deadline)
        if kind == "kms" and "aws-kms" in self._stores:
            return self._kms(obj, source, entry, deadline)
        return None

    def _vault(
        self, obj: MountObject, source: SopsSource, entry: dict[str, Any], deadline: float
    ) -> bytes:
        engine = str(entry.get("engine_path") or "").strip("/")
        name = str(entry.get("key_name") or "")
        enc = entry.get("enc")
        if not isinstance(enc, str) or not all(
            _VAULT_NAME.fullmatch(part) for part in [*engine.split("/"), name]
        ):
            raise InvalidArgument(
                f"{obj.label}: an hc_vault entry has no enc, or an "
                "engine_path or key_name that is not a Vault name"
            )
        assert source.vault is not None
        path = f"/v1/{engine}/decrypt/{name}"
        request = dataclasses.replace(
            source.vault, path=path, method="POST", query=(), body=json.dumps({"ciphertext": enc})
        )
        vault = self._stores["vault"]
        read = dataclasses.replace(obj, source=request, backend="vault")
        try:
            reply = vault.fetch(read, vault.authorize(read, deadline), deadline)
        except MountError as exc:
            raise type(exc)(f"hc_vault {_name(f'{engine}/{name}')}: {exc.message}") from None
        try:
            return base64.b64decode(reply["data"]["plaintext"], validate=True)
        except (KeyError, TypeError, binascii.Error, ValueError):
            raise FailedPrecondition(
                f"hc_vault {_name(f'{engine}/{name}')}: Vault's "
                "reply holds no plaintext; is it a transit "
                "engine?"
            ) from None

    def _kms(
        self, obj: MountObject, source: SopsSource, entry: dict[str, Any], deadline: float
    ) -> bytes:
        from csiprovider.stores.aws.backend import AwsBackend
        from csiprovider.stores.aws.credentials import AwsGrant
        from csiprovider.stores.aws.dialect import check_region
        from csiprovider.stores.aws.source import KmsSource

        arn = str(entry.get("arn") or "")
        parts = arn.split(":")
        enc = entry.get("enc")
        if (
            len(parts) < 6
            or parts[0] != "arn"
            or parts[2] != "kms"
            or not parts[3]
            or not isinstance(enc, str)
        ):
            raise InvalidArgument(
                f"{obj.label}: a kms entry has no key ARN with a region "
                f"(arn:aws:kms:REGION:ACCOUNT:key/ID) or no enc"
            )
        try:
            blob = base64.b64decode(enc, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidArgument(
                f"{obj.label}: the enc of kms entry {_name(arn)} is not base64"
            ) from None
        context = entry.get("context") or {}
        if not isinstance(context, dict):
            raise InvalidArgument(
                f"{obj.label}: the context of kms entry {_name(arn)} is not a map"
            )
        assert source.aws is not None
        region = check_region(parts[3], f"{obj.label}: kms entry {_name(arn)}: ")
        kms = KmsSource(
            identity=source.aws,
            region=region,
            ciphertext=blob,
            context=tuple(sorted((str(k), str(v)) for k, v in context.items())),
        )
        aws = self._stores["aws-kms"]
        read = dataclasses.replace(obj, source=kms, backend="aws-kms")
        try:
            grant = aws.authorize(read, deadline)
            role = str(entry.get("role") or "")
            if role:
                backend = aws.built() if isinstance(aws, LazyBackend) else aws
                assert isinstance(backend, AwsBackend) and isinstance(grant, AwsGrant)
                grant = backend.credentials.assume_role(grant, role, region)
            plaintext = aws.fetch(read, grant, deadline)
        except MountError as exc:
            message = exc.message.removeprefix(f"{obj.label}: ")
            raise type(exc)(f"kms {_name(arn)}: {message}") from None
        data: bytes = plaintext.data
        return data


def _remote_entries(metadata: document.Metadata, source: SopsSource) -> set[int]:
    """The hc_vault and kms entries the pod has an identity for (by `id`), at most
    MAX_REMOTE_KEYS of them: each is a store call within the Mount's deadline."""
    found: list[int] = []
    for group in metadata.key_groups[:1]:
        for kind, usable in (
            ("hc_vault", source.vault is not None),
            ("kms", source.aws is not None),
        ):
            entries = group.get(kind)
            if usable and isinstance(entries, list):
                found += [id(e) for e in entries if isinstance(e, dict)]
    return set(found[:MAX_REMOTE_KEYS])


def _bounded(obj: MountObject, text: str, fmt: str) -> None:
    """Refuse a document too big or too deep before it is parsed: one Mount must not take
    the memory or the stack of the daemon. YAML is checked on the C parser's (iterative)
    event stream; aliases are refused (sops expands them when it encrypts): they would be
    the one way to make a small document a huge tree."""
    if len(text) > MAX_DOCUMENT_BYTES:
        raise InvalidArgument(
            f"{obj.label}: the sops document is {len(text)} characters, "
            f"more than {MAX_DOCUMENT_BYTES}; split it"
        )
    if fmt in ("json", "binary"):
        bare = json_skeleton(text)  # brackets and commas inside strings do not count
        if sum(map(bare.count, ",[]{}")) > MAX_NODES:
            raise InvalidArgument(
                f"{obj.label}: the sops document has more than {MAX_NODES} values; split it"
            )
        if json_nested_deeper(bare, MAX_DEPTH):
            raise InvalidArgument(
                f"{obj.label}: the sops document is nested deeper than {MAX_DEPTH} levels"
            )
        return
    if fmt in ("dotenv", "ini"):
        if text.count("\n") > MAX_NODES:
            raise InvalidArgument(
                f"{obj.label}: the sops document has more than {MAX_NODES} lines; split it"
            )
        return
    import yaml

    depth = nodes = 0
    try:
        for event in yaml_events(text):
            if isinstance(event, yaml.AliasEvent):
                raise InvalidArgument(
                    f"{obj.label}: the sops document uses a YAML alias"
                    " (sops expands aliases when it encrypts, so it "
                    "never writes one); encrypt the document with sops"
                )
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    raise InvalidArgument(
                        f"{obj.label}: the sops document is nested deeper than {MAX_DEPTH} levels"
                    )
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
            if isinstance(event, yaml.NodeEvent):
                nodes += 1
                if nodes > MAX_NODES:
                    raise InvalidArgument(
                        f"{obj.label}: the sops document has more than {MAX_NODES} values; split it"
                    )
    except yaml.YAMLError:
        return  # the document parser words the syntax error


def _refusal(
    obj: MountObject,
    source: SopsSource,
    metadata: document.Metadata,
    summary: str,
    failures: list[MountError],
) -> MountError:
    """Why no master key opened the document: each store's refusal, and for each kind
    of master key the pod brought nothing for, what it lacks."""
    kinds = {
        kind
        for group in metadata.key_groups
        for kind, entries in group.items()
        if isinstance(entries, list) and entries
    }
    reasons = [f.message for f in failures]
    for missing in source.unusable:
        if missing.kind in kinds:
            reasons.append(f"{missing.kind}: {missing.reason}")
    if "age" in kinds and source.age:
        reasons.append(
            f"age: the pod's {keys.AGE_SECRET} (nodePublishSecretRef) holds no "
            "identity of the document's age recipients"
        )
    for kind in sorted(kinds & {"gcp_kms", "azure_kv", "pgp"}):
        reasons.append(f"{kind}: not supported by this provider")
    detail = "; ".join(reasons) or "the document names no master key"
    message = f"{obj.label}: cannot decrypt the sops data key: {summary}: {detail}"
    # A store that refused the pod decides: never UNAVAILABLE then, which would let the
    # resolver serve the last good document to a pod whose access was just revoked.
    if any(isinstance(f, PermissionDenied) for f in failures):
        return PermissionDenied(message)
    if any(isinstance(f, Unavailable | DeadlineExceeded) for f in failures):
        return Unavailable(message)
    if failures and all(isinstance(f, InvalidArgument) for f in failures):
        return InvalidArgument(message)
    return PermissionDenied(message)


def _name(text: str) -> str:
    """A master key's name (an ARN, a transit key) for an error: whole, but bounded."""
    return repr(text[:_ENTRY])


def _source(obj: MountObject) -> SopsSource:
    source = obj.source
    assert isinstance(source, SopsSource)
    return source


def _fingerprint(identities: tuple[keys.AgeIdentity, ...]) -> str:
    """Which age keys the pod holds, named by their public recipients."""
    return ",".join(identity.recipient for identity in identities)
