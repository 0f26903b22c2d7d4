"""HTTP sessions for Vault: TLS settings per connection, and `unix://` addresses.

vault-helm points `VAULT_ADDR` at the Vault Agent's Unix socket, so `unix:///path` must
work; requests has no Unix transport, hence the small adapter here.
"""

from __future__ import annotations

import logging
import socket
import warnings
from typing import Any
from urllib.parse import unquote, urlparse

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection
from urllib3.connectionpool import HTTPConnectionPool
from urllib3.exceptions import InsecureRequestWarning

from csiprovider.stores.vault.config import VaultConnection

log = logging.getLogger("csiprovider.stores.vault")
warnings.simplefilter("ignore", InsecureRequestWarning)

UNIX_BASE = "http://vault.unix"
POOL_SIZE = 32  # the host part is ignored: every request goes to the socket


class _UnixConnection(HTTPConnection):
    def __init__(self, socket_path: str, **kw: Any) -> None:
        super().__init__("localhost", **kw)
        self._socket_path = socket_path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout if isinstance(self.timeout, int | float) else None)
        sock.connect(self._socket_path)
        self.sock = sock


class _UnixPool(HTTPConnectionPool):
    def __init__(self, socket_path: str, **kw: Any) -> None:
        super().__init__("localhost", **kw)
        self._socket_path = socket_path

    def _new_conn(self) -> HTTPConnection:
        return _UnixConnection(self._socket_path, timeout=self.timeout.connect_timeout)


class _UnixAdapter(HTTPAdapter):
    def __init__(self, socket_path: str) -> None:
        self._socket_path = socket_path
        super().__init__()

    def get_connection_with_tls_context(self, *args: Any, **kw: Any) -> HTTPConnectionPool:
        return _UnixPool(self._socket_path)


class _SniAdapter(HTTPAdapter):
    """Sends `server_name` as SNI and checks the certificate against it."""

    def __init__(self, server_name: str) -> None:
        self._server_name = server_name
        super().__init__(pool_maxsize=POOL_SIZE)

    def init_poolmanager(self, *args: Any, **kw: Any) -> None:
        kw["server_hostname"] = self._server_name
        kw["assert_hostname"] = self._server_name
        super().init_poolmanager(*args, **kw)


def session_for(connection: VaultConnection) -> tuple[requests.Session, str]:
    """A session configured for the connection, and the base URL to use with it."""
    session = requests.Session()
    # Objects of a Mount are fetched in parallel: keep enough pooled connections for them.
    pooled = HTTPAdapter(pool_connections=4, pool_maxsize=POOL_SIZE)
    session.mount("http://", pooled)
    session.mount("https://", pooled)
    session.trust_env = False  # proxies and netrc from the daemon's env are not Vault settings
    if connection.skip_verify:
        # The SPC or the operator asked for it; say so once per session, not per request.
        log.warning(
            "TLS verification disabled for Vault", extra={"fields": {"address": connection.address}}
        )
        session.verify = False
    elif connection.ca_cert:
        session.verify = connection.ca_cert
    elif connection.ca_path:
        session.verify = connection.ca_path
    if connection.client_cert or connection.client_key:
        if not (connection.client_cert and connection.client_key):
            raise ValueError("both client cert and client key must be provided")
        session.cert = (connection.client_cert, connection.client_key)
    address = connection.address
    if address.startswith("unix://"):
        path = unquote(urlparse(address).path)
        session.mount(UNIX_BASE, _UnixAdapter(path))
        return session, UNIX_BASE
    if connection.tls_server_name and address.startswith("https://"):
        session.mount(address.rstrip("/"), _SniAdapter(connection.tls_server_name))
    return session, address.rstrip("/")
