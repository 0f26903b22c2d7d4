"""What a Vault fetch needs: who logs in (identity) and what is requested (source).

Both are hashable: the identity keys the token cache, the source keys in-Mount dedup
and the lease cache. The pod's JWT rides along but takes no part in equality, so a
fresh token from the driver does not split the cache.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from csiprovider.vault.config import VaultConnection


@dataclass(frozen=True)
class VaultIdentity:
    """What Vault authorizes: connection, auth mount, role, audience, namespace and service
    account. Pods of one service account are the same identity (Vault would give each the
    same policies), so they share a token, cached reads and leases — 100 replicas cost one
    login and one database user, not 100. The pod fields ride along for TokenRequest."""

    connection: VaultConnection
    auth_mount: str
    role: str
    audience: str
    pod_namespace: str
    pod_name: str = field(compare=False)
    pod_uid: str = field(compare=False)
    service_account: str = ""

    @property
    def pod(self) -> str:
        return f"{self.pod_namespace}/{self.pod_name}"


@dataclass(frozen=True)
class VaultSource:
    """One Vault request; equal sources in a Mount are fetched once."""

    identity: VaultIdentity
    path: str
    method: str
    query: tuple[tuple[str, str], ...]
    body: str
    jwt: str = field(default="", compare=False, repr=False)
