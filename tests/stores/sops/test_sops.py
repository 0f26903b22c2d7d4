"""`backend: sops`: documents encrypted by the real sops binary with age keys, mounted
through the in-process daemon with the pod's age identity in the request's `secrets`,
compared with `sops --decrypt`."""

from __future__ import annotations

import json
from typing import Any

import grpc
import pytest
import yaml

from testkit import sops
from testkit.requests import mount_request

pytestmark = pytest.mark.sops

PLAIN = {
    "yaml": b"db:\n  user: app\n  password: s3cr3t\n  port: 5432\n  ratio: 0.25\n"
    b"  enabled: true\n  hosts: [a, b]\nempty: ''\ntoken_unencrypted: visible\n",
    "json": b'{"z": "<&>", "a": {"n": 1e300, "f": 0.000001, "l": [], "o": {}, '
    b'"i": [1, 2.5, false]}, "x": null, "u": 12345678901234567890}',
    "dotenv": b"USER=app\n#a comment\nPASSWORD=two\\nlines\nEMPTY=\n",
    "ini": b"top = 1\n[db]\nuser = app\npassword = pass word\nlong_name = x\n[other]\nk = v\n",
    "binary": b"\x00\x01binary\xff\xfe payload\n",
}


@pytest.fixture(scope="module")
def keys() -> tuple[sops.AgeKey, sops.AgeKey]:
    return sops.age_key(), sops.age_key()


def request(objects: list[dict[str, Any]], identity: str | None) -> Any:
    req = mount_request(objects)
    req.secrets = json.dumps({"sops-age-key": identity} if identity else {})
    return req


async def mount(stub: Any, objects: list[dict[str, Any]], identity: str | None) -> dict[str, bytes]:
    reply = await stub.Mount(request(objects, identity))
    return {f.path: f.contents for f in reply.files}


async def refused(
    stub: Any, objects: list[dict[str, Any]], identity: str | None
) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.Mount(request(objects, identity))
    return info.value


@pytest.mark.parametrize("fmt", list(PLAIN))
async def test_each_format_decrypts_as_sops_does(stub: Any, keys: Any, fmt: str) -> None:
    key = keys[0]
    document = sops.encrypt(PLAIN[fmt], fmt, [key.recipient])
    expected = sops.decrypt(document, fmt, key.identity)
    obj: dict[str, Any] = {"objectName": "doc", "backend": "sops", "document": document}
    if fmt == "binary":
        obj["format"] = "binary"  # a binary document is JSON: only its format tells
    files = await mount(stub, [obj], key.identity)
    if fmt == "yaml":
        assert yaml.safe_load(files["doc"]) == yaml.safe_load(expected)
        assert list(yaml.safe_load(files["doc"])["db"]) == list(yaml.safe_load(expected)["db"])
    else:
        assert files["doc"] == expected
    if fmt == "binary":
        assert files["doc"] == PLAIN["binary"]


async def test_jmespath_and_expand_select_from_the_decrypted_document(stub: Any, keys: Any) -> None:
    key = keys[0]
    document = sops.encrypt(PLAIN["yaml"], "yaml", [key.recipient])
    files = await mount(
        stub,
        [
            {
                "objectName": "pw",
                "backend": "sops",
                "document": document,
                "jmesPath": "db.password",
            },
            {
                "objectName": "db",
                "backend": "sops",
                "document": document,
                "format": "yaml",
                "jmesPath": "db",
                "expand": "keys",
            },
        ],
        key.identity,
    )
    assert files["pw"] == b"s3cr3t"
    assert files["db/user"] == b"app"
    assert files["db/port"] == b"5432"
    assert files["db/hosts"] == b'["a","b"]'


