"""Vault logins: every pod logs in with its own token, once per pod lifetime.

A login is kept per pod (pod UID + connection + auth mount + role + audience + namespace),
as vault-csi-provider keeps its clients: one login on the pod's first Mount, none on
republishes. We also track the token's TTL: renew it (renew-self) once past the renewal
point when it is renewable, log in again before it expires otherwise, and still log in
again once when a read gets 403. A pod whose own login fails is refused with Vault's
error, whatever is known of other pods.

The login reply says how Vault authorizes the pod: its entity, its policies and the auth
metadata. Pods whose replies agree on all of them, for the same role and connection, are
one authorization class (`VaultGrant.scope`) and may share reads; a reply without an
entity shares with nobody. See docs/security.md.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

import hvac
import requests

from csiprovider.caches import LRU
from csiprovider.errors import FailedPrecondition, PermissionDenied, Unavailable
from csiprovider.limits import MAX_REPLY_BYTES
from csiprovider.stores import Grant
from csiprovider.stores.vault.config import VaultConnection
from csiprovider.stores.vault.errors import api_error, for_status
from csiprovider.stores.vault.http import session_for
from csiprovider.stores.vault.source import VaultIdentity

TokenSource = Callable[[VaultIdentity], str]
"""Issues a service-account JWT for the identity (the Kubernetes TokenRequest API)."""

REQUEST_TIMEOUT = 30.0


@dataclass(frozen=True)
class Reply:
    """A Vault reply, read whole but never past MAX_REPLY_BYTES."""

    status_code: int
    content: bytes = field(repr=False)

    @property
    def ok(self) -> bool:
        return 200 <= self.status_code < 400

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)


class BoundedAdapter(hvac.adapters.RawAdapter):  # type: ignore[misc]
    """hvac's raw adapter, reading every reply as a bounded stream: a reply larger than
    MAX_REPLY_BYTES is refused (FailedPrecondition) before it is all in memory, so no
    reply can take the daemon past its memory limit. It answers a `Reply` and never
    raises for an HTTP status: callers word Vault's answers as vault-csi-provider does."""

    def request(
        self,
        method: str,
        url: str,
        headers: dict[str, str] | None = None,
        raise_exception: bool = True,
        **kwargs: Any,
    ) -> Reply:
        response: requests.Response = super().request(
            method, url, headers=headers, raise_exception=False, stream=True, **kwargs
        )
        with response:
            body = bytearray()
            for chunk in response.iter_content(64 * 1024):
                body += chunk
                if len(body) > MAX_REPLY_BYTES:
                    raise FailedPrecondition(
                        f"Vault's reply to {method.upper()} {self.base_uri}{url} is larger "
                        f"than {MAX_REPLY_BYTES} bytes, more than one object may hold"
                    )
        return Reply(response.status_code, bytes(body))


@dataclass
class Client:
    """One Vault connection (its pooled, TLS-configured session), shared by every pod
    using it. It holds no identity: each call names the pod's token."""

    session: requests.Session = field(repr=False)
    base_url: str
    namespace: str | None = None

    def api(self, token: str = "", timeout: float = REQUEST_TIMEOUT) -> Any:
        """hvac's client API for one call as one pod. `token=""` also keeps hvac from
        picking up VAULT_TOKEN or ~/.vault-token: only a pod's own token is ever sent."""
        return hvac.Client(
            url=self.base_url,
            token=token,
            namespace=self.namespace,
            session=self.session,
            verify=self.session.verify,
            cert=self.session.cert,  # hvac ignores a session's False verify
            adapter=BoundedAdapter,
            timeout=timeout,
        )

    def request(
        self, method: str, path: str, token: str = "", timeout: float = REQUEST_TIMEOUT, **kw: Any
    ) -> Reply:
        """vault-csi-provider's arbitrary request (any path, method, query and body),
        for which hvac has no API method: its adapter alone, as the pod. Every Vault
        read of a Mount comes here, so no whole hvac.Client (~90 µs) is built for it."""
        adapter = BoundedAdapter(
            base_uri=self.base_url,
            token=token,
            namespace=self.namespace,
            session=self.session,
            verify=self.session.verify,
            cert=self.session.cert,
            timeout=timeout,
        )
        reply: Reply = adapter.request(method, path, **kw)
        return reply


@dataclass
class Token:
    value: str = field(repr=False)
    obtained: float
    ttl: float  # seconds; 0 = no expiry
    renewable: bool

    def renew_point(self, fraction: float) -> float:
        return self.obtained + self.ttl * fraction if self.ttl else float("inf")

    def expired(self, now: float) -> bool:
        return bool(self.ttl) and now >= self.obtained + self.ttl - 1.0


@dataclass
class Login:
    """One pod's login: its token and the class Vault's reply put it in."""

    identity: VaultIdentity
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    token: Token | None = None
    scope: Hashable = None


@dataclass(frozen=True)
class VaultGrant(Grant):
    """The pod's login; reads run with its token."""

    login: Login = field(compare=False, repr=False)
    client: Client = field(compare=False, repr=False)


def scope_of(identity: VaultIdentity, auth: Mapping[str, Any]) -> Hashable:
    """The authorization class of a login reply: equal only when Vault gave the same
    entity, token and identity policies and auth metadata, through the same connection,
    auth mount and role. No entity: the pod's own class."""
    entity = auth.get("entity_id")
    if not isinstance(entity, str) or not entity:
        return ("pod", identity)
    policies = auth.get("token_policies")
    if policies is None:
        policies = auth.get("policies")
    metadata = auth.get("metadata")
    return (
        "entity",
        identity.connection,
        identity.auth_mount,
        identity.role,
        entity,
        tuple(sorted(str(p) for p in policies or ())),
        tuple(sorted(str(p) for p in auth.get("identity_policies") or ())),
        tuple(sorted((str(k), str(v)) for k, v in (metadata or {}).items()))
        if isinstance(metadata, Mapping)
        else ("?", str(metadata)),
    )


