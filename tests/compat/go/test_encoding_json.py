"""Go encoding/json byte-for-byte output (expected bytes are what Go 1.22+ json.Marshal writes)."""

from __future__ import annotations

from typing import Any

import pytest

from csiprovider.compat.go.encoding_json import (
    Number,
    Ordered,
    dumps,
    loads,
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
    [
        "0",
        "-0",
        "1.0",
        "1e3",
        "1E+3",
        "1.5e-10",
        "12345678901234567890",
        "-0.000",
        "123456789012345678901234567890.123456789",
    ],
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
        (0, b"0"),
        (-7, b"-7"),
        (2**70, b"1180591620717411303424"),
        (True, b"true"),
        (False, b"false"),
        (None, b"null"),
        (0.0, b"0"),
        (-0.0, b"-0"),
        (1.0, b"1"),
        (0.1, b"0.1"),
        (1e20, b"100000000000000000000"),
        (1e21, b"1e+21"),
        (1e-6, b"0.000001"),
        (1.5e-7, b"1.5e-7"),
        (1e-100, b"1e-100"),
        (123456.789, b"123456.789"),
        (5e-324, b"5e-324"),
        ((1, "a"), b'[1,"a"]'),
        ([], b"[]"),
        ({}, b"{}"),
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
    assert (
        dumps(loads(text))
        == '{"a":"é/","z":{"a":true,"b":[1.10,{"c":"\\u003c","d":null}]}}'.encode()
    )


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
