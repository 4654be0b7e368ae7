"""The canned response library's pure parts: substitution with escaped HTML
and folder paths."""

from __future__ import annotations

import pytest

from postroom.services import canned
from postroom.services.users import InvalidField


def test_substitution_fills_known_fields_escapes_html_and_keeps_unknown_ones() -> None:
    values = {"customer_name": '<b>"Eve"</b>', "agent_name": "Ann"}
    text, html = canned.substitute_both(
        "Hi {customer_name}, {agent_name} {nope}", "<p>{customer_name}</p>", values
    )
    assert text == 'Hi <b>"Eve"</b>, Ann {nope}'
    assert html == "<p>&lt;b&gt;&quot;Eve&quot;&lt;/b&gt;</p>"
    assert canned.substitute(None, values) is None
    assert canned.substitute("{queue_name}", values) == "{queue_name}"  # no value: as written


@pytest.mark.parametrize(
    ("given", "stored"),
    [("", ""), ("/", ""), (" Billing / Refunds/ ", "Billing/Refunds"), ("a//b", "a/b"), (None, "")],
)
def test_folder_paths_are_normalized(given: str | None, stored: str) -> None:
    assert canned.normalize_folder(given) == stored


def test_folder_limits_name_the_field() -> None:
    with pytest.raises(InvalidField) as exc:
        canned.normalize_folder("x" * 61)
    assert exc.value.field == "folder"
    with pytest.raises(InvalidField):
        canned.normalize_folder("/".join(["abcdefghij"] * 19))  # 208 characters
