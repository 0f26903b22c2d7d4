"""What a sops fetch decrypts, and the pod's identities that may unwrap its data key."""

from __future__ import annotations

from dataclasses import dataclass, field

from csiprovider.stores.aws.source import AwsIdentity
from csiprovider.stores.file.source import FileSource
from csiprovider.stores.sops.keys import AgeIdentity
from csiprovider.stores.vault.source import VaultSource


@dataclass(frozen=True)
class Unusable:
    """A kind of master key the pod brings no identity for, and why (told to the pod
    when no other master key of the document opens it)."""

    kind: str
    reason: str


@dataclass(frozen=True)
class SopsSource:
    """An encrypted document, committed in the SPC (`document`) or a file of the pod's
    namespace directory (`file`), and every identity the pod has for its master keys:

    * `age`: the pod's age identities (from its nodePublishSecretRef), never logged;
    * `vault`: the pod's Vault login (the SPC's Vault settings), for `hc_vault` entries;
    * `aws`: the pod's IRSA or Pod Identity, for `kms` entries.

    The document says which of them is tried; an identity the SPC could not give is
    listed in `unusable` instead."""

    format: str
    pod_uid: str = ""  # every pod decrypts for itself: no two pods share a fetch
    document: str = field(repr=False, default="")
    file: FileSource | None = None
    age: tuple[AgeIdentity, ...] = ()
    vault: VaultSource | None = None
    aws: AwsIdentity | None = None
    unusable: tuple[Unusable, ...] = ()
