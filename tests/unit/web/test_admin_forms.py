"""web/admin/forms.py: form strings to the schema's input and back, and each
error placed beside the field it belongs to."""

from __future__ import annotations

import pytest

from postroom.services.admin.schema import RouteChange, RuleModel
from postroom.web.admin import forms


def test_skills_text_both_ways_and_a_clear_problem() -> None:
    assert forms.skills("english:3, billing", "skills") == {"english": "3", "billing": "1"}
    assert forms.skills_text({"english": 3.0, "billing": 2.5}) == "english:3, billing:2.5"
    with pytest.raises(forms.FormProblem) as exc:
        forms.skills("english:", "then.skills")
    assert exc.value.field == "then.skills" and "name:level" in str(exc.value)


def test_errors_are_placed_on_their_fields() -> None:
    fields = forms.rule_fields(2)
    placed = forms.place(
        {"then.skills.english": "bad level", "when.1": "bad regex", "whatever.x": "?"}, fields
    )
    assert placed == {"then.skills": "bad level", "when.1.value": "bad regex", "": "?"}


def test_route_form_round_trip_keeps_the_password_write_only() -> None:
    stored = {
        "address": "a@example.com", "queue": "support", "priority": 2, "skills": {"en": 3.0},
        "preferred_agents": ["ann"], "preferred_window_s": 300.0,
        "imap": {"host": "h", "user": "u", "password": None, "password_set": True,
                 "port": 993, "tls": "ssl", "folder": "INBOX", "after_import": "seen",
                 "move_to": None, "poll_interval_s": 60.0, "idle": True},
    }
    values = forms.route_values(stored)
    assert values["imap.password"] == "" and values["imap.password_set"] is True
    change = RouteChange.model_validate(forms.route_data(values), strict=False)
    assert change.imap is not None and change.imap.password is None
    assert change.with_password("kept").imap is not None
    assert change.with_password("kept").imap.password == "kept"  # type: ignore[union-attr]
    assert change.skills == {"en": 3.0} and change.preferred_agents == ["ann"]


def test_rule_form_rows_and_blank_actions() -> None:
    form = {"name": "r", "match": "any", "enabled": "true",
            "when.0.field": "subject", "when.0.op": "contains", "when.0.value": "a",
            "when.1.field": "", "when.1.op": "contains", "when.1.value": "",
            "then.priority": "", "then.tags": "x, y", "then.stop": "true"}
    values = forms.rule_form(form, add_row=True)
    assert len(values["when"]) == 3
    model = RuleModel.model_validate(forms.rule_data(values), strict=False)
    assert [c.value for c in model.when] == ["a"]  # blank rows left out
    assert model.then.priority is None and model.then.tags == ["x", "y"] and model.then.stop
    assert len(forms.rule_form(form, remove_row=0)["when"]) == 1
