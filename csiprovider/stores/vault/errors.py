"""Vault error text, worded as vault-csi-provider words it (operators grep pod events).

Vault's own messages ("service account name not authorized", "permission denied") are
propagated verbatim; they describe the request, never secret values.
"""

from __future__ import annotations

import json
from typing import Protocol

from csiprovider.errors import (
    FailedPrecondition,
    InvalidArgument,
    MountError,
    NotFound,
    PermissionDenied,
    Unavailable,
)


class Reply(Protocol):
    """What an error message needs of a reply (`vault.auth.Reply`)."""

    @property
    def status_code(self) -> int: ...

    @property
    def text(self) -> str: ...


def api_error(method: str, url: str, response: Reply) -> str:
    """`Error making API request. URL: GET <url> Code: 403. Errors: * permission denied`."""
    errors: list[str] = []
    try:
        body = json.loads(response.text or "{}")
        errors = [str(e) for e in body.get("errors") or []] if isinstance(body, dict) else []
    except ValueError:
        pass
    listed = "".join(f" * {e}" for e in errors)
    return (
        f"Error making API request. URL: {method.upper()} {url} Code: "
        f"{response.status_code}. Errors:{listed}"
    )


def for_status(status: int, message: str) -> MountError:
    """The gRPC status a Vault HTTP status maps to."""
    if status in (401, 403):
        return PermissionDenied(message)
    if status == 404:
        return NotFound(message)
    if status in (400, 405, 422):
        return InvalidArgument(message)
    if status in (412, 429) or status >= 500:
        return Unavailable(message)
    # Any other answer (409, a redirect not followed, ...) is Vault's refusal of what the
    # SPC asks: not retried by the driver, and not a bug of ours (INTERNAL).
    return FailedPrecondition(message)
