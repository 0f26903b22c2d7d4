"""age identities from the pod's secrets, and unwrapping a SOPS data key with them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

AGE_SECRET = "sops-age-key"
"""The key of the Mount request's `secrets` (nodePublishSecretRef) holding age identities."""

_PREFIX = "AGE-SECRET-KEY-1"


class IdentityError(ValueError):
    """The pod's age key material does not parse; the message holds no key."""


MAX_IDENTITIES = 32  # age identities in one Secret: each is tried only where it fits
MAX_ENC_BYTES = 8192  # one wrapped data key (one X25519 stanza: ~350 bytes armored)


@dataclass(frozen=True)
class AgeIdentity:
    """One of the pod's age identities and its recipient (`age1...`), derived once when
    the request is parsed: a sops entry is opened only by the identity it names."""

    recipient: str
    secret: str = field(repr=False)


def age_identities(text: str) -> tuple[AgeIdentity, ...]:
    """The `AGE-SECRET-KEY-1...` lines of an age key file (comments and blanks skipped),
    each parsed now, so a malformed key is the pod's error, not a failed decrypt."""
    import pyrage

    lines = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not line.upper().startswith(_PREFIX):
            raise IdentityError(
                f"line {number} of {AGE_SECRET} is not an age identity ({_PREFIX}...)"
            )
        lines.append(line)
    if not lines:
        raise IdentityError(f"{AGE_SECRET} holds no age identity ({_PREFIX}...)")
    if len(lines) > MAX_IDENTITIES:
        raise IdentityError(
            f"{AGE_SECRET} holds {len(lines)} age identities, more than "
            f"{MAX_IDENTITIES}; give the pod the keys it needs"
        )
    found = []
    for number, line in enumerate(lines, 1):
        try:
            recipient = str(pyrage.x25519.Identity.from_str(line).to_public())
        except Exception:  # pyrage.IdentityError; pyrage raises its own types
            raise IdentityError(f"age identity {number} of {AGE_SECRET} is malformed") from None
        found.append(AgeIdentity(recipient, line))
    return tuple(found)


def unwrap_age(entry: dict[str, Any], identities: Sequence[AgeIdentity]) -> bytes | None:
    """The data key of one `sops.age[]` entry, or None when no identity opens it: only
    the identity of the entry's recipient is tried (one X25519 per entry at most)."""
    import pyrage

    recipient = entry.get("recipient")
    enc = entry.get("enc")
    if not isinstance(enc, str) or len(enc) > MAX_ENC_BYTES:
        return None
    for identity in identities:
        if identity.recipient == recipient:
            try:
                key: bytes = pyrage.decrypt(
                    enc.encode(), [pyrage.x25519.Identity.from_str(identity.secret)]
                )
            except Exception:  # pyrage.DecryptError: corrupt, or not this identity's
                return None
            return key
    return None
