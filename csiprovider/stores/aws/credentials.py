"""Pod credentials for AWS: IRSA (AssumeRoleWithWebIdentity with the pod's own token for
`sts.amazonaws.com` and the role annotated on its ServiceAccount) or EKS Pod Identity
(the node agent, with the pod's token for `pods.eks.amazonaws.com`).

Every pod exchanges its own token: nothing is read for a pod before its exchange
succeeded. Its credentials are kept per pod until five minutes before they expire. STS is
called in the SPC's region, at the endpoint botocore resolves for it (regional, the
partition's for aws-cn and aws-us-gov, `AWS_ENDPOINT_URL_STS` / `AWS_ENDPOINT_URL` when
set), as ASCP does.

What AWS authorizes is the credentials' principal, so that is the authorization class
(the grant's scope): the assumed role ARN for IRSA (sessions of one role carry no
per-pod claims), the very credentials for Pod Identity (its session tags name the pod).
boto3 clients belong to the class, not to the pod, and are built from one shared boto3
session: memory grows with classes, not pods.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import boto3
import botocore.config
import requests
from botocore import UNSIGNED
from botocore.exceptions import BotoCoreError, ClientError

from csiprovider.caches import LRU
from csiprovider.errors import (
    FailedPrecondition,
    InvalidArgument,
    PermissionDenied,
    Unavailable,
)
from csiprovider.kube import KubeClient
from csiprovider.limits import quote
from csiprovider.stores import Grant
from csiprovider.stores.aws.source import AwsIdentity

ROLE_ANNOTATION = "eks.amazonaws.com/role-arn"
POD_IDENTITY_V4 = "http://169.254.170.23/v1/credentials"
POD_IDENTITY_V6 = "http://[fd00:ec2::23]/v1/credentials"
SESSION_NAME = "csiprovider"
REFRESH_BEFORE = 300.0
ROLE_TTL = 60.0
ASSUMED_TTL = 300.0  # a role a SOPS KMS entry names: assumed again after this
MAX_PODS = 10000
MAX_CLIENTS = 128
CLIENT_CONFIG = botocore.config.Config(
    retries={"mode": "adaptive", "max_attempts": 5},  # throttling and 5xx, with backoff
    connect_timeout=3,
    read_timeout=10,
    max_pool_connections=32,
)
STS_TRANSIENT = {
    "Throttling",
    "ThrottlingException",
    "IDPCommunicationError",
    "ServiceUnavailable",
    "InternalFailure",
}
LOCK_STRIPES = 64
STS_CONFIG = CLIENT_CONFIG.merge(
    botocore.config.Config(
        signature_version=UNSIGNED, retries={"mode": "standard", "max_attempts": 3}
    )
)


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str = field(repr=False)
    session_token: str = field(repr=False)
    expires: float  # time.time()

    def usable(self, now: float) -> bool:
        return now < self.expires - REFRESH_BEFORE


@dataclass(frozen=True)
class AwsGrant(Grant):
    """A pod's exchanged credentials; `scope` is their principal."""

    credentials: Credentials = field(compare=False, repr=False)