@pytest.mark.parametrize(
    "flags",
    [
        ("--encrypted-regex", "^pass"),
        ("--unencrypted-regex", "^user$"),
        ("--encrypted-suffix", "word"),
    ],
)
async def test_partial_encryption_settings_are_honoured(
    stub: Any, keys: Any, flags: tuple[str, ...]
) -> None:
    key = keys[0]
    document = sops.encrypt(
        PLAIN["json"].replace(b'"z"', b'"password"').replace(b'"a"', b'"user"'),
        "json",
        [key.recipient],
        *flags,
    )
    files = await mount(
        stub, [{"objectName": "doc", "backend": "sops", "document": document}], key.identity
    )
    assert files["doc"] == sops.decrypt(document, "json", key.identity)


async def test_a_tampered_value_is_refused(stub: Any, keys: Any) -> None:
    key = keys[0]
    document = sops.encrypt(PLAIN["yaml"], "yaml", [key.recipient])
    tampered = document.replace("token_unencrypted: visible", "token_unencrypted: changed")
    assert tampered != document
    error = await refused(
        stub, [{"objectName": "doc", "backend": "sops", "document": tampered}], key.identity
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "MAC mismatch" in (error.details() or "")
    assert "'doc'" in (error.details() or "")
    # a ciphertext moved to another key fails to decrypt (the path is its additional data)
    tree = yaml.safe_load(document)
    tree["db"]["user"], tree["db"]["password"] = tree["db"]["password"], tree["db"]["user"]
    error = await refused(
        stub,
        [
            {
                "objectName": "doc",
                "backend": "sops",
                "document": yaml.safe_dump(tree, sort_keys=False),
            }
        ],
        key.identity,
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "s3cr3t" not in (error.details() or "")


async def test_reordered_keys_are_refused(stub: Any, keys: Any) -> None:
    key = keys[0]
    document = sops.encrypt(b'{"a": "1", "b": "2"}', "json", [key.recipient])
    tree = json.loads(document)
    reordered = json.dumps({"b": tree["b"], "a": tree["a"], "sops": tree["sops"]})
    error = await refused(
        stub, [{"objectName": "doc", "backend": "sops", "document": reordered}], key.identity
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "MAC mismatch" in (error.details() or "")
    # the same document in its own order mounts
    files = await mount(
        stub, [{"objectName": "doc", "backend": "sops", "document": json.dumps(tree)}], key.identity
    )
    assert files["doc"] == b'{\n\t"a": "1",\n\t"b": "2"\n}\n'


async def test_a_wrong_or_missing_age_key_is_refused(stub: Any, keys: Any) -> None:
    document = sops.encrypt(PLAIN["yaml"], "yaml", [keys[0].recipient])
    obj = {"objectName": "doc", "backend": "sops", "document": document}
    error = await refused(stub, [obj], keys[1].identity)
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert keys[1].identity not in (error.details() or "")
    error = await refused(stub, [obj], None)
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "sops-age-key" in (error.details() or "")
    error = await refused(stub, [obj], "not-an-age-key")
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_the_second_recipient_of_a_key_group_opens_the_document(stub: Any, keys: Any) -> None:
    document = sops.encrypt(PLAIN["dotenv"], "dotenv", [keys[0].recipient, keys[1].recipient])
    files = await mount(
        stub, [{"objectName": "env", "backend": "sops", "document": document}], keys[1].identity
    )
    assert files["env"] == sops.decrypt(document, "dotenv", keys[1].identity)
    # several identities in the secret: any one of them may open it
    both = f"# comment\n{sops.age_key().identity}\n{keys[1].identity}\n"
    files = await mount(
        stub, [{"objectName": "env", "backend": "sops", "document": document}], both
    )
    assert files["env"] == sops.decrypt(document, "dotenv", keys[0].identity)


async def test_unknown_fields_and_formats_are_refused(stub: Any, keys: Any) -> None:
    error = await refused(
        stub,
        [{"objectName": "doc", "backend": "sops", "document": "x", "format": "toml"}],
        keys[0].identity,
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "format" in (error.details() or "")
    error = await refused(
        stub,
        [
            {
                "objectName": "doc",
                "backend": "sops",
                "document": "a: 1",
            }
        ],
        keys[0].identity,
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "no sops metadata" in (error.details() or "")
