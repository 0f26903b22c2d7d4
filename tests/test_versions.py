"""Object versions: keyed, stable with a fixed key, sensitive to config and content."""

from __future__ import annotations

from pathlib import Path

import pytest

from csiprovider.versions import Versioner


def test_stable_with_same_key(hmac_key: Path) -> None:
    a, b = Versioner.from_file(hmac_key), Versioner.from_file(hmac_key)
    assert a.version('{"o":1}', b"x") == b.version('{"o":1}', b"x")


def test_changes_with_content_spec_and_key(hmac_key: Path) -> None:
    v = Versioner.from_file(hmac_key)
    base = v.version('{"o":1}', b"x")
    assert v.version('{"o":1}', b"y") != base
    assert v.version('{"o":2}', b"x") != base
    assert Versioner.random().version('{"o":1}', b"x") != base


def test_equal_content_of_different_objects_differs(hmac_key: Path) -> None:
    v = Versioner.from_file(hmac_key)
    assert v.version('{"objectName":"a"}', b"same") != v.version('{"objectName":"b"}', b"same")


def test_short_key_file_is_refused(tmp_path: Path) -> None:
    key = tmp_path / "k"
    key.write_text("short\n")
    with pytest.raises(ValueError, match="at least 16"):
        Versioner.from_file(key)
    assert "short" not in repr(Versioner.random())
