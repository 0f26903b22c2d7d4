"""What a Vault fetch needs: who logs in (identity) and what is requested (source).

Both are hashable: the identity keys the pod's login, the source keys in-Mount dedup.
Reads and leases are shared under the login's authorization class instead (see
`vault.auth.scope_of`). The pod's JWT rides along but takes no part in equality, so a
fresh token from the driver does not split the pod's login.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from csiprovider.stores.vault.config import VaultConnection


@dataclass(frozen=True)
class VaultIdentity:
    """Who logs in: one pod (its UID and name) through a connection, auth mount and role,
    with a token for an audience. Every pod logs in itself: a role may tell pods of one
    service account apart (bound claims on the pod name, per-pod entities), and only
    Vault's reply says whether it did."""

    connection: VaultConnection
    auth_mount: str
    role: str
    audience: str
    pod_namespace: str
    pod_name: str
    pod_uid: str
    service_account: str = ""

    @property
    def pod(self) -> str:
        return f"{self.pod_namespace}/{self.pod_name}"


@dataclass(frozen=True)
class KvListing:
    """A KV prefix (native `prefix`): the source LISTs the keys, then each is read under
    `read_base`; more than `max_items` keys is refused."""

    read_base: str
    max_items: int = 100


@dataclass(frozen=True)
class VaultSource:
    """One Vault request; equal sources in a Mount are fetched once."""

    identity: VaultIdentity
    path: str
    method: str
    query: tuple[tuple[str, str], ...]
    body: str
    jwt: str = field(default="", compare=False, repr=False)
    listing: KvListing | None = None
