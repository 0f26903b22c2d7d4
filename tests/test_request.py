"""MountRequest validation: bad requests fail with INVALID_ARGUMENT and a clear fix."""

from __future__ import annotations

import json

import grpc
import pytest

from csiprovider.errors import InvalidArgument
from csiprovider.request import parse_mount_request
from csiprovider.v1alpha1 import service_pb2 as pb
from testkit.requests import attributes, mount_request


def test_parses_driver_request() -> None:
    tokens = {
        "vault": {"token": "eyJhbGciOi.tok.sig", "expirationTimestamp": "2026-11-23T10:00:00Z"}
    }
    req = mount_request([], extra={"csi.storage.k8s.io/serviceAccount.tokens": json.dumps(tokens)})
    req.secrets = json.dumps({"username": "u"})
    req.current_object_version.append(pb.ObjectVersion(id="a", version="v1"))
    params = parse_mount_request(req)
    assert params.default_mode == 0o644
    assert params.pod.namespace == "default"
    assert params.pod.name == "app-0"
    assert params.pod.service_account == "app"
    assert params.spc_name == "app-secrets"
    assert params.tokens["vault"].expiration == "2026-11-23T10:00:00Z"
    assert params.secrets == {"username": "u"}
    assert params.current_versions == {"a": "v1"}
    # Neither the token nor the nodePublishSecretRef data appear when params are logged.
    assert "tok.sig" not in repr(params) and "username" not in repr(params)


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("attributes", "", "missing attributes"),
        ("attributes", "{not json", "failed to parse attributes as JSON"),
        (
            "attributes",
            "[1, 2]",
            "MountRequest.attributes must be a JSON object of strings, got list",
        ),
        ("attributes", '{"objects": 5}', "the value of 'objects' is not a string"),
        ("secrets", "{oops", "failed to parse secrets as JSON"),
        ("permission", "", "missing permission"),
        ("permission", '"0644"', "invalid permission"),
        ("permission", "1000", "invalid permission"),
        ("permission", "-1", "invalid permission"),
        ("permission", "true", "invalid permission"),
        ("target_path", "", "missing target path"),
        ("target_path", "relative/dir", "must be a clean absolute"),
    ],
)
def test_bad_request_fields(field: str, value: str, needle: str) -> None:
    req = mount_request([])
    setattr(req, field, value)
    with pytest.raises(InvalidArgument) as info:
        parse_mount_request(req)
    assert info.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert needle in info.value.message


def test_bad_tokens_attribute_does_not_echo_token() -> None:
    extra = {"csi.storage.k8s.io/serviceAccount.tokens": '{"vault": {"tok": "SECRETJWT"}}'}
    req = mount_request([], extra=extra)
    with pytest.raises(InvalidArgument) as info:
        parse_mount_request(req)
    assert "'vault' has no string \"token\"" in info.value.message
    assert "SECRETJWT" not in info.value.message


def test_json_error_does_not_echo_attribute_values() -> None:
    raw = json.dumps(attributes([])).replace("}", ",SUPERSECRET}")
    with pytest.raises(InvalidArgument) as info:
        parse_mount_request(mount_request(raw_attributes=raw))
    assert "SUPERSECRET" not in info.value.message
