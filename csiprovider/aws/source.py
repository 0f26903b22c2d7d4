"""What an AWS fetch needs: whose credentials (identity) and what to request (source)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class AwsIdentity:
    """The IAM identity of a pod: IRSA (role of its service account) or EKS Pod Identity.

    Equality ignores the token: pods of one service account share credentials and cached
    values, exactly what AWS would authorize for each of them anyway.
    """

    mode: str  # "irsa" or "pod-identity"
    namespace: str
    service_account: str
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
