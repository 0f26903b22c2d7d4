"""Errors a Mount can end with, each carrying the gRPC status the driver will see.

Messages end up in pod events, so they name the object and say how to fix it; they
never carry secret material (callers pass names and paths, not values).
"""

from __future__ import annotations

import grpc

MAX_MESSAGE_CHARS = 1024  # gRPC metadata and pod events stay small; see csiprovider.limits


def cap(message: str) -> str:
    """A message no longer than MAX_MESSAGE_CHARS."""
    if len(message) <= MAX_MESSAGE_CHARS:
        return message
    suffix = " … (truncated)"
    return message[: MAX_MESSAGE_CHARS - len(suffix)] + suffix


class MountError(Exception):
    """A Mount failure with the gRPC status code to answer with."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL

    def __init__(self, message: str) -> None:
        message = cap(message)
        super().__init__(message)
        self.message = message


class InvalidArgument(MountError):
    """The request or the SecretProviderClass is wrong; retrying will not help."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(MountError):
    """An object the SecretProviderClass names does not exist in its backend."""

    code = grpc.StatusCode.NOT_FOUND


class PermissionDenied(MountError):
    """The pod's identity may not read an object."""

    code = grpc.StatusCode.PERMISSION_DENIED


class Unavailable(MountError):
    """A backend could not be reached; the driver will retry the Mount."""

    code = grpc.StatusCode.UNAVAILABLE


class FailedPrecondition(MountError):
    """The daemon is not set up for what the SecretProviderClass asks."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class ResourceExhausted(MountError):
    """The result is larger than the driver accepts."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class DeadlineExceeded(MountError):
    """The Mount did not finish within its deadline."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED
