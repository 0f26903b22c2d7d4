"""age identities from the pod's secrets, and unwrapping a SOPS data key with them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

AGE_SECRET = "sops-age-key"
"""The key of the Mount request's `secrets` (nodePublishSecretRef) holding age identities."""

_PREFIX = "AGE-SECRET-KEY-1"


class IdentityError(ValueError):
    """The pod's age key material does not parse; the message holds no key."""


MAX_IDENTITIES = 32  # age identities in one Secret: each is tried only where it fits
MAX_ENC_BYTES = 8192  # one wrapped data key (one X25519 stanza: ~350 bytes armored)


def age_identities(text: str) -> tuple[str, ...]:
    """The `AGE-SECRET-KEY-1...` lines of an age key file (comments and blanks skipped)."""
    found = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not line.upper().startswith(_PREFIX):
            raise IdentityError(f"line {number} of {AGE_SECRET} is not an age identity "
                                f"({_PREFIX}...)")
        found.append(line)
    if not found:
        raise IdentityError(f"{AGE_SECRET} holds no age identity ({_PREFIX}...)")
    if len(found) > MAX_IDENTITIES:
        raise IdentityError(f"{AGE_SECRET} holds {len(found)} age identities, more than "
                            f"{MAX_IDENTITIES}; give the pod the keys it needs")
    check_identities(found)
    return tuple(found)


def check_identities(identities: Sequence[str]) -> None:
    """Parse every identity now, so a malformed key is the pod's error, not a decrypt."""
    import pyrage

    for number, line in enumerate(identities, 1):
        try:
            pyrage.x25519.Identity.from_str(line)
        except Exception:  # pyrage.IdentityError; pyrage raises its own types
            raise IdentityError(f"age identity {number} of {AGE_SECRET} is malformed"
                                ) from None


class AgeKeys:
    """The pod's age identities by recipient (`age1...`), parsed once per fetch: an
    entry is opened only by the identity of its recipient, so a document with many
    entries and a Secret with many keys costs one X25519 per entry at most."""

    def __init__(self, identities: Sequence[str]) -> None:
        import pyrage

        self._by_recipient: dict[str, Any] = {}
        for line in identities:
            identity = pyrage.x25519.Identity.from_str(line)
            self._by_recipient[str(identity.to_public())] = identity

    def unwrap(self, entry: dict[str, Any]) -> bytes | None:
        """The data key of one `sops.age[]` entry, or None when no identity opens it."""
        import pyrage

        identity = self._by_recipient.get(str(entry.get("recipient") or ""))
        enc = entry.get("enc")
        if identity is None or not isinstance(enc, str) or len(enc) > MAX_ENC_BYTES:
            return None
        try:
            key: bytes = pyrage.decrypt(enc.encode(), [identity])
        except Exception:  # pyrage.DecryptError: not for this identity, or corrupt
            return None
        return key
