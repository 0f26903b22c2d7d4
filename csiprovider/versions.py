"""Object versions: HMAC-SHA256 over an object's config and its content.

A keyed MAC (not a bare hash) so a version published in SecretProviderClassPodStatus
does not let anyone confirm a guessed secret, nor tell that two objects are equal.
With a fixed key (`--hmac-key-file`) versions survive daemon restarts; without one a
random key is drawn at start and every version changes on restart.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from pathlib import Path

MIN_KEY_BYTES = 16


class Versioner:
    """Computes object versions with one key."""

    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(f"HMAC key too short: need at least {MIN_KEY_BYTES} bytes")
        self._key = key
        self.secret_name = ""  # the Kubernetes Secret the key came from by default

    def __repr__(self) -> str:
        return "Versioner(key=<hidden>)"

    def rekey(self, key: bytes) -> bool:
        """Use a new key from now on (the key Secret changed); True when it differs."""
        if len(key) < MIN_KEY_BYTES or hmac.compare_digest(key, self._key):
            return False
        self._key = key
        return True

    @classmethod
    def random(cls) -> Versioner:
        return cls(secrets.token_bytes(32))

    @classmethod
    def from_file(cls, path: str | Path) -> Versioner:
        """Read the key file; surrounding whitespace (a trailing newline) is not key."""
        key = Path(path).read_bytes().strip()
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(
                f"HMAC key file {path} holds {len(key)} bytes; write at least {MIN_KEY_BYTES} "
                "random bytes, e.g. `head -c 32 /dev/urandom | base64 > FILE`"
            )
        return cls(key)

    def version(self, spec_json: str, content: bytes) -> str:
        """URL-safe base64 of HMAC(key, len(spec) || spec || content)."""
        spec = spec_json.encode()
        mac = hmac.new(self._key, len(spec).to_bytes(8, "big") + spec, hashlib.sha256)
        mac.update(content)
        return base64.urlsafe_b64encode(mac.digest()).decode()
