"""vault-csi-provider's whole-secret file: api.Secret marshalled by Go's encoding/json."""

from __future__ import annotations

import pytest

from csiprovider.compat.go.encoding_json import loads
from csiprovider.stores.vault.envelope import parse_secret, vault_envelope

MINIMAL = b'{"request_id":"","lease_id":"","lease_duration":0,"renewable":false,"data":{"the-key":"v"},"warnings":null}'


def test_envelope_minimal() -> None:
    assert vault_envelope(loads('{"data":{"the-key":"v"}}')) == MINIMAL


def test_envelope_kv2_field_order_and_drops_unknown() -> None:
    body = loads(
        '{"wrap_info":null,"data":{"metadata":{"version":3,"created_time":"t"},"data":{"b":"2","a":1.0}},'
        '"warnings":["w<"],"renewable":true,"lease_duration":2764800,"lease_id":"",'
        '"request_id":"abc","auth":null,"mount_type":"kv","unknown":{"x":1}}'
    )
    assert vault_envelope(body) == (
        b'{"request_id":"abc","lease_id":"","lease_duration":2764800,"renewable":true,'
        b'"data":{"data":{"a":1.0,"b":"2"},"metadata":{"created_time":"t","version":3}},'
        b'"warnings":["w\\u003c"],"mount_type":"kv"}'
    )


def test_envelope_with_auth_and_wrap_info() -> None:
    body = loads(
        '{"request_id":"r","auth":{"renewable":true,"client_token":"s.x","policies":["default"],'
        '"metadata":{"role":"app","a":"b"},"lease_duration":60,"extra":1},'
        '"wrap_info":{"token":"t","ttl":300,"creation_time":"2024-05-01T10:20:30.500000000+02:00",'
        '"creation_path":"p"}}'
    )
    assert vault_envelope(body) == (
        b'{"request_id":"r","lease_id":"","lease_duration":0,"renewable":false,"data":null,'
        b'"warnings":null,"auth":{"client_token":"s.x","accessor":"","policies":["default"],'
        b'"token_policies":null,"identity_policies":null,"metadata":{"a":"b","role":"app"},'
        b'"orphan":false,"entity_id":"","lease_duration":60,"renewable":true,'
        b'"mfa_requirement":null},"wrap_info":{"token":"t","accessor":"","ttl":300,'
        b'"creation_time":"2024-05-01T10:20:30.5+02:00","creation_path":"p",'
        b'"wrapped_accessor":""}}'
    )


def test_envelope_wrap_info_zero_time() -> None:
    out = vault_envelope({"wrap_info": {}})
    assert b'"creation_time":"0001-01-01T00:00:00Z"' in out


def test_envelope_mfa_requirement_omitempty() -> None:
    body = loads(
        '{"auth":{"mfa_requirement":{"mfa_request_id":"m","mfa_constraints":'
        '{"c":{"any":[{"type":"totp","id":"i","uses_passcode":true}]},"e":{"any":[]}}}}}'
    )
    out = vault_envelope(body)
    assert (
        b'"mfa_requirement":{"mfa_request_id":"m","mfa_constraints":'
        b'{"c":{"any":[{"type":"totp","id":"i","uses_passcode":true}]},"e":{}}}}}'
    ) in out


def test_envelope_mount_type_empty_omitted() -> None:
    assert vault_envelope({"data": {"the-key": "v"}, "mount_type": ""}) == MINIMAL


def test_envelope_case_insensitive_fields() -> None:
    out = vault_envelope(loads('{"Request_ID":"r","DATA":{"k":"v"}}'))
    assert out.startswith(b'{"request_id":"r",')
    assert b'"data":{"k":"v"}' in out


def test_envelope_non_envelope_body_becomes_data() -> None:
    # ParseSecret: nothing decoded into api.Secret → the whole body is data
    assert vault_envelope(loads('{"keys":["a","b"],"n":1}')) == (
        b'{"request_id":"","lease_id":"","lease_duration":0,"renewable":false,'
        b'"data":{"keys":["a","b"],"n":1},"warnings":null}'
    )
    # even a zero-valued envelope field counts as "nothing decoded"
    assert b'"data":{"lease_duration":0}' in vault_envelope(loads('{"lease_duration":0}'))


def test_envelope_errors_only_is_no_secret() -> None:
    assert parse_secret(loads('{"errors":[]}')) is None
    assert vault_envelope(loads('{"errors":["permission denied"]}')) == b"null"


def test_envelope_errors_with_data_is_error() -> None:
    with pytest.raises(ValueError, match=r"^a b$"):
        parse_secret(loads('{"errors":["a","b"],"x":1}'))


def test_envelope_empty_object() -> None:
    assert vault_envelope({}) == (
        b'{"request_id":"","lease_id":"","lease_duration":0,"renewable":false,'
        b'"data":null,"warnings":null}'
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            '{"lease_duration":"5"}',
            "cannot unmarshal string into Go struct field Secret.lease_duration of type int",
        ),
        (
            '{"lease_duration":1.5}',
            "cannot unmarshal number 1.5 into Go struct field Secret.lease_duration of type int",
        ),
        ('{"renewable":"true"}', "of type bool"),
        ('{"data":[1]}', "cannot unmarshal array into Go struct field Secret.data"),
        ('{"warnings":[1]}', "Secret.warnings of type string"),
        ('{"auth":{"policies":"default"}}', "Secret.auth.policies of type \\[\\]string"),
    ],
)
def test_envelope_type_errors(body: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        vault_envelope(loads(body))


def test_envelope_null_fields_keep_defaults() -> None:
    body = '{"request_id":null,"lease_duration":null,"data":{"k":null},"warnings":[null,"w"]}'
    assert vault_envelope(loads(body)) == (
        b'{"request_id":"","lease_id":"","lease_duration":0,"renewable":false,'
        b'"data":{"k":null},"warnings":["","w"]}'
    )
