"""Go encoding/json byte-for-byte output (expected bytes are what Go 1.22+ json.Marshal writes)."""

from __future__ import annotations

from typing import Any

import pytest

from csiprovider.gojson import (
    Number,
    Ordered,
    dumps,
    loads,
    parse_secret,
    vault_envelope,
)


def test_keys_sorted_by_utf8_bytes_compact() -> None:
    value = {"b": 1, "a": {"z": [], "y": {}}, "B": None, "é": True, "_": False, "~": "x"}
    assert dumps(value) == b'{"B":null,"_":false,"a":{"y":{},"z":[]},"b":1,"~":"x","\xc3\xa9":true}'


def test_astral_keys_sort_after_bmp() -> None:
    # UTF-8 byte order equals code point order (unlike UTF-16 order)
    assert dumps({"\U0001f600": 1, "\uffff": 2}) == '{"\uffff":2,"\U0001f600":1}'.encode()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain", b'"plain"'),
        ("<script>&</script>", b'"\\u003cscript\\u003e\\u0026\\u003c/script\\u003e"'),
        ('quote " backslash \\', b'"quote \\" backslash \\\\"'),
        ("\n\r\t", b'"\\n\\r\\t"'),
        ("\b\f", b'"\\b\\f"'),
        ("\x00\x01\x1f", b'"\\u0000\\u0001\\u001f"'),
        ("\x7f", b'"\x7f"'),
        ("/", b'"/"'),
        ("\u2028\u2029", b'"\\u2028\\u2029"'),
        ("é中", '"é中"'.encode()),
        ("\U0001f600", b'"\xf0\x9f\x98\x80"'),
        ("\ud800", b'"\\ufffd"'),
        ("a\udcffb", b'"a\\ufffdb"'),  # a surrogateescape'd invalid byte
        ("\ufffd", b'"\xef\xbf\xbd"'),  # a real U+FFFD stays raw
    ],
)
def test_string_escaping(text: str, expected: bytes) -> None:
    assert dumps(text) == expected
    assert dumps({text: 0}) == b"{" + expected + b":0}"


@pytest.mark.parametrize(
    "literal",
    ["0", "-0", "1.0", "1e3", "1E+3", "1.5e-10", "12345678901234567890", "-0.000",
     "123456789012345678901234567890.123456789"],
)
def test_numbers_preserved(literal: str) -> None:
    assert dumps(loads(f'{{"n":{literal}}}')) == f'{{"n":{literal}}}'.encode()
    assert dumps(loads(f"[{literal}]")) == f"[{literal}]".encode()


def test_number_validation() -> None:
    assert dumps(Number("")) == b"0"
    with pytest.raises(ValueError, match="invalid number literal"):
        dumps(Number("01"))
    with pytest.raises(ValueError, match="invalid number literal"):
        dumps(Number("NaN"))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, b"0"), (-7, b"-7"), (2**70, b"1180591620717411303424"),
        (True, b"true"), (False, b"false"), (None, b"null"),
        (0.0, b"0"), (-0.0, b"-0"), (1.0, b"1"), (0.1, b"0.1"), (1e20, b"100000000000000000000"),
        (1e21, b"1e+21"), (1e-6, b"0.000001"), (1.5e-7, b"1.5e-7"), (1e-100, b"1e-100"),
        (123456.789, b"123456.789"), (5e-324, b"5e-324"),
        ((1, "a"), b'[1,"a"]'), ([], b"[]"), ({}, b"{}"),
    ],
)
def test_python_scalars(value: Any, expected: bytes) -> None:
    assert dumps(value) == expected


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_unsupported_floats(value: float) -> None:
    with pytest.raises(ValueError, match="unsupported value"):
        dumps(value)


def test_non_string_keys_rejected() -> None:
    with pytest.raises(TypeError, match="unsupported type"):
        dumps({1: "a"})


def test_nested_round_trip() -> None:
    text = '{"z":{"b":[1.10,{"d":null,"c":"<"}],"a":true},"a":"\\u00e9\\/"}'
    assert dumps(loads(text)) == '{"a":"é/","z":{"a":true,"b":[1.10,{"c":"\\u003c","d":null}]}}'.encode()


def test_no_trailing_newline_and_no_spaces() -> None:
    out = dumps({"a": [1, 2], "b": {"c": "d"}})
    assert out == b'{"a":[1,2],"b":{"c":"d"}}'


def test_ordered() -> None:
    assert dumps(Ordered([("z", 1), ("a", {"y": 1, "x": 2})])) == b'{"z":1,"a":{"x":2,"y":1}}'
    assert dumps(Ordered([("b", 1), ("a", 2)])) == b'{"b":1,"a":2}'


def test_loads_rejects_constants() -> None:
    for text in ("NaN", "[Infinity]", "-Infinity"):
        with pytest.raises(ValueError):
            loads(text)


def test_loads_bytes_invalid_utf8_one_fffd_per_byte() -> None:
    assert loads(b'"a\xe2\x82b\xffc"') == "a\ufffd\ufffdb\ufffdc"
    assert dumps(loads(b'"\xff"')) == b'"\xef\xbf\xbd"'  # Go: decode → U+FFFD → raw


def test_loads_lone_surrogate_escape_becomes_fffd() -> None:
    assert loads('{"\\ud800k":["\\udc00"]}') == {"\ufffdk": ["\ufffd"]}
    assert loads('"\\ud83d\\ude00"') == "\U0001f600"


def test_loads_numbers_are_number() -> None:
    value = loads('{"i":1,"f":1.0}')
    assert isinstance(value["i"], Number) and value["i"] == "1"
    assert isinstance(value["f"], Number) and value["f"] == "1.0"


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
        ('{"lease_duration":"5"}', "cannot unmarshal string into Go struct field Secret.lease_duration of type int"),
        ('{"lease_duration":1.5}', "cannot unmarshal number 1.5 into Go struct field Secret.lease_duration of type int"),
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
