"""LIKE patterns for searches: % and _ (and the escape character) match themselves."""

from __future__ import annotations

from postroom.store.db import like_contains, like_escaped


def test_wildcards_are_escaped() -> None:
    assert like_escaped("100%_a\\b") == "100\\%\\_a\\\\b"
    assert like_contains("ABC") == "%abc%"
