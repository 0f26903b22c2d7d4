"""Pod credentials for AWS: IRSA (AssumeRoleWithWebIdentity with the driver's token for
`sts.amazonaws.com` and the role annotated on the ServiceAccount) or EKS Pod Identity (the
node agent, with the token for `pods.eks.amazonaws.com`). Cached per identity until five
minutes before expiry; boto3 clients are cached per identity, region and service.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime
from typing import Any

import boto3
import botocore.config
import requests
from botocore import UNSIGNED
from botocore.exceptions import BotoCoreError, ClientError

from csiprovider.aws.source import AwsIdentity
from csiprovider.errors import FailedPrecondition, PermissionDenied, Unavailable
from csiprovider.kube import KubeClient

ROLE_ANNOTATION = "eks.amazonaws.com/role-arn"
POD_IDENTITY_V4 = "http://169.254.170.23/v1/credentials"
POD_IDENTITY_V6 = "http://[fd00:ec2::23]/v1/credentials"
REFRESH_BEFORE = 300.0
ROLE_TTL = 60.0
CLIENT_CONFIG = botocore.config.Config(
    retries={"mode": "adaptive", "max_attempts": 5},  # throttling and 5xx, with backoff
    connect_timeout=3, read_timeout=10, max_pool_connections=32,
)


class AwsCredentials:
    def __init__(self, kube: KubeClient | None = None, pod_identity_endpoint: str = "") -> None:
        self._kube = kube
        self._agent = pod_identity_endpoint
        self._lock = threading.Lock()
        self._create_lock = threading.Lock()
        self._identity_locks: dict[AwsIdentity, threading.Lock] = {}
        self._creds: dict[tuple[AwsIdentity, str], tuple[float, dict[str, str]]] = {}
        self._roles: dict[tuple[str, str], tuple[float, str]] = {}
        self._clients: dict[tuple[Any, ...], Any] = {}

    def client(self, identity: AwsIdentity, service: str, region: str) -> Any:
        creds = self._credentials(identity)
        key = (identity, service, region, creds["AccessKeyId"])
        with self._lock:
            found = self._clients.get(key)
        if found is not None:
            return found
        with self._create_lock:  # one creation at a time: it is slow and CPU-bound
            found = self._clients.get(key)
            if found is not None:
                return found
            made = boto3.session.Session().client(
                service, region_name=region, config=CLIENT_CONFIG,  # type: ignore[call-overload]
                aws_access_key_id=creds["AccessKeyId"],
                aws_secret_access_key=creds["SecretAccessKey"],
                aws_session_token=creds.get("SessionToken") or creds.get("Token"),
            )
            with self._lock:
                self._clients = {k: v for k, v in self._clients.items()
                                 if not (k[0] == identity and k[3] != creds["AccessKeyId"])}
                self._clients[key] = made
        return made

    def _credentials(self, identity: AwsIdentity) -> dict[str, str]:
        """Cached; concurrent fetches of one Mount wait for a single STS/agent call."""
        with self._lock:
            per_identity = self._identity_locks.setdefault(identity, threading.Lock())
        with per_identity:
            role = self._role(identity) if identity.mode == "irsa" else ""
            key = (identity, role)
            with self._lock:
                found = self._creds.get(key)
            if found is not None and time.time() < found[0] - REFRESH_BEFORE:
                return found[1]
            creds, expires = (self._assume(identity, role) if identity.mode == "irsa"
                              else self._pod_identity(identity))
            with self._lock:
                self._creds[key] = (expires, creds)
            return creds

    def _role(self, identity: AwsIdentity) -> str:
        key = (identity.namespace, identity.service_account)
        with self._lock:
            found = self._roles.get(key)
        if found is not None and time.monotonic() < found[0]:
            return found[1]
        if self._kube is None:
            raise FailedPrecondition(
                f"failed to get service account {identity.namespace}/"
                f"{identity.service_account}: no Kubernetes API access (IRSA reads the role "
                f"from its {ROLE_ANNOTATION} annotation)")
        account = self._kube.service_account(identity.namespace, identity.service_account)
        role = str(((account.get("metadata") or {}).get("annotations") or {}).get(
            ROLE_ANNOTATION, ""))
        if not role:
            raise PermissionDenied(
                f"An IAM role must be associated with service account "
                f"{identity.service_account} (namespace: {identity.namespace})")
        with self._lock:
            self._roles[key] = (time.monotonic() + ROLE_TTL, role)
        return role

    def _assume(self, identity: AwsIdentity, role: str) -> tuple[dict[str, str], float]:
        sts = boto3.session.Session().client(
            "sts", region_name="us-east-1",
            config=CLIENT_CONFIG.merge(botocore.config.Config(signature_version=UNSIGNED)))
        try:
            reply = sts.assume_role_with_web_identity(
                RoleArn=role, RoleSessionName="csiprovider", WebIdentityToken=identity.token)
        except ClientError as exc:
            raise PermissionDenied(
                f"AssumeRoleWithWebIdentity for {role} failed: "
                f"{exc.response.get('Error', {}).get('Message', exc)}") from None
        except BotoCoreError as exc:
            raise Unavailable(f"cannot reach STS ({type(exc).__name__})") from None
        c = reply["Credentials"]
        creds = {"AccessKeyId": c["AccessKeyId"], "SecretAccessKey": c["SecretAccessKey"],
                 "SessionToken": c["SessionToken"]}
        return creds, c["Expiration"].timestamp()

    def _pod_identity(self, identity: AwsIdentity) -> tuple[dict[str, str], float]:
        if self._agent:
            endpoints = [self._agent]
        else:
            endpoints = {"ipv4": [POD_IDENTITY_V4], "ipv6": [POD_IDENTITY_V6]}.get(
                identity.address_type, [POD_IDENTITY_V4, POD_IDENTITY_V6])
        failures = []
        for url in endpoints:  # auto really falls back to IPv6 (ASCP's never does)
            try:
                reply = requests.get(url, headers={"Authorization": identity.token}, timeout=5)
            except requests.RequestException as exc:
                failures.append(f"{url}: {type(exc).__name__}")
                continue
            if not reply.ok:
                failures.append(f"{url}: HTTP {reply.status_code}")
                continue
            body = reply.json()
            expires = datetime.fromisoformat(str(body["Expiration"]).replace("Z", "+00:00"))
            return ({"AccessKeyId": body["AccessKeyId"],
                     "SecretAccessKey": body["SecretAccessKey"],
                     "SessionToken": body.get("Token", "")}, expires.timestamp())
        raise Unavailable("EKS Pod Identity agent did not give credentials: " + "; ".join(failures))
