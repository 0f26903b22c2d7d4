"""The Vault backend: one request per distinct source, with token handling, lease reuse
and retries of transient failures within the Mount's deadline."""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any

import requests

from csiprovider import metrics
from csiprovider.compat.go import encoding_json as gojson
from csiprovider.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    MountError,
    NotFound,
    Unavailable,
)
from csiprovider.model import Document, Listing, MountObject, Rendered
from csiprovider.stores import Grant, what_is_read
from csiprovider.stores.vault import extract
from csiprovider.stores.vault.auth import Authenticator, Reply, VaultGrant
from csiprovider.stores.vault.errors import api_error, for_status
from csiprovider.stores.vault.leases import LeaseCache, lease_of, now_pair
from csiprovider.stores.vault.source import KvListing, VaultSource

RETRY_STATUSES = frozenset({412, 429, 500, 502, 503, 504})
FIRST_BACKOFF = 0.2
MAX_BACKOFF = 2.0


@dataclass(frozen=True)
class KvItems:
    """A KV prefix as fetched: each key's response, by key."""

    items: Mapping[str, Mapping[str, Any]]


class VaultBackend:
    """Fetches Vault objects for the resolver (blocking; runs in its thread pool)."""

    shares_reads = True  # within one authorization class (the login's scope)

    def __init__(self, auth: Authenticator, leases: LeaseCache | None = None) -> None:
        self.auth = auth
        self.leases = leases if leases is not None else LeaseCache()

    def quick(self, obj: MountObject) -> bool:
        return False  # network I/O

    def principal(self, obj: MountObject) -> Hashable:
        return _source(obj).identity

    def grant(self, obj: MountObject) -> Grant | None:
        return self.auth.current(_source(obj).identity)

    def authorize(self, obj: MountObject, deadline: float) -> Grant:
        source = _source(obj)
        return self.auth.authorize(source.identity, source.jwt)

    def render(self, obj: MountObject, fetched: Mapping[str, Any] | KvItems) -> Rendered:
        if isinstance(fetched, KvItems):
            rendered = {k: extract.render(obj, v) for k, v in fetched.items.items()}
            return Listing({k: v for k, v in rendered.items() if isinstance(v, bytes | Document)})
        return extract.render(obj, fetched)

    def object_version(self, obj: MountObject, fetched: Any) -> str | None:
        return None  # the keyed hash of the content, as vault-csi-provider does

    def fetch(self, obj: MountObject, grant: Grant, deadline: float) -> Mapping[str, Any] | KvItems:
        """Read, or hand out a lease (or certificate) issued to the same class. A lease is
        only handed out once Vault confirms it is still live (lookup or renew): the
        resolver calls this for every first Mount, which must see current data."""
        source = _source(obj)
        assert isinstance(grant, VaultGrant)
        key = (grant.scope, what_is_read(source))
        lease = self.leases.get(key)
        now = time.monotonic()
        if lease is not None and now < lease.expires():
            if now < lease.renew_point(self.leases.renew_fraction):
                if not lease.lease_id or self._lease_live(grant, source, lease.lease_id, deadline):
                    return lease.response
            elif lease.renewable:
                ttl = self._renew_lease(grant, source, lease.lease_id, deadline)
                if ttl is not None:  # same credentials, longer life
                    lease.obtained, lease.ttl = time.monotonic(), ttl
                    return lease.response
        if source.listing is not None:
            return self._read_prefix(obj, grant, source, source.listing, deadline)
        response = self._read(obj, grant, source, deadline)
        fresh = lease_of(response, *now_pair())
        if fresh is not None:
            self.leases.put(key, fresh)
        else:
            self.leases.drop(key)
        return response

    def _read_prefix(
        self,
        obj: MountObject,
        grant: VaultGrant,
        source: VaultSource,
        listing: KvListing,
        deadline: float,
    ) -> KvItems:
        """KV prefix fetch: LIST the keys, read each (in this thread: bounded by maxItems)."""
        listed = self._read(obj, grant, source, deadline)
        keys = [
            str(k) for k in (listed.get("data") or {}).get("keys") or [] if not str(k).endswith("/")
        ]
        limit = listing.max_items
        if len(keys) > limit:
            raise InvalidArgument(
                f"{obj.label}: {len(keys)} secrets under the prefix, more "
                f"than maxItems {limit}; narrow the prefix or raise maxItems"
            )
        base = "/v1/" + listing.read_base.lstrip("/")
        items = {}
        for key in keys:
            read = dataclasses.replace(source, path=f"{base}/{key}", method="GET", listing=None)
            items[key] = self._read(obj, grant, read, deadline)
        return KvItems(items)

    def _read(
        self, obj: MountObject, grant: VaultGrant, source: VaultSource, deadline: float
    ) -> Mapping[str, Any]:
        url = grant.client.base_url + source.path
        where = f'couldn\'t read secret "{obj.object_name}": error requesting secret'
        response = self._send(obj, grant, source, deadline, where, url)
        if response.status_code == 204 or not response.content:
            raise NotFound(f'empty response from "{source.path}", warnings: []')
        try:
            parsed = gojson.loads(response.content)
        except (ValueError, RecursionError):
            raise Unavailable(
                f"{where}: the reply from {source.method} {url} is not JSON (a proxy in the "
                f"way?); point secretPath at an API path that returns JSON; {obj.label}"
            ) from None
        if not isinstance(parsed, dict):
            raise Unavailable(f"{where}: the reply from {url} is not a JSON object; {obj.label}")
        return parsed

    def _send(
        self,
        obj: MountObject,
        grant: VaultGrant,
        source: VaultSource,
        deadline: float,
        where: str,
        url: str,
    ) -> Reply:
        """Send with the pod's token: one re-login on 403, retries on 5xx/network."""
        backoff = FIRST_BACKOFF
        relogged = False
        token = self.auth.token(grant.login, grant.client, source.jwt, renew=False)
        while True:
            try:
                with metrics.backend_call("vault", source.method.upper()):
                    response = grant.client.request(
                        source.method,
                        source.path,
                        token,
                        max(0.1, deadline - time.monotonic()),
                        params=list(source.query) or None,
                        data=source.body or None,
                    )
            except requests.RequestException as exc:
                failure: MountError = Unavailable(
                    f"{where}: cannot reach Vault for {source.method} {url} "
                    f"({type(exc).__name__}); {obj.label}"
                )
            except FailedPrecondition as exc:  # a reply over the size limit
                raise FailedPrecondition(f"{obj.label}: {exc.message}") from None
            else:
                if response.status_code == 403 and not relogged:
                    relogged = True
                    token = self.auth.token(grant.login, grant.client, source.jwt, stale=token)
                    continue
                if response.ok or response.status_code == 204:
                    return response
                failure = for_status(
                    response.status_code, f"{where}: {api_error(source.method, url, response)}"
                )
                if response.status_code not in RETRY_STATUSES:
                    raise failure
            if time.monotonic() + backoff >= deadline:
                if isinstance(failure, Unavailable):
                    raise failure
                raise DeadlineExceeded(f"{failure.message} (gave up at the Mount deadline)")
            time.sleep(backoff / 2 + random.uniform(0, backoff / 2))  # jitter: nodes spread out
            backoff = min(backoff * 2, MAX_BACKOFF)

    def _lease_live(
        self, grant: VaultGrant, source: VaultSource, lease_id: str, deadline: float
    ) -> bool:
        """Vault still holds the lease (not revoked, not expired): looked up with the
        pod's own token (Vault's default policy allows it). Any doubt: re-issue."""
        reply = self._lease_call(grant, source, lease_id, deadline, renew=False)
        try:
            return reply is not None and float(reply.get("data", {}).get("ttl") or 0) > 0
        except (AttributeError, TypeError, ValueError):
            return False

    def _renew_lease(
        self, grant: VaultGrant, source: VaultSource, lease_id: str, deadline: float
    ) -> float | None:
        """Renew a lease; its new TTL, or None when it cannot be renewed (re-issue)."""
        reply = self._lease_call(grant, source, lease_id, deadline, renew=True)
        try:
            ttl = float(reply.get("lease_duration") or 0) if reply is not None else 0.0
        except (TypeError, ValueError):
            return None
        return ttl if ttl > 0 else None

    def _lease_call(
        self, grant: VaultGrant, source: VaultSource, lease_id: str, deadline: float, *, renew: bool
    ) -> dict[str, Any] | None:
        """sys/leases/lookup or sys/leases/renew through hvac's API, as the pod."""
        token = self.auth.token(grant.login, grant.client, source.jwt, renew=False)
        sys_api = grant.client.api(token, max(0.1, deadline - time.monotonic())).sys
        try:
            with metrics.backend_call("vault", "PUT"):
                response: Reply = (
                    sys_api.renew_lease(lease_id) if renew else sys_api.read_lease(lease_id)
                )
        except (requests.RequestException, FailedPrecondition):
            return None
        if not response.ok:
            return None
        try:
            body = response.json()
        except ValueError:
            return None
        return body if isinstance(body, dict) else None


def _source(obj: MountObject) -> VaultSource:
    source = obj.source
    assert isinstance(source, VaultSource)
    return source
