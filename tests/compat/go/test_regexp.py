"""The API of the Go regexp emulation and the FormatFloat forms sops uses (the
differential test proves their answers against the real Go)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from csiprovider.compat.go import regexp
from csiprovider.compat.go.strconv import format_float


def test_compile_and_search() -> None:
    pattern = regexp.compile(r"^(data|stringData)$")
    assert pattern.search("stringData") and not pattern.search("metadata")
    assert repr(pattern) == "Regexp('^(data|stringData)$')"
    assert regexp.match_string(r"\d", "\u0663") is False  # ASCII-only \d, as Go's
    assert regexp.match_string("(?i)é", "É") is True
    assert regexp.match_string(b"^.$", b"\xff") is True  # an invalid byte reads as U+FFFD
    assert regexp.compile("^.$").search("\udcff") is True  # the same, surrogateescape'd


def test_refusals_read_as_go_words_them() -> None:
    with pytest.raises(regexp.RegexpError) as refused:
        regexp.compile("a(?=b)")
    assert isinstance(refused.value, ValueError)
    assert str(refused.value) == "error parsing regexp: invalid or unsupported Perl syntax: `(?=`"
    assert (refused.value.code, refused.value.expr) == ("invalid or unsupported Perl syntax", "(?=")
    for pattern, message in [
        (r"(a)\1", "invalid escape sequence: `\\1`"),
        (r"\C", "invalid escape sequence: `\\C`"),  # RE2 would take it
        ("(?P<é>x)", "invalid named capture: `(?P<é>`"),  # RE2 would take it
        ("a)", "unexpected ): `a)`"),
        ("x{2,1}?", "invalid repeat count: `{2,1}`"),  # RE2 quotes `{2,1}?`
    ]:
        with pytest.raises(regexp.RegexpError) as refused:
            regexp.compile(pattern)
        assert str(refused.value) == "error parsing regexp: " + message


def test_a_pattern_past_re2s_budget_is_too_large() -> None:
    pattern = ".{1000}" * 1000
    with pytest.raises(regexp.RegexpError) as refused:
        regexp.compile(pattern)
    assert (refused.value.code, refused.value.expr) == ("expression too large", pattern)


def test_re2_logs_nothing() -> None:
    """RE2 logs a refused pattern on stderr (absl) unless told not to: we tell it."""
    code = (
        "from csiprovider.compat.go import regexp\n"
        "for p in ('a(?=b)', '(', '.{1000}' * 1000):\n"
        "    try:\n        regexp.compile(p)\n"
        "    except regexp.RegexpError:\n        pass\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stderr == ""


def test_format_float_forms() -> None:
    assert format_float(1e21) == "1e+21" and format_float(16777217.0, 32) == "1.6777216e+07"
    assert format_float(1e21, fmt="f") == "1000000000000000000000"  # sops's MAC
    assert format_float(1e-7, fmt="f") == "0.0000001"
    assert format_float(1e21, fmt="G") == "1E+21"  # stores.ValToString
    assert format_float(2.0, fmt="G") == "2" and format_float(2.0, fmt="f", prec=1) == "2.0"
    assert format_float(-0.0, fmt="f") == "-0" and format_float(float("nan"), fmt="f") == "NaN"
    assert format_float(2.5, fmt="f", prec=0) == "2"  # half to even, on the exact value
    assert format_float(0.125, fmt="e", prec=1) == "1.2e-01"
    for fmt in ("b", "x", "%"):
        with pytest.raises(ValueError, match="not emulated"):
            format_float(1.0, fmt=fmt)
    with pytest.raises(ValueError, match="bitSize"):
        format_float(1.0, 16)
