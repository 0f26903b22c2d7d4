"""Durations parse as Go's time.ParseDuration does (the differential test runs the real
one); intervals must be positive."""

from __future__ import annotations

import pytest

from csiprovider.compat.go.duration import parse_interval, parse_nanoseconds


def test_intervals() -> None:
    assert parse_interval("2m") == 120 and parse_interval("1h30m") == 5400
    assert parse_interval("500ms") == 0.5
    for bad in ("", "2", "2x", "-1s", "0s"):
        with pytest.raises(ValueError):
            parse_interval(bad)


def test_go_forms() -> None:
    assert parse_nanoseconds("1.5h") == 5_400_000_000_000
    assert parse_nanoseconds(".5s") == parse_nanoseconds("5.s") // 10
    assert parse_nanoseconds("1µs") == parse_nanoseconds("1us") == 1000
    assert parse_nanoseconds("-0") == 0 and parse_nanoseconds("+1ns") == 1
    with pytest.raises(ValueError, match="missing unit"):
        parse_nanoseconds("1")
    with pytest.raises(ValueError, match='unknown unit "d"'):
        parse_nanoseconds("1d")
    with pytest.raises(ValueError, match="invalid duration"):
        parse_nanoseconds("9223372036854775808ns")
