"""Every Vault HTTP status maps to a gRPC code chosen with the driver's retry policy in
mind: UNAVAILABLE (retried at once by the driver) only where a second later can differ,
and never INTERNAL, which means a bug of ours."""

from __future__ import annotations

import grpc

from csiprovider.stores.vault.errors import for_status

RETRIED = {412, 429, 500, 502, 503, 504}


EXPECTED = {
    401: grpc.StatusCode.PERMISSION_DENIED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    400: grpc.StatusCode.INVALID_ARGUMENT,
    409: grpc.StatusCode.FAILED_PRECONDITION,
    307: grpc.StatusCode.FAILED_PRECONDITION,
}


def test_each_status_has_its_code() -> None:
    for status in [*range(300, 310), *range(400, 452), *range(500, 512)]:
        code = for_status(status, "Vault said no").code
        assert code is not grpc.StatusCode.INTERNAL, status
        assert (code is grpc.StatusCode.UNAVAILABLE) is (status in RETRIED or status >= 500)
        assert code is EXPECTED.get(status, code), status
