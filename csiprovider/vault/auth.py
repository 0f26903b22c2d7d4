"""Vault logins and tokens, one per identity (pod + connection + role + mount).

The anchor logs in lazily and only notices an expired token when a read gets 403. We
track the token's TTL: renew it (renew-self) once past the renewal point when it is
renewable, log in again before it expires otherwise, and still re-login once on a 403.
A valid token is never replaced, so repeated Mounts of a pod cause no logins.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import hvac
import requests

from csiprovider.errors import FailedPrecondition, MountError, PermissionDenied, Unavailable
from csiprovider.vault.errors import api_error, for_status
from csiprovider.vault.http import session_for
from csiprovider.vault.source import VaultIdentity

TokenSource = Callable[[VaultIdentity], str]
"""Issues a service-account JWT for the identity (the Kubernetes TokenRequest API)."""

REQUEST_TIMEOUT = 30.0


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
class Session:
    """An hvac client for one identity, with its token and counters."""

    identity: VaultIdentity
    client: Any  # hvac.Client
    base_url: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    token: Token | None = None
    logins: int = 0
    renewals: int = 0


class Authenticator:
    """Hands out a logged-in session per identity; LRU-bounded like the anchor's cache."""

    def __init__(
        self,
        token_source: TokenSource | None = None,
        cache_size: int = 1000,
        renew_fraction: float = 2 / 3,
    ) -> None:
        self._token_source = token_source
        self._cache_size = cache_size
        self._renew_fraction = renew_fraction
        self._sessions: OrderedDict[VaultIdentity, Session] = OrderedDict()
        self._lock = threading.Lock()

    def session(self, identity: VaultIdentity) -> Session:
        with self._lock:
            found = self._sessions.get(identity)
            if found is not None:
                self._sessions.move_to_end(identity)
                return found
            try:
                http, base = session_for(identity.connection)
            except ValueError as exc:
                raise FailedPrecondition(f"invalid Vault TLS settings: {exc}") from None
            created = Session(
                identity=identity,
                # token="" so hvac never picks up VAULT_TOKEN or ~/.vault-token: every
                # request carries the pod's own token, passed explicitly.
                client=hvac.Client(
                    url=base, token="", namespace=identity.connection.namespace or None,
                    session=http, verify=http.verify, cert=http.cert,  # hvac ignores a False
                    adapter=hvac.adapters.RawAdapter, timeout=REQUEST_TIMEOUT,
                ),
                base_url=base,
            )
            if self._cache_size > 0:
                self._sessions[identity] = created
                while len(self._sessions) > self._cache_size:
                    self._sessions.popitem(last=False)
            return created

    def token(self, session: Session, jwt: str, *, stale: str | None = None) -> str:
        """A valid token for the session; `stale` is a token Vault just refused (403)."""
        with session.lock:
            now = time.monotonic()
            current = session.token
            if current is not None and current.value != stale and not current.expired(now):
                if now < current.renew_point(self._renew_fraction):
                    return current.value
                if current.renewable and self._renew(session, current):
                    return current.value
            return self._login(session, jwt)

    def _renew(self, session: Session, current: Token) -> bool:
        try:
            response = session.client.adapter.request(
                "POST", "/v1/auth/token/renew-self", raise_exception=False,
                headers={"X-Vault-Token": current.value},
            )
        except requests.RequestException:
            return False
        auth = _json(response).get("auth") if response.ok else None
        if not isinstance(auth, dict):
            return False
        current.obtained = time.monotonic()
        current.ttl = float(auth.get("lease_duration") or 0)
        current.renewable = bool(auth.get("renewable"))
        session.renewals += 1
        return True

    def _login(self, session: Session, jwt: str) -> str:
        identity = session.identity
        if not jwt:
            if self._token_source is None:
                raise FailedPrecondition(
                    f"no service account token for audience {identity.audience or 'vault'!r} "
                    "in the Mount request, and this daemon has no Kubernetes API access to "
                    "request one; add the audience to the CSIDriver's tokenRequests"
                )
            jwt = self._token_source(identity)
        path = f"/v1/auth/{identity.auth_mount}/login"
        url = session.base_url + path
        try:
            response = session.client.adapter.request(
                "POST", path, json={"jwt": jwt, "role": identity.role}, raise_exception=False,
            )
        except requests.RequestException as exc:
            raise Unavailable(f"failed to login: cannot reach Vault at {url} "
                              f"({type(exc).__name__})") from None
        if not response.ok:
            raise for_status(response.status_code,
                             f"failed to login: {api_error('POST', url, response)}")
        auth = _json(response).get("auth")
        if not isinstance(auth, dict) or not isinstance(auth.get("client_token"), str):
            # The anchor dereferences a missing auth block and crashes (issue #310).
            raise PermissionDenied(
                f"failed to login: Vault's reply to POST {url} has no auth block; check that "
                f"auth mount {identity.auth_mount!r} is a kubernetes or jwt auth method"
            )
        session.token = Token(
            value=auth["client_token"], obtained=time.monotonic(),
            ttl=float(auth.get("lease_duration") or 0), renewable=bool(auth.get("renewable")),
        )
        session.logins += 1
        return session.token.value


def _json(response: requests.Response) -> dict[str, Any]:
    try:
        value = response.json()
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


__all__ = ["Authenticator", "MountError", "Session", "Token", "TokenSource"]
