"""What a sops fetch decrypts, and with which of the pod's keys."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SopsSource:
    """An encrypted document committed in the SPC; `identity` is the pod's age key
    material (from its nodePublishSecretRef), never logged."""

    document: str = field(repr=False)
    format: str
    identity: tuple[str, ...] = field(repr=False, default=())
