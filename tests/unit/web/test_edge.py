"""The edge guard's checks on raw requests: JSON nesting counted outside strings,
NUL characters in addresses, forms and JSON escapes, body size."""

from __future__ import annotations

import json

import pytest

from postroom.web.edge import (
    MAX_JSON_BODY,
    MAX_JSON_DEPTH,
    RequestRefused,
    check_body,
    check_url,
    nested_deeper_than,
)


def test_depth_counts_brackets_outside_strings_only() -> None:
    assert not nested_deeper_than(json.dumps({"t": "[" * 100}).encode(), MAX_JSON_DEPTH)
    assert not nested_deeper_than(json.dumps([[[1]]] * 1000).encode(), 3)
    assert nested_deeper_than(json.dumps([[[1]]]).encode(), 2)
    assert nested_deeper_than(b'[{"a": [{"b": "\\"]]]"}]}]', 3)
    assert not nested_deeper_than(b'[{"a": [{"b": "\\"]]]"}]}]', 4)
    assert nested_deeper_than(b"[{[{[{}]}]}]", 5) and not nested_deeper_than(b"[{[{[{}]}]}]", 6)
    assert nested_deeper_than(b"]]]][[[[" * 10, 4)  # unbalanced counts as too deep
    assert nested_deeper_than(b"[" * 10_000 + b"]" * 10_000, MAX_JSON_DEPTH)


def test_deep_json_is_refused_and_ordinary_json_passes() -> None:
    check_body("application/json", json.dumps({"to": ["a@b"], "text": "[[[[" * 50}).encode())
    for ctype in ("application/json", "application/json; charset=utf-8", "", "application/x+json"):
        with pytest.raises(RequestRefused) as err:
            check_body(ctype, b"[" * 40 + b"]" * 40)
        assert err.value.status == 400 and "nested" in str(err.value)
    check_body("text/plain", b"[" * 40)  # not read as JSON by anyone


def test_nul_characters_are_refused_where_the_database_would_meet_them() -> None:
    for body in (b'{"q": "\\u0000"}', b'{"q": "a\\\\\\u0000"}', b'["\\U0000"]'):
        with pytest.raises(RequestRefused):
            check_body("application/json", body)
    check_body("application/json", b'{"q": "\\\\u0000"}')  # a backslash, then "u0000"
    with pytest.raises(RequestRefused):
        check_body("application/x-www-form-urlencoded", b"user=a%00b&password=x")
    check_body("multipart/form-data; boundary=x", b"\x00\x00 any bytes")
    for path, query in ((b"/api/v1/queues/a%00b", b""), (b"/api/v1/conversations", b"q=%00")):
        with pytest.raises(RequestRefused):
            check_url({"raw_path": path, "query_string": query})
    check_url({"raw_path": b"/api/v1/queues/a%2500b", "query_string": b"q=100%25"})


def test_a_json_body_over_the_limit_is_413() -> None:
    with pytest.raises(RequestRefused) as err:
        check_body("application/json", b" " * (MAX_JSON_BODY + 1))
    assert err.value.status == 413
