"""`provider: vault` parameters parsed and validated as vault-csi-provider does."""

from __future__ import annotations

import json
from typing import Any

import grpc
import pytest

from csiprovider.errors import InvalidArgument
from csiprovider.model import Encoding
from csiprovider.request import parse_mount_request
from csiprovider.stores.vault.config import VaultDefaults
from csiprovider.stores.vault.dialect import VaultDialect, normalise_path
from csiprovider.stores.vault.source import VaultSource
from testkit.requests import mount_request

TOKENS = {
    "csi.storage.k8s.io/serviceAccount.tokens": json.dumps(
        {
            "vault": {"token": "jwt-vault", "expirationTimestamp": "2030-01-01T00:00:00Z"},
            "custom": {"token": "jwt-custom", "expirationTimestamp": "2030-01-01T00:00:00Z"},
        }
    )
}


def parse(params: dict[str, str], defaults: VaultDefaults | None = None) -> list[Any]:
    req = mount_request(extra={**TOKENS, **params})
    return VaultDialect(defaults or VaultDefaults.build(env={}))(parse_mount_request(req))


def error(params: dict[str, str]) -> str:
    with pytest.raises(InvalidArgument) as info:
        parse(params)
    assert info.value.code is grpc.StatusCode.INVALID_ARGUMENT
    return info.value.message


OBJ = "- objectName: db\n  secretPath: secret/data/db\n  secretKey: password\n"


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("secret/foo", "/v1/secret/foo"),
        ("/secret/foo", "/v1/secret/foo"),
        ("v1/secret/foo", "/v1/secret/foo"),
        ("/v1/secret/foo", "/v1/secret/foo"),
        ("", "/v1/"),
        ("/v2/x", "/v1/v2/x"),
        ("/v1/v1/", "/v1/v1/"),
    ],
)
def test_path_normalisation(raw: str, want: str) -> None:
    assert normalise_path(raw) == want


def test_objects_and_identity() -> None:
    (obj,) = parse(
        {
            "roleName": "app",
            "vaultAddress": "http://vault:8200",
            "vaultAuthMountPath": "jwt",
            "audience": "custom",
            "objects": OBJ + "  filePermission: 0600\n  encoding: BASE64\n",
        }
    )
    source = obj.source
    assert isinstance(source, VaultSource)
    assert source.path == "/v1/secret/data/db" and source.method == "GET"
    assert source.identity.connection.address == "http://vault:8200"
    assert source.identity.auth_mount == "jwt" and source.identity.role == "app"
    assert source.identity.pod_uid and source.identity.service_account == "app"
    assert source.jwt == "jwt-custom"  # the token for the SPC's audience
    assert obj.mode == 0o600 and obj.encoding is Encoding.BASE64
    assert "jwt-custom" not in repr(obj)


def test_precedence_env_flags_spc() -> None:
    env = {
        "VAULT_ADDR": "http://env:8200",
        "VAULT_NAMESPACE": "env-ns",
        "VAULT_CACERT": "/env/ca.pem",
    }
    flags = VaultDefaults.build(auth_mount="flagmount", env=env, address="http://flag:8200")
    (obj,) = parse({"roleName": "r", "objects": OBJ}, flags)
    conn = obj.source.identity.connection
    assert (conn.address, conn.namespace, conn.ca_cert) == (
        "http://flag:8200",
        "env-ns",
        "/env/ca.pem",
    )
    assert obj.source.identity.auth_mount == "flagmount"
    (obj,) = parse(
        {
            "roleName": "r",
            "objects": OBJ,
            "vaultAddress": "unix:///run/agent.sock",
            "vaultKubernetesMountPath": "k8s",
        },
        flags,
    )
    assert obj.source.identity.connection.address == "unix:///run/agent.sock"
    assert obj.source.identity.auth_mount == "k8s"


def test_skip_verify_can_only_turn_off_verification() -> None:
    on = VaultDefaults.build(env={}, skip_verify=True)
    (obj,) = parse({"roleName": "r", "objects": OBJ, "vaultSkipTLSVerify": "false"}, on)
    assert obj.source.identity.connection.skip_verify is True
    (obj,) = parse({"roleName": "r", "objects": OBJ, "vaultSkipTLSVerify": "T"})
    assert obj.source.identity.connection.skip_verify is True


def test_query_and_args_are_part_of_the_request() -> None:
    a, b = parse(
        {
            "roleName": "r",
            "objects": (
                "- {objectName: a, secretPath: 'pki/issue/web?b=2&a=1', method: PUT,"
                " secretArgs: {common_name: a.example.com}}\n"
                "- {objectName: b, secretPath: 'pki/issue/web?b=2&a=1', method: PUT,"
                " secretArgs: {common_name: b.example.com}}\n"
            ),
        }
    )
    assert a.source.query == (("a", "1"), ("b", "2"))
    assert a.source.body == '{"common_name":"a.example.com"}'
    assert a.source != b.source  # vault-csi-provider would hand both the same certificate


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {
                "roleName": "r",
                "objects": OBJ,
                "vaultKubernetesMountPath": "a",
                "vaultAuthMountPath": "",
            },
            "cannot set both vaultKubernetesMountPath and vaultAuthMountPath",
        ),
        (
            {"roleName": "r", "objects": OBJ, "vaultSkipTLSVerify": "yes"},
            'strconv.ParseBool: parsing "yes": invalid syntax',
        ),
        ({"objects": OBJ}, "missing 'roleName' in SecretProviderClass definition"),
        (
            {"roleName": "r"},
            "no secrets configured - the provider will not read any secret material",
        ),
        (
            {"roleName": "r", "objects": OBJ + OBJ + OBJ},
            "each `objectName` within a SecretProviderClass must be unique, but the following keys "
            "were duplicated: db, db",
        ),
        (
            {"roleName": "r", "objects": OBJ + "  encoding: rot13\n"},
            "invalid encoding type. Should be utf-8, base64, or hex",
        ),
        (
            {"roleName": "r", "objects": "- {objectName: a, secretPath: 'x?a=%zz'}"},
            "failed to parse query parameters from secretPath 'x?a=%zz' for objectName 'a': "
            'invalid URL escape "%zz"',
        ),
        (
            {"roleName": "r", "objects": "- {objectName: ../a, secretPath: x}"},
            "objectName '../a' cannot be a file name",
        ),
        (
            {"roleName": "r", "objects": "- {objectName: a, secretPath: x, secretFormat: xml}"},
            "invalid secretFormat 'xml'",
        ),
        (
            {"roleName": "r", "objects": "- objectName: a\n  objectName: b\n"},
            "failed to parse objects",
        ),
    ],
)
def test_validation_messages(params: dict[str, str], message: str) -> None:
    assert message in error(params)
