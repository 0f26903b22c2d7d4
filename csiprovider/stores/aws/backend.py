"""The AWS backend: Secrets Manager, SSM Parameter Store and KMS with the pod's identity.

Better than ASCP: objects are fetched in parallel (the resolver runs sources at once;
SSM parameters go in batches of 10, batches in parallel); the failover region is only
called when the primary fails; a repeated Mount asks DescribeSecret whether the wanted
stage still points at the version served last and skips GetSecretValue when it does;
errors say what failed (access denied, not found, throttled) for which object.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from csiprovider import metrics
from csiprovider.caches import LRU
from csiprovider.errors import (
    InvalidArgument,
    MountError,
    NotFound,
    PermissionDenied,
    Unavailable,
)
from csiprovider.model import MountObject, Rendered
from csiprovider.stores import Grant, what_is_read
from csiprovider.stores.aws import extract
from csiprovider.stores.aws.credentials import AwsCredentials, AwsGrant
from csiprovider.stores.aws.source import KmsSource, ParameterBatch, ParameterPath, SecretSource
from csiprovider.stores.aws.values import (
    AwsValue,
    ParameterTree,
    ParameterValues,
    Plaintext,
    SecretValue,
)

SERVED_ENTRIES = 20000
NOT_FOUND = {
    "ResourceNotFoundException",
    "ParameterNotFound",
    "ParameterVersionNotFound",
    "NotFoundException",
    "404",
}
DENIED = {
    "AccessDeniedException",
    "AccessDenied",
    "403",
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "ExpiredTokenException",
    "DecryptionFailure",
    "KMSInvalidStateException",
    "IncorrectKeyException",
    "InvalidCiphertextException",
}
THROTTLED = {
    "ThrottlingException",
    "Throttling",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "ThrottledException",
}

_V = TypeVar("_V", SecretValue, ParameterValues)


@dataclass
class Served:
    """What a source last returned for an identity: the basis of change detection."""

    version_id: str
    value: SecretValue


class AwsBackend:
    """Fetch/render for the resolver; blocking, runs in its thread pool."""

    shares_reads = True  # within one authorization class (the credentials' principal)

    def __init__(self, credentials: AwsCredentials) -> None:
        self.credentials = credentials
        self._served: LRU[Hashable, Served] = LRU(SERVED_ENTRIES)  # pods come and go
        self._lock = threading.Lock()

    # -- resolver interface

    def quick(self, obj: MountObject) -> bool:
        return False  # network I/O

    def principal(self, obj: MountObject) -> Hashable:
        return _source(obj).identity

    def grant(self, obj: MountObject) -> Grant | None:
        return self.credentials.current(_source(obj).identity)

    def authorize(self, obj: MountObject, deadline: float) -> Grant:
        """STS (or the agent) with the pod's token, in the object's (primary) region."""
        source = _source(obj)
        region = (
            source.region if isinstance(source, KmsSource | ParameterPath) else source.regions[0]
        )
        return self.credentials.authorize(source.identity, region, deadline)

    def fetch(self, obj: MountObject, grant: Grant, deadline: float) -> AwsValue:
        source = obj.source
        assert isinstance(grant, AwsGrant)
        if isinstance(source, SecretSource):
            return self._secret(obj, grant, source)
        if isinstance(source, ParameterBatch):
            return self._parameters(obj, grant, source)
        if isinstance(source, ParameterPath):
            return self._parameter_path(obj, grant, source)
        assert isinstance(source, KmsSource)
        return self._decrypt(obj, grant, source)

    def render(self, obj: MountObject, fetched: AwsValue) -> Rendered:
        return extract.render(obj, fetched)

    def object_version(self, obj: MountObject, fetched: AwsValue) -> str | None:
        """ASCP's versions: the VersionId, or the SSM parameter's version number."""
        if not obj.store_version or isinstance(fetched, Plaintext):
            return None  # the keyed hash, as for every other backend
        if isinstance(fetched, ParameterValues):
            found = fetched.found.get(obj.part)
            return str(found["Version"]) if found is not None else ""
        if isinstance(fetched, SecretValue):
            return fetched.version_id
        return ""

    # -- Secrets Manager

    def _secret(self, obj: MountObject, grant: AwsGrant, source: SecretSource) -> SecretValue:
        """Served before to this class: DescribeSecret proves the version still current
        (the fresh check a first Mount needs) and GetSecretValue is skipped."""
        key = (grant.scope, what_is_read(source))
        served = self._served_for(key)
        if served is not None and not source.version_id:  # a pinned version is just read
            try:
                if self._still_current(grant, source, served):
                    return served.value
            except MountError:
                pass  # no DescribeSecret (permission, outage): just read the value
        value = self._failover(
            obj,
            source.regions,
            lambda region, i: self._get_secret(grant, source, region, i),
            "secret",
        )
        with self._lock:
            self._served.put(key, Served(value.version_id, value))
        return value

    def _still_current(self, grant: AwsGrant, source: SecretSource, served: Served) -> bool:
        client = self.credentials.client(grant, "secretsmanager", source.regions[0])
        described = self._call(client, "DescribeSecret", SecretId=source.names[0])
        stages = (described.get("VersionIdsToStages") or {}).get(served.version_id, [])
        return (source.stages[0] or "AWSCURRENT") in stages

    def _get_secret(
        self, grant: AwsGrant, source: SecretSource, region: str, index: int
    ) -> SecretValue:
        client = self.credentials.client(grant, "secretsmanager", region)
        args: dict[str, Any] = {"SecretId": source.names[index]}
        if source.version_id:
            args["VersionId"] = source.version_id
        if source.stages[index]:
            args["VersionStage"] = source.stages[index]
        reply = self._call(client, "GetSecretValue", **args)
        return SecretValue(
            version_id=str(reply.get("VersionId", "")),
            string=reply.get("SecretString"),
            binary=reply.get("SecretBinary"),
            region=region,
        )

    # -- SSM

    def _parameters(
        self, obj: MountObject, grant: AwsGrant, batch: ParameterBatch
    ) -> ParameterValues:
        def get(region: str, index: int) -> ParameterValues:
            client = self.credentials.client(grant, "ssm", region)
            wanted = batch.selectors[index]
            reply = self._call(client, "GetParameters", Names=list(wanted), WithDecryption=True)
            invalid = reply.get("InvalidParameters") or []
            if invalid:
                raise NotFound(f"{region}: invalid parameters: {', '.join(dict.fromkeys(invalid))}")
            by_name = {}
            for p in reply.get("Parameters") or []:
                by_name[p["Name"]] = p
                if p.get("ARN"):
                    by_name[p["ARN"]] = p  # ARN objectNames and RAM-shared parameters
            # The dialect never puts one name twice in a batch, so names identify answers.
            found = {i: by_name.get(_name_of(sel)) for i, sel in enumerate(wanted)}
            return ParameterValues(found, region)

        return self._failover(obj, batch.regions, get, "parameters")

    def _parameter_path(
        self, obj: MountObject, grant: AwsGrant, source: ParameterPath
    ) -> ParameterTree:
        """Prefix fetch, bounded by maxItems so a typo cannot read a whole store."""
        limit = source.max_items
        client = self.credentials.client(grant, "ssm", source.region)
        prefix = source.path.rstrip("/") + "/"
        found: dict[str, bytes] = {}
        token = None
        while True:
            args: dict[str, Any] = {"Path": source.path, "Recursive": True, "WithDecryption": True}
            if token:
                args["NextToken"] = token
            try:
                reply = self._call(client, "GetParametersByPath", **args)
            except MountError as exc:
                raise type(exc)(f"{obj.label}: {exc.message}") from None
            for p in reply.get("Parameters") or []:
                found[p["Name"].removeprefix(prefix).lstrip("/")] = str(p["Value"]).encode()
            if len(found) > limit:
                raise InvalidArgument(
                    f"{obj.label}: more than maxItems {limit} parameters "
                    f"under {source.path!r}; narrow pathPrefix or raise "
                    "maxItems"
                )
            token = reply.get("NextToken")
            if not token:
                return ParameterTree(found)

    # -- KMS

    def _decrypt(self, obj: MountObject, grant: AwsGrant, source: KmsSource) -> Plaintext:
        client = self.credentials.client(grant, "kms", source.region)
        args: dict[str, Any] = {"CiphertextBlob": source.ciphertext}
        if source.context:
            args["EncryptionContext"] = dict(source.context)
        try:
            reply = self._call(client, "Decrypt", **args)
        except MountError as exc:
            raise type(exc)(f"{obj.label}: KMS Decrypt failed: {exc.message}") from None
        return Plaintext(reply["Plaintext"])

    # -- shared

    def _failover(
        self, obj: MountObject, regions: tuple[str, ...], get: Callable[[str, int], _V], what: str
    ) -> _V:
        failures: list[str] = []
        for index, region in enumerate(regions):
            try:
                return get(region, index)
            except MountError as exc:
                if not isinstance(exc, Unavailable) or index == len(regions) - 1:
                    if failures:
                        raise type(exc)(
                            f"{obj.label}: {'; '.join(failures)}; {region}: {exc.message}"
                        ) from None
                    raise type(exc)(f"{obj.label}: {exc.message}") from None
                failures.append(f"{region}: {exc.message}")  # try the failover region
        raise Unavailable(f"{obj.label}: Failed to fetch {what} from all regions")

    def _call(self, client: Any, operation: str, **args: Any) -> dict[str, Any]:
        method = getattr(client, _snake(operation))
        try:
            with metrics.backend_call("aws", operation):
                reply: dict[str, Any] = method(**args)
            return reply
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            message = f"{operation} {code}: {error.get('Message', '')}".rstrip(": ")
            if code in THROTTLED:
                raise Unavailable(f"throttled by AWS ({message}) after retries") from None
            if code in NOT_FOUND:
                raise NotFound(message) from None
            if code in DENIED:
                raise PermissionDenied(f"access denied: {message}") from None
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if status >= 500:
                raise Unavailable(message) from None
            raise InvalidArgument(message) from None
        except BotoCoreError as exc:
            raise Unavailable(f"{operation}: cannot reach AWS ({type(exc).__name__})") from None

    def _served_for(self, key: Hashable) -> Served | None:
        with self._lock:
            return self._served.get(key)


def _source(obj: MountObject) -> SecretSource | ParameterBatch | ParameterPath | KmsSource:
    source = obj.source
    assert isinstance(source, SecretSource | ParameterBatch | ParameterPath | KmsSource)
    return source


def _name_of(selector: str) -> str:
    """`name:3` or `name:label` → name; ARNs keep their colons."""
    if selector.startswith("arn:"):
        return selector if selector.count(":") <= 5 else selector.rsplit(":", 1)[0]
    return selector.split(":", 1)[0]


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")
