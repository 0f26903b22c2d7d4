"""Vault connection settings and their precedence: Vault env vars < daemon flags < SPC.

Each layer only overrides what it sets. `skip_verify` can only be switched on, as in the
Vault Go API that vault-csi-provider builds on: an SPC cannot re-enable verification an
operator disabled. It can disable it (`vaultSkipTLSVerify: "true"`), as in
vault-csi-provider, whose SecretProviderClasses we accept unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace

from csiprovider.compat.go.strconv import parse_bool

DEFAULT_ADDRESS = "https://127.0.0.1:8200"
DEFAULT_AUTH_MOUNT = "kubernetes"

_ENV = {
    "address": "VAULT_ADDR",
    "namespace": "VAULT_NAMESPACE",
    "ca_cert": "VAULT_CACERT",
    "ca_path": "VAULT_CAPATH",
    "tls_server_name": "VAULT_TLS_SERVER_NAME",
    "client_cert": "VAULT_CLIENT_CERT",
    "client_key": "VAULT_CLIENT_KEY",
}


@dataclass(frozen=True)
class VaultConnection:
    """How to reach Vault: part of every cache key, so it is hashable and complete."""

    address: str = DEFAULT_ADDRESS
    namespace: str = ""
    ca_cert: str = ""
    ca_path: str = ""
    tls_server_name: str = ""
    client_cert: str = ""
    client_key: str = ""
    skip_verify: bool = False

    def overlay(self, **values: str | bool) -> VaultConnection:
        """Apply non-empty values; `skip_verify` only ever turns on."""
        changes: dict[str, str | bool] = {}
        for name, value in values.items():
            if name == "skip_verify":
                if value:
                    changes[name] = True
            elif value:
                changes[name] = value
        return replace(self, **changes)  # type: ignore[arg-type]


def from_environment(env: Mapping[str, str] | None = None) -> VaultConnection:
    """The base layer: the standard Vault environment variables."""
    env = os.environ if env is None else env
    base = VaultConnection().overlay(**{k: env.get(v, "") for k, v in _ENV.items()})
    skip = env.get("VAULT_SKIP_VERIFY", "")
    if skip:
        try:
            base = base.overlay(skip_verify=parse_bool(skip))
        except ValueError:
            base = base.overlay(skip_verify=True)  # the Go API treats any set value loosely
    return base


@dataclass(frozen=True)
class VaultDefaults:
    """Daemon-level settings (flags), applied over the environment."""

    connection: VaultConnection
    auth_mount: str = DEFAULT_AUTH_MOUNT

    @classmethod
    def build(
        cls, auth_mount: str = "", env: Mapping[str, str] | None = None, **flags: str | bool
    ) -> VaultDefaults:
        known = {f.name for f in fields(VaultConnection)}
        unknown = set(flags) - known
        if unknown:
            raise TypeError(f"unknown Vault settings: {sorted(unknown)}")
        return cls(
            connection=from_environment(env).overlay(**flags),
            auth_mount=auth_mount or DEFAULT_AUTH_MOUNT,
        )
