"""yaml.v3 decoding of vault-csi-provider's `objects` (expected values follow resolve.go/decode.go)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from csiprovider.compat.go.yaml_v3 import AnyKeyMap, GoTime, YamlError, load_objects


def one(text: str) -> dict[str, Any]:
    objects = load_objects(text)
    assert len(objects) == 1
    return objects[0]


def arg(value: str) -> Any:
    return one(f"- secretArgs:\n    v: {value}\n")["secretArgs"]["v"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("objectName: true", "true"),
        ("objectName: 0123", "0123"),
        ("secretKey: 0123", "0123"),
        ("secretKey: 1.50", "1.50"),
        ("secretKey: 0x1F", "0x1F"),
        ("secretKey: yes", "yes"),
        ("secretKey: 2001-12-14", "2001-12-14"),
        ("secretKey: '007'", "007"),
        ('secretKey: "a\\tb"', "a\tb"),
        ("secretKey: ~", ""),
        ("secretKey: null", ""),
        ("secretKey:", ""),
        ("secretKey: 'null'", "null"),
        ("secretKey: !!str 12", "12"),
        ("method: POST", "POST"),
        ("encoding: base64", "base64"),
        ("secretPath: secret/data/x?version=1", "secret/data/x?version=1"),
    ],
)
def test_string_fields_keep_source_text(text: str, expected: str) -> None:
    key = text.split(":")[0]
    assert one(f"- {text}\n")[key] == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0600", 0o600),
        ("0o600", 0o600),
        ("0O600", 0o600),
        ("600", 600),
        ("0x1a4", 0x1A4),
        ("0X1A4", 0x1A4),
        ("0b110100100", 0o644),
        ("+0644", 0o644),
        ("0_644", 0o644),
        ("4_2_0", 420),
        ("0", 0),
        ("~", 0),
        ("", 0),
        ("08", 8),  # not octal: yaml.v3 falls back to the float 8.0, truncated into FileMode
        ("420.9", 420),
        ("!!float 420", 420),
        ("4294967295", 4294967295),
    ],
)
def test_file_permission(text: str, expected: int) -> None:
    assert one(f"- filePermission: {text}\n")["filePermission"] == expected


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ('"0600"', "!!str `0600`"),
        ("'0644'", "!!str `0644`"),
        ("!!str 0600", "!!str `0600`"),
        ("rw-r--r--", "!!str `rw-r--r--`"),
        ("true", "!!bool `true`"),
        ("-1", "!!int `-1`"),
        ("4294967296", "!!int `4294967296`"),
        (".nan", "!!float `.nan`"),
        ("2001-12-14", "!!timestamp `2001-12-14`"),
        ("0o1234567012345", "!!int `0o12345...`"),
    ],
)
def test_file_permission_errors(text: str, shown: str) -> None:
    with pytest.raises(YamlError) as err:
        load_objects(f"- objectName: a\n  filePermission: {text}\n")
    assert (
        str(err.value)
        == f"yaml: unmarshal errors:\n  line 2: cannot unmarshal {shown} into fs.FileMode"
    )
    assert err.value.line == 2


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("true", True),
        ("True", True),
        ("TRUE", True),
        ("false", False),
        ("False", False),
        ("FALSE", False),
        ("tRUE", "tRUE"),
        ("yes", "yes"),
        ("no", "no"),
        ("on", "on"),
        ("off", "off"),
        ("y", "y"),
        ("n", "n"),
        ("Yes", "Yes"),
        ("~", None),
        ("null", None),
        ("Null", None),
        ("NULL", None),
        ("", None),
        ("nULL", "nULL"),
        ("'~'", "~"),
        ('"null"', "null"),
        ("0", 0),
        ("42", 42),
        ("-42", -42),
        ("+42", 42),
        ("0777", 511),
        ("0o777", 511),
        ("-0o17", -15),
        ("0x1F", 31),
        ("-0x1f", -31),
        ("0b101", 5),
        ("-0b101", -5),
        ("1_000", 1000),
        ("0x_1f", 31),
        ("1__0", 10),
        ("9223372036854775807", 9223372036854775807),
        ("18446744073709551615", 18446744073709551615),  # uint64
        ("0xffffffffffffffffff", "0xffffffffffffffffff"),
        ("'42'", "42"),
        ('"0777"', "0777"),
        ("!!str 42", "42"),
        ("!!int '42'", 42),
        ("!!float 1", 1.0),
        ("!!bool true", True),
        ("!!null ''", None),
        ("1.5", 1.5),
        ("-1.5e3", -1500.0),
        ("1.", 1.0),
        (".5", 0.5),
        ("+.5", 0.5),
        ("1e3", 1000.0),
        ("1E3", 1000.0),
        ("089", 89.0),
        ("1_0.5", 10.5),
        ("99999999999999999999", 1e20),
        ("1e400", "1e400"),
        (".5e", ".5e"),
        ("._5", "._5"),
        ("1:30", "1:30"),
        ("1:30:00", "1:30:00"),
        ("0x", "0x"),
        ("0b", "0b"),
        ("1_", 1),
        ("_1", "_1"),
        ("1.2.3", "1.2.3"),
        ("0b102", "0b102"),
        ("09", 9.0),
        ("abc", "abc"),
        ("'yes'", "yes"),
        ("!!binary aGVsbG8=", "hello"),
        ("!custom 12", "12"),
        ("|\n      12\n", "12\n"),
    ],
)
def test_secret_args_scalars(text: str, expected: Any) -> None:
    value = arg(text)
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize("text", [".inf", ".Inf", ".INF", "+.inf"])
def test_secret_args_infinity(text: str) -> None:
    assert arg(text) == math.inf


def test_secret_args_special_floats() -> None:
    assert arg("-.inf") == -math.inf
    assert math.isnan(arg(".nan")) and math.isnan(arg(".NaN")) and math.isnan(arg(".NAN"))
    assert arg(".nAn") == ".nAn"


@pytest.mark.parametrize(
    ("text", "rendered"),
    [
        ("2001-12-14", "2001-12-14T00:00:00Z"),
        ("2001-1-2", "2001-01-02T00:00:00Z"),
        ("0000-02-29", "0000-02-29T00:00:00Z"),
        ("2001-12-14T21:59:43.10-05:00", "2001-12-14T21:59:43.1-05:00"),
        ("2001-12-14t21:59:43Z", "2001-12-14T21:59:43Z"),
        ("2001-12-14 21:59:43.10", "2001-12-14T21:59:43.1Z"),
    ],
)
def test_secret_args_timestamps(text: str, rendered: str) -> None:
    # yaml.v3 decodes unquoted timestamps into interface{} as time.Time; json.Marshal
    # then writes RFC 3339, which is what reaches Vault.
    value = arg(text)
    assert isinstance(value, GoTime)
    assert value == rendered
    assert value.source == text


@pytest.mark.parametrize(
    "text",
    [
        "2001-13-14",
        "2001-02-30",
        "2001-12-14 21:59:43 -5",
        "2001-12-14T21:59:43",
        "'2001-12-14'",
        "20011-12-14",
    ],
)
def test_secret_args_not_timestamps(text: str) -> None:
    value = arg(text)
    assert not isinstance(value, GoTime)
    assert value == text.strip("'")


def test_nested_secret_args() -> None:
    obj = one(
        "- objectName: x\n"
        "  secretArgs:\n"
        "    common_name: example.com\n"
        "    ttl: 1h\n"
        "    count: 0010\n"
        "    flags: [yes, true, ~, '1', 2]\n"
        "    nested:\n"
        "      deeper: {a: 0x10, b: 'c'}\n"
        "    true: key is text\n"
        "    123: numeric key\n"
        "    '': empty\n"
    )
    assert obj["secretArgs"] == {
        "common_name": "example.com",
        "ttl": "1h",
        "count": 8,
        "flags": ["yes", True, None, "1", 2],
        "nested": {"deeper": {"a": 16, "b": "c"}},
        "true": "key is text",
        "123": "numeric key",
        "": "empty",
    }


def test_secret_args_null_key_dropped() -> None:
    assert one("- secretArgs: {~: a, b: c}\n")["secretArgs"] == {"b": "c"}


def test_nested_map_with_non_string_keys() -> None:
    # map[interface{}]interface{} in Go, which json.Marshal refuses
    value = arg("{2: a, true: b, ~: c, x: d}")
    assert isinstance(value, AnyKeyMap)
    assert value == {2: "a", True: "b", None: "c", "x": "d"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("secretArgs: ~", None),
        ("secretArgs: {}", {}),
        ("secretArgs:", None),
    ],
)
def test_secret_args_null_or_empty(text: str, expected: Any) -> None:
    assert one(f"- {text}\n")["secretArgs"] == expected


@pytest.mark.parametrize("text", ["", "\n", "# comment\n", "~", "null", "[]", "---\n"])
def test_empty_documents(text: str) -> None:
    assert load_objects(text) == []


def test_null_items_skipped_and_only_first_document() -> None:
    assert load_objects("- ~\n- objectName: a\n---\n- [broken\n") == [{"objectName": "a"}]


def test_unknown_keys_kept_generic_and_problems_ignored() -> None:
    obj = one("- objectName: a\n  secretFormat: data\n  other: 0x10\n  bad: {a: 1, a: 2}\n")
    assert obj == {"objectName": "a", "secretFormat": "data", "other": 16, "bad": None}


def test_extra_string_fields() -> None:
    objs = load_objects("- jmesPath: true\n", extra_string_fields=["jmesPath"])
    assert objs == [{"jmesPath": "true"}]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("objectName: a", "line 1: cannot unmarshal !!map into []config.Secret"),
        ("just some text", "line 1: cannot unmarshal !!str `just so...` into []config.Secret"),
        ("'a'", "line 1: cannot unmarshal !!str `a` into []config.Secret"),
        ("42", "line 1: cannot unmarshal !!int `42` into []config.Secret"),
        ("- a", "line 1: cannot unmarshal !!str `a` into config.Secret"),
        ("- [a]", "line 1: cannot unmarshal !!seq into config.Secret"),
        ("- objectName: {a: 1}", "line 1: cannot unmarshal !!map into string"),
        ("- objectName: [a]", "line 1: cannot unmarshal !!seq into string"),
        ("- secretArgs: [a]", "line 1: cannot unmarshal !!seq into map[string]interface {}"),
        (
            "- secretArgs: text",
            "line 1: cannot unmarshal !!str `text` into map[string]interface {}",
        ),
    ],
)
def test_type_errors(text: str, message: str) -> None:
    with pytest.raises(YamlError) as err:
        load_objects(text + "\n")
    assert str(err.value) == "yaml: unmarshal errors:\n  " + message


def test_duplicate_keys() -> None:
    with pytest.raises(YamlError) as err:
        load_objects("- objectName: a\n  secretPath: p\n  objectName: b\n")
    assert str(err.value) == (
        'yaml: unmarshal errors:\n  line 3: mapping key "objectName" already defined at line 1'
    )
    assert err.value.line == 3


@pytest.mark.parametrize(
    "text",
    [
        "- secretArgs:\n    a: 1\n    a: 2\n",
        "- secretArgs:\n    a: 1\n    'a': 2\n",  # same value, quoting does not matter
        "- secretArgs:\n    n:\n      - {x: 1, x: 2}\n",
        "- unknown: 1\n  unknown: 2\n",
        "a: 1\na: 2\n",
    ],
)
def test_duplicate_keys_anywhere(text: str) -> None:
    with pytest.raises(YamlError, match="already defined at line"):
        load_objects(text)


def test_all_type_errors_reported() -> None:
    with pytest.raises(YamlError) as err:
        load_objects("- objectName: [a]\n  filePermission: '0600'\n- secretKey: {}\n")
    assert str(err.value).splitlines()[1:] == [
        "  line 1: cannot unmarshal !!seq into string",
        "  line 2: cannot unmarshal !!str `0600` into fs.FileMode",
        "  line 3: cannot unmarshal !!map into string",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- secretArgs: {a: !!int abc}\n", "yaml: cannot decode !!str `abc` as a !!int"),
        ("- secretArgs: {a: !!bool yes}\n", "yaml: cannot decode !!str `yes` as a !!bool"),
        ("- secretArgs: {a: !!float x}\n", "yaml: cannot decode !!str `x` as a !!float"),
        ("- secretArgs: {a: !!binary '@@'}\n", "yaml: !!binary value contains invalid base64 data"),
        (
            "- secretArgs: {<<: 1}\n",
            "yaml: map merge requires map or sequence of maps as the value",
        ),
        ("- secretArgs: &a {b: *a}\n", "yaml: anchor 'a' value contains itself"),
    ],
)
def test_fatal_errors(text: str, message: str) -> None:
    with pytest.raises(YamlError) as err:
        load_objects(text)
    assert str(err.value) == message


def test_syntax_error_has_line() -> None:
    with pytest.raises(YamlError) as err:
        load_objects("- objectName: a\n  secretPath: [b\n")
    assert str(err.value).startswith("yaml: line ")
    assert err.value.line is not None


def test_anchors_aliases_and_merge() -> None:
    objs = load_objects(
        "- &base\n"
        "  objectName: a\n"
        "  secretPath: secret/data/app\n"
        "  secretArgs: &args {x: 1, y: 2}\n"
        "- <<: *base\n"
        "  objectName: b\n"
        "  secretArgs:\n"
        "    <<: *args\n"
        "    y: 3\n"
    )
    assert objs == [
        {"objectName": "a", "secretPath": "secret/data/app", "secretArgs": {"x": 1, "y": 2}},
        {"objectName": "b", "secretArgs": {"x": 1, "y": 3}, "secretPath": "secret/data/app"},
    ]


def test_merge_sequence_earlier_wins() -> None:
    value = arg("{<<: [{a: 1, b: 1}, {b: 2, c: 2}], c: 3}")
    assert value == {"a": 1, "b": 1, "c": 3}


def test_quoted_merge_key_is_a_plain_key() -> None:
    assert arg("{'<<': {a: 1}}") == {"<<": {"a": 1}}


def test_alias_bomb_rejected() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        refs = ", ".join([f"*a{i - 1}"] * 10)
        lines.append(f"a{i}: &a{i} [{refs}]")
    text = "- secretArgs:\n" + "".join(f"    {line}\n" for line in lines)
    with pytest.raises(YamlError, match="excessive aliasing"):
        load_objects(text)