class Authenticator:
    """Pod logins and per-connection clients, both LRU-bounded."""

    def __init__(
        self,
        token_source: TokenSource | None = None,
        cache_size: int = 1000,
        renew_fraction: float = 2 / 3,
    ) -> None:
        self._token_source = token_source
        self._cache_size = max(1, cache_size)
        self._renew_fraction = renew_fraction
        self._clients: LRU[VaultConnection, Client] = LRU(self._cache_size)
        self._logins: LRU[VaultIdentity, Login] = LRU(self._cache_size)
        self._lock = threading.Lock()

    def client(self, connection: VaultConnection) -> Client:
        with self._lock:
            found = self._clients.get(connection)
            if found is not None:
                return found
            try:
                http, base = session_for(connection)
            except ValueError as exc:
                raise FailedPrecondition(f"invalid Vault TLS settings: {exc}") from None
            created = Client(session=http, base_url=base, namespace=connection.namespace or None)
            self._clients.put(connection, created)
            return created

    def current(self, identity: VaultIdentity) -> VaultGrant | None:
        """The pod's grant while its token is before the renewal point (no I/O)."""
        with self._lock:
            login = self._logins.get(identity)
            client = self._clients.get(identity.connection)
        if login is None or client is None:
            return None
        token, scope = login.token, login.scope
        now = time.monotonic()
        if token is None or token.expired(now) or now >= token.renew_point(self._renew_fraction):
            return None
        return VaultGrant(scope=scope, login=login, client=client)

    def authorize(self, identity: VaultIdentity, jwt: str) -> VaultGrant:
        """Log the pod in (or renew its token) with its own JWT."""
        client = self.client(identity.connection)
        login = self._login_record(identity)
        self.token(login, client, jwt)
        return VaultGrant(scope=login.scope, login=login, client=client)

    def token(
        self,
        login: Login,
        client: Client,
        jwt: str,
        *,
        stale: str | None = None,
        renew: bool = True,
    ) -> str:
        """A valid token for the pod; `stale` is a token Vault just refused (403).
        `renew=False`: a token past its renewal point is still used (reads right after
        `authorize`, which renewed it when due)."""
        with login.lock:
            now = time.monotonic()
            current = login.token
            if current is not None and current.value != stale and not current.expired(now):
                if not renew or now < current.renew_point(self._renew_fraction):
                    return current.value
                if current.renewable and self._renew(login, client, current):
                    return current.value
            return self._login(login, client, jwt)

    def _login_record(self, identity: VaultIdentity) -> Login:
        with self._lock:
            found = self._logins.get(identity)
            if found is None:
                found = Login(identity)
                self._logins.put(identity, found)
            return found

    def _renew(self, login: Login, client: Client, current: Token) -> bool:
        try:
            response = client.api(current.value).auth.token.renew_self()
        except (requests.RequestException, FailedPrecondition):
            return False
        auth = _json(response).get("auth") if response.ok else None
        if not isinstance(auth, dict):
            return False
        current.obtained = time.monotonic()
        current.ttl = float(auth.get("lease_duration") or 0)
        current.renewable = bool(auth.get("renewable"))
        if auth.get("entity_id") is not None:
            login.scope = scope_of(login.identity, auth)
        return True

    def _login(self, login: Login, client: Client, jwt: str) -> str:
        identity = login.identity
        login.token = None  # a failed login leaves nothing usable behind
        if not jwt:
            if self._token_source is None:
                raise FailedPrecondition(
                    f"no service account token for audience {identity.audience or 'vault'!r} "
                    "in the Mount request, and this daemon has no Kubernetes API access to "
                    "request one; add the audience to the CSIDriver's tokenRequests"
                )
            jwt = self._token_source(identity)
        path = f"/v1/auth/{identity.auth_mount}/login"
        url = client.base_url + path
        try:
            response = client.api().auth.kubernetes.login(  # jwt auth takes the same body
                role=identity.role, jwt=jwt, use_token=False, mount_point=identity.auth_mount
            )
        except requests.RequestException as exc:
            raise Unavailable(
                f"failed to login: cannot reach Vault at {url} ({type(exc).__name__})"
            ) from None
        if not response.ok:
            raise for_status(
                response.status_code, f"failed to login: {api_error('POST', url, response)}"
            )
        auth = _json(response).get("auth")
        if not isinstance(auth, dict) or not isinstance(auth.get("client_token"), str):
            # vault-csi-provider dereferences a missing auth block and crashes (its #310).
            raise PermissionDenied(
                f"failed to login: Vault's reply to POST {url} has no auth block; check that "
                f"auth mount {identity.auth_mount!r} is a kubernetes or jwt auth method"
            )
        login.scope = scope_of(identity, auth)
        login.token = Token(
            value=auth["client_token"],
            obtained=time.monotonic(),
            ttl=float(auth.get("lease_duration") or 0),
            renewable=bool(auth.get("renewable")),
        )
        return login.token.value


def _json(response: Reply) -> dict[str, Any]:
    try:
        value = response.json()
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


__all__ = [
    "Authenticator",
    "BoundedAdapter",
    "Client",
    "Login",
    "Reply",
    "Token",
    "TokenSource",
    "VaultGrant",
    "scope_of",
]
