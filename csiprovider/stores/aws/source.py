"""What an AWS fetch needs: whose credentials (identity) and what to request (source)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class AwsIdentity:
    """Who a pod is to AWS: IRSA (role of its service account) or EKS Pod Identity.

    One pod (its UID): every pod exchanges its own token. Equality ignores the token
    itself, so a token refreshed by the driver keeps the pod's credentials. What pods
    share is decided by the exchange's principal (`credentials.AwsGrant.scope`).
    """

    mode: str  # "irsa" or "pod-identity"
    namespace: str
    service_account: str
    pod_uid: str = ""
    pod_name: str = ""
    address_type: str = "auto"  # pod identity agent: ipv4, ipv6 or auto
    token: str = field(default="", compare=False, repr=False)


@dataclass(frozen=True)
class SecretSource:
    """One GetSecretValue, in the primary region and, on failure, the failover region."""

    identity: AwsIdentity
    regions: tuple[str, ...]
    names: tuple[str, ...]  # per region
    version_id: str
    stages: tuple[str, ...]  # per region


@dataclass(frozen=True)
class ParameterBatch:
    """Up to 10 SSM parameters in one GetParameters, per region."""

    identity: AwsIdentity
    regions: tuple[str, ...]
    selectors: tuple[tuple[str, ...], ...]  # per region: "name", "name:3" or "name:label"


@dataclass(frozen=True)
class KmsSource:
    identity: AwsIdentity
    region: str
    ciphertext: bytes = field(repr=False)
    context: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class ParameterPath:
    """Every SSM parameter under a path (GetParametersByPath, recursive)."""

    identity: AwsIdentity
    region: str
    path: str
    max_items: int = 100  # more parameters under the path is refused
