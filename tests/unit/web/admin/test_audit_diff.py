"""The audit page's before/after rows: one per field, changed ones marked."""

from __future__ import annotations

from postroom.web.admin.audit import diff


def test_objects_give_one_row_per_field_with_changes_marked() -> None:
    rows = diff({"a": 1, "b": "x", "c": [1]}, {"a": 2, "b": "x", "d": None})
    assert [(r["field"], r["before"], r["after"], r["changed"]) for r in rows] == [
        ("a", "1", "2", True),
        ("b", "x", "x", False),
        ("c", "[1]", "", True),
        ("d", "", "", False),
    ]


def test_a_created_or_deleted_object_marks_every_field() -> None:
    assert all(r["changed"] for r in diff(None, {"name": "vip", "size": 2}))
    assert [r["before"] for r in diff({"name": "vip"}, None)] == ["vip"]


def test_values_that_are_not_objects_give_one_row() -> None:
    assert diff("old", "new") == [{"field": "", "before": "old", "after": "new", "changed": True}]
