"""The native `objects` schema for the file backend: what parses, and the errors."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from csiprovider.errors import InvalidArgument
from csiprovider.model import Encoding
from csiprovider.native import dialect as native
from csiprovider.request import parse_mount_request
from csiprovider.stores.file.source import FileSource
from testkit.requests import mount_request


def parse(objects: list[dict[str, Any]] | str, **kw: Any) -> list[Any]:
    return native.parse(parse_mount_request(mount_request(objects, **kw)))


def test_file_object_fields() -> None:
    (obj,) = parse(
        [
            {
                "objectName": "db-password",
                "backend": "file",
                "path": "db/password",
                "objectAlias": "password",
                "filePermission": "0640",
                "encoding": "base64",
            }
        ]
    )
    assert obj.object_name == "db-password"
    assert obj.file_name == "password"
    assert obj.mode == 0o640
    assert obj.encoding is Encoding.BASE64
    assert obj.source == FileSource(namespace="default", path="db/password")


def test_defaults_path_mode_encoding() -> None:
    (obj,) = parse([{"objectName": "token", "backend": "file"}], permission="384")
    assert obj.source.path == "token"
    assert obj.file_name == "token"
    assert obj.mode == 0o600  # from MountRequest.permission
    assert obj.encoding is Encoding.UTF8


def test_yaml_integer_permission_is_octal_like_yaml_says() -> None:
    (obj,) = parse("- objectName: a\n  backend: file\n  filePermission: 0640\n")
    assert obj.mode == 0o640


def test_spec_changes_change_spec_json() -> None:
    (a,) = parse([{"objectName": "a", "backend": "file", "path": "x"}])
    (b,) = parse([{"objectName": "a", "backend": "file", "path": "y"}])
    assert a.spec_json != b.spec_json


@pytest.mark.parametrize(
    ("objects", "needle"),
    [
        (None, "missing parameter objects"),
        ("", "missing parameter objects"),
        (
            "- objectName: a\n  backend: [file\n",
            "failed to parse parameter objects as YAML at line",
        ),
        ("objectName: a", "expected a non-empty YAML list of objects, got dict"),
        ("[]", "expected a non-empty YAML list"),
        ("- just-a-string", "objects[0]: expected a mapping with objectName, got str"),
        ([{"backend": "file"}], "objects[0]: missing required field objectName"),
        ([{"objectName": "a"}], "objects[0] (objectName 'a'): missing required field backend"),
        (
            [{"objectName": "a", "backend": "fiel"}],
            "unknown backend 'fiel' (did you mean 'file'?); supported backends: aws-kms, "
            "aws-secretsmanager, aws-ssm, file",
        ),
        (
            [{"objectName": "a", "backend": "file", "objectAlais": "b"}],
            "unknown field 'objectAlais' (did you mean 'objectAlias'?)",
        ),
        (
            [{"objectName": "a", "backend": "file", "path": "../other/ns"}],
            "invalid path '../other/ns'",
        ),
        (
            [{"objectName": "a", "backend": "file", "path": "/etc/passwd"}],
            "invalid path '/etc/passwd'",
        ),
        ([{"objectName": "a", "backend": "file", "path": "x/../../y"}], "invalid path 'x/../../y'"),
        (
            [{"objectName": "../escape", "backend": "file", "path": "x"}],
            "objectName '../escape' is not a valid file name",
        ),
        (
            [{"objectName": "a", "backend": "file", "objectAlias": "/abs"}],
            "objectAlias '/abs' is not a valid file name",
        ),
        (
            [{"objectName": "a", "backend": "file", "objectAlias": "..data"}],
            "objectAlias '..data' is not a valid file name",
        ),
        (
            [{"objectName": "a", "backend": "file", "filePermission": "999"}],
            "invalid filePermission",
        ),
        (
            [{"objectName": "a", "backend": "file", "filePermission": 1024}],
            "invalid filePermission",
        ),
        ([{"objectName": "a", "backend": "file", "encoding": "rot13"}], "unknown encoding 'rot13'"),
        (
            [{"objectName": "a", "backend": "file"}, {"objectName": "a", "backend": "file"}],
            "objects[1] (objectName 'a'): duplicate objectName 'a', also used by objects[0]",
        ),
        (
            [
                {"objectName": "a", "backend": "file"},
                {"objectName": "b", "backend": "file", "objectAlias": "a"},
            ],
            "objects[1] (objectName 'b'): duplicate file name 'a', also used by objects[0] "
            "(objectName 'a'); set objectAlias on one of them",
        ),
    ],
)
def test_errors_name_object_and_fix(objects: Any, needle: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse(objects)
    assert info.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert needle in info.value.message


def test_missing_namespace_for_file_backend() -> None:
    with pytest.raises(InvalidArgument, match="podInfoOnMount"):
        parse([{"objectName": "a", "backend": "file"}], namespace="")