class AwsCredentials:
    def __init__(
        self,
        kube: KubeClient | None = None,
        pod_identity_endpoint: str = "",
        pod_identity_timeout: float = 5.0,
    ) -> None:
        """`pod_identity_timeout`: seconds for the agent call (ASCP's
        --pod-identity-http-timeout)."""
        self._kube = kube
        self._agent = pod_identity_endpoint
        self._agent_timeout = pod_identity_timeout
        self._lock = threading.Lock()
        self._create_lock = threading.Lock()  # boto3 sessions are not thread-safe
        self._session = boto3.session.Session()
        self._pods: LRU[AwsIdentity, AwsGrant] = LRU(MAX_PODS)
        # One exchange at a time per pod; striped, so failing pods leave nothing behind.
        self._pod_locks = [threading.Lock() for _ in range(LOCK_STRIPES)]
        self._roles: LRU[tuple[str, str], tuple[float, str]] = LRU(MAX_PODS)
        self._class_credentials: LRU[Hashable, Credentials] = LRU(MAX_PODS)
        self._clients: LRU[tuple[Hashable, str, str], tuple[str, Any]] = LRU(MAX_CLIENTS)
        self._assumed: LRU[tuple[Hashable, str], tuple[float, AwsGrant]] = LRU(MAX_PODS)

    # -- the pod

    def current(self, identity: AwsIdentity) -> AwsGrant | None:
        """The pod's grant while its credentials are good (no I/O)."""
        with self._lock:
            found = self._pods.get(identity)
        if found is not None and found.credentials.usable(time.time()):
            return found
        return None

    def authorize(
        self, identity: AwsIdentity, region: str, deadline: float | None = None
    ) -> AwsGrant:
        """Exchange the pod's own token; concurrent fetches of one pod wait for one call."""
        with self._pod_locks[hash(identity) % LOCK_STRIPES]:
            found = self.current(identity)
            if found is not None:
                return found
            if identity.mode == "irsa":
                role = self._role(identity, deadline)
                credentials, principal = self._assume(identity, role, region)
                grant = AwsGrant(scope=("irsa", principal), credentials=credentials)
            else:
                credentials = self._pod_identity(identity)
                grant = AwsGrant(
                    scope=("pod-identity", credentials.access_key), credentials=credentials
                )
            with self._lock:
                self._pods.put(identity, grant)
            return grant

    def assume_role(self, grant: AwsGrant, role: str, region: str) -> AwsGrant:
        """Credentials of `role`, assumed with the pod's own credentials (sts:AssumeRole,
        as SOPS does for a KMS key entry with a `role`). Kept per (class, role) for
        ASSUMED_TTL: whether AssumeRole succeeds depends only on the caller's principal
        (its identity policy and the role's trust policy), which is what the class
        names; a trust policy that drops the class is noticed within ASSUMED_TTL."""
        key = (grant.scope, role)
        with self._lock:
            found = self._assumed.get(key)
        if (
            found is not None
            and found[0] > time.monotonic()
            and found[1].credentials.usable(time.time())
        ):
            return found[1]
        sts = self.client(grant, "sts", region)
        credentials, principal = _exchange(
            sts,
            "AssumeRole",
            role,
            lambda: sts.assume_role(RoleArn=role, RoleSessionName=SESSION_NAME),
        )
        assumed = AwsGrant(scope=("assumed", grant.scope, principal), credentials=credentials)
        with self._lock:  # a revoked trust policy is noticed within ASSUMED_TTL
            self._assumed.put(key, (time.monotonic() + ASSUMED_TTL, assumed))
        return assumed

    # -- the class

    def client(self, grant: AwsGrant, service: str, region: str) -> Any:
        """A client of the grant's class: built from the class's freshest credentials,
        rebuilt when those are replaced."""
        now = time.time()
        with self._lock:
            current = self._class_credentials.get(grant.scope)
            if current is None or (
                not current.usable(now) and grant.credentials.expires > current.expires
            ):
                current = grant.credentials
                self._class_credentials.put(grant.scope, current)
            key = (grant.scope, service, region)
            found = self._clients.get(key)
            if found is not None and found[0] == current.access_key:
                return found[1]
        with self._create_lock:  # one creation at a time: it is CPU-bound
            try:
                made = self._session.client(
                    service,
                    region_name=region,  # type: ignore[call-overload]
                    config=CLIENT_CONFIG,
                    aws_access_key_id=current.access_key,
                    aws_secret_access_key=current.secret_key,
                    aws_session_token=current.session_token or None,
                )
            except BotoCoreError as exc:  # a region or endpoint botocore cannot use
                raise InvalidArgument(
                    f"cannot make an AWS {service} client for region "
                    f"{quote(region)} ({type(exc).__name__})"
                ) from None
        with self._lock:
            self._clients.put(key, (current.access_key, made))
        return made

    # -- exchanges

    def _role(self, identity: AwsIdentity, deadline: float | None) -> str:
        key = (identity.namespace, identity.service_account)
        with self._lock:
            found = self._roles.get(key)
        if found is not None and time.monotonic() < found[0]:
            return found[1]
        if self._kube is None:
            raise FailedPrecondition(
                f"failed to get service account {identity.namespace}/"
                f"{identity.service_account}: no Kubernetes API access (IRSA reads the role "
                f"from its {ROLE_ANNOTATION} annotation)"
            )
        account = self._kube.service_account(
            identity.namespace, identity.service_account, deadline=deadline
        )
        role = str(
            ((account.get("metadata") or {}).get("annotations") or {}).get(ROLE_ANNOTATION, "")
        )
        if not role:
            raise PermissionDenied(
                f"An IAM role must be associated with service account "
                f"{identity.service_account} (namespace: {identity.namespace})"
            )
        with self._lock:
            self._roles.put(key, (time.monotonic() + ROLE_TTL, role))
        return role

    def _sts(self, region: str) -> Any:
        key: tuple[Hashable, str, str] = ("sts", "sts", region)
        with self._lock:
            found = self._clients.get(key)
        if found is not None:
            return found[1]
        with self._create_lock:
            try:
                made = self._session.client("sts", region_name=region, config=STS_CONFIG)
            except BotoCoreError as exc:
                raise InvalidArgument(
                    f"cannot make an STS client for region {quote(region)} ({type(exc).__name__})"
                ) from None
        with self._lock:
            self._clients.put(key, ("", made))
        return made

    def _assume(self, identity: AwsIdentity, role: str, region: str) -> tuple[Credentials, str]:
        sts = self._sts(region)
        return _exchange(
            sts,
            "AssumeRoleWithWebIdentity",
            role,
            lambda: sts.assume_role_with_web_identity(
                RoleArn=role, RoleSessionName=SESSION_NAME, WebIdentityToken=identity.token
            ),
        )

    def _pod_identity(self, identity: AwsIdentity) -> Credentials:
        if self._agent:
            endpoints = [self._agent]
        else:
            endpoints = {"ipv4": [POD_IDENTITY_V4], "ipv6": [POD_IDENTITY_V6]}.get(
                identity.address_type, [POD_IDENTITY_V4, POD_IDENTITY_V6]
            )
        failures = []
        for url in endpoints:  # auto really falls back to IPv6 (ASCP's never does)
            try:
                reply = requests.get(
                    url, headers={"Authorization": identity.token}, timeout=self._agent_timeout
                )
            except requests.RequestException as exc:
                failures.append(f"{url}: {type(exc).__name__}")
                continue
            if reply.status_code in (400, 401, 403):
                raise PermissionDenied(
                    f"EKS Pod Identity agent refused the pod's token: {url}: HTTP "
                    f"{reply.status_code}"
                )
            if not reply.ok:
                failures.append(f"{url}: HTTP {reply.status_code}")
                continue
            try:
                body = reply.json()
                expires = datetime.fromisoformat(str(body["Expiration"]).replace("Z", "+00:00"))
                return Credentials(
                    str(body["AccessKeyId"]),
                    str(body["SecretAccessKey"]),
                    str(body.get("Token") or ""),
                    expires.timestamp(),
                )
            except (ValueError, KeyError, TypeError):
                failures.append(f"{url}: a reply without credentials")
        raise Unavailable("EKS Pod Identity agent did not give credentials: " + "; ".join(failures))


def _exchange(sts: Any, action: str, role: str, call: Callable[[], Any]) -> tuple[Credentials, str]:
    """One STS call for `role`: its credentials and principal (the assumed-role ARN), or
    STS's refusal in its own words (UNAVAILABLE when STS could not judge the request)."""
    try:
        reply = call()
    except ClientError as exc:
        error = exc.response.get("Error", {})
        message = f"{action} for {role} failed: {error.get('Message', exc)}"
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if error.get("Code") in STS_TRANSIENT or status >= 500:
            raise Unavailable(message) from None  # the token was not judged
        raise PermissionDenied(message) from None
    except BotoCoreError as exc:
        raise Unavailable(
            f"cannot reach STS at {sts.meta.endpoint_url} ({type(exc).__name__})"
        ) from None
    c = reply["Credentials"]
    principal = str((reply.get("AssumedRoleUser") or {}).get("Arn") or role)
    return Credentials(
        c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"], c["Expiration"].timestamp()
    ), principal
