"""age identities from the pod's secrets, and unwrapping a SOPS data key with them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

AGE_SECRET = "sops-age-key"
"""The key of the Mount request's `secrets` (nodePublishSecretRef) holding age identities."""

_PREFIX = "AGE-SECRET-KEY-1"


class IdentityError(ValueError):
    """The pod's age key material does not parse; the message holds no key."""


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


def unwrap_age(entry: dict[str, Any], identities: Sequence[str]) -> bytes | None:
    """The data key of one `sops.age[]` entry, or None when no identity opens it."""
    import pyrage

    enc = entry.get("enc")
    if not isinstance(enc, str) or not identities:
        return None
    parsed = [pyrage.x25519.Identity.from_str(line) for line in identities]
    try:
        key: bytes = pyrage.decrypt(enc.encode(), parsed)
    except Exception:  # pyrage.DecryptError: not for these identities, or corrupt
        return None
    return key
