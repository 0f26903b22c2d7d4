"""The bounded map every cache uses: at most max_entries, least recently used first out."""

from __future__ import annotations

import pytest

from csiprovider.caches import LRU


def test_bounded_and_least_recently_used_goes_first() -> None:
    cache: LRU[str, int] = LRU(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # "a" is now the most recent
    cache.put("c", 3)
    assert "b" not in cache and list(cache) == ["a", "c"] and len(cache) == 2
    assert cache.get("b") is None and cache.get("b", 0) == 0
    assert cache.pop("a") == 1 and cache.pop("a") is None
    with pytest.raises(ValueError):
        LRU(0)
