"""One extraction step: the same value and the same selection give the same bytes through
every dialect; only the wording of errors follows the dialect's upstream project."""

from __future__ import annotations

import json
from typing import Any

import pytest

from csiprovider.compat.go.encoding_json import loads
from csiprovider.errors import InvalidArgument, MountError, NotFound
from csiprovider.extract import extract
from csiprovider.model import Document, Listing, MountObject
from csiprovider.native.dialect import parse as native_parse
from csiprovider.request import parse_mount_request
from csiprovider.stores.aws.dialect import AwsDialect
from csiprovider.stores.vault.config import VaultDefaults
from csiprovider.stores.vault.dialect import VaultDialect
from testkit.requests import mount_request, objects_yaml

VALUE = '{"db":{"user":"josé","tags":["<a>","café"],"port":5432,"ratio":1.50}}'
TOKENS = {
    "csi.storage.k8s.io/serviceAccount.tokens": json.dumps(
        {
            "vault": {"token": "jwt", "expirationTimestamp": "2030-01-01T00:00:00Z"},
            "sts.amazonaws.com": {"token": "jwt", "expirationTimestamp": "2030-01-01T00:00:00Z"},
        }
    )
}


def native(item: dict[str, Any]) -> MountObject:
    (obj,) = native_parse(parse_mount_request(mount_request([item])))
    assert isinstance(obj, MountObject)
    return obj


def vault(item: dict[str, Any]) -> MountObject:
    request = mount_request(extra={**TOKENS, "roleName": "app", "objects": objects_yaml([item])})
    (obj,) = VaultDialect(VaultDefaults.build(env={}))(parse_mount_request(request))
    return obj


def aws(item: dict[str, Any]) -> MountObject:
    request = mount_request(
        extra={**TOKENS, "region": "eu-west-1", "objects": objects_yaml([item])}
    )
    objs = AwsDialect()(parse_mount_request(request))
    return objs[-1]  # the jmesPath entry's object, when there is one


def test_the_issues_example_gives_one_byte_string_through_every_dialect() -> None:
    """jmesPath `db` on one JSON value: native (file), vault (secretKey's map) and aws."""
    through_native = extract(
        native({"objectName": "x", "backend": "file", "path": "p", "jmesPath": "db"}),
        VALUE.encode(),
    )
    through_vault = extract(
        vault({"objectName": "x", "secretPath": "secret/data/app", "jmesPath": "db"}),
        Document(loads(VALUE)),
    )
    through_aws = extract(
        aws(
            {
                "objectName": "app",
                "objectType": "secretsmanager",
                "jmesPath": [{"path": "db", "objectAlias": "x"}],
            }
        ),
        VALUE.encode(),
    )
    expected = (
        '{"port":5432,"ratio":1.5,"tags":["\\u003ca\\u003e","café"],"user":"josé"}'
    ).encode()
    assert through_native == through_vault == through_aws == expected


def test_a_vault_secret_key_holding_a_map_is_written_as_vault_csi_provider_does() -> None:
    obj = vault({"objectName": "x", "secretPath": "secret/data/app", "secretKey": "db"})
    assert extract(obj, Document(loads(VALUE))) == (
        '{"port":5432,"ratio":1.50,"tags":["\\u003ca\\u003e","café"],"user":"josé"}'.encode()
    )


def test_strings_are_raw_and_expand_writes_one_file_per_key() -> None:
    obj = native(
        {"objectName": "x", "backend": "file", "path": "p", "jmesPath": "db", "expand": "keys"}
    )
    files = extract(obj, VALUE.encode())
    assert isinstance(files, dict)
    assert files["user"] == "josé".encode() and files["port"] == b"5432"


def test_a_key_holding_a_json_string_can_be_selected_into() -> None:
    obj = native(
        {
            "objectName": "x",
            "backend": "vault",
            "secretPath": "secret/data/app",
            "roleName": "app",
            "secretKey": "conf",
            "jmesPath": "db.user",
        }
    )
    assert extract(obj, Document({"conf": VALUE})) == "josé".encode()


def test_listing_items_go_through_the_same_step() -> None:
    obj = native({"objectName": "x", "backend": "file", "prefix": "dir", "jmesPath": "db.port"})
    assert extract(obj, Listing({"a": VALUE.encode()})) == {"a": b"5432"}


@pytest.mark.parametrize(
    ("make", "item", "error", "text"),
    [
        (
            native,
            {"objectName": "x", "backend": "file", "path": "p", "jmesPath": "nope"},
            NotFound,
            "jmesPath 'nope' matches nothing",
        ),
        (
            vault,
            {"objectName": "x", "secretPath": "secret/data/app", "jmesPath": "nope"},
            NotFound,
            "jmesPath 'nope' matches nothing in /v1/secret/data/app",
        ),
        (
            aws,
            {
                "objectName": "app",
                "objectType": "secretsmanager",
                "jmesPath": [{"path": "nope", "objectAlias": "x"}],
            },
            NotFound,
            "JMES Path - nope for object alias - x does not point to a valid object.",
        ),
        (
            aws,
            {
                "objectName": "app",
                "objectType": "secretsmanager",
                "jmesPath": [{"path": "[", "objectAlias": "x"}],
            },
            InvalidArgument,
            "Invalid JMES Path: [.",
        ),
    ],
)
def test_errors_keep_each_dialects_words(
    make: Any, item: dict[str, Any], error: type[MountError], text: str
) -> None:
    obj = make(item)
    value: Any = Document(loads(VALUE)) if make is vault else VALUE.encode()
    with pytest.raises(error) as info:
        extract(obj, value)
    assert text in info.value.message
