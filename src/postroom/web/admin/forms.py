"""Reading the routes and rules forms: form strings to the shared schema's input,
and stored objects back to form strings. Also where each error is shown.

Translation only: every rule is the schema's (services/admin/schema.py); this
only turns "english:3, billing" into {"english": 3} and the like, and never
touches the database.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

MAX_CONDITIONS = 50


class FormProblem(ValueError):
    """A form field that cannot even be read (e.g. skills not written as name:level)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def text(form: Mapping[str, Any], name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _opt(value: str) -> str | None:
    value = value.strip()
    return value or None


def names(value: str) -> list[str]:
    return [part.strip() for part in value.replace("\n", ",").split(",") if part.strip()]


def skills(value: str, field: str) -> dict[str, str]:
    """ "english:3, billing:2" -> {"english": "3", "billing": "2"} (a bare name: 1)."""
    found: dict[str, str] = {}
    for part in names(value):
        name, colon, level = part.partition(":")
        if not name.strip() or (colon and not level.strip()):
            raise FormProblem(field, f"write skills as name:level, e.g. english:3 (not {part!r})")
        found[name.strip()] = level.strip() if colon else "1"
    return found


def skills_text(value: Mapping[str, float] | None) -> str:
    return ", ".join(f"{k}:{v:g}" for k, v in (value or {}).items())


def place(errors: Mapping[str, str], fields: Iterable[str]) -> dict[str, str]:
    """Move each error to the form field it belongs to: "skills.english" -> "skills",
    "when.0" -> "when.0.value"; what fits no field goes to "" (the form's top)."""
    known = set(fields)
    out: dict[str, str] = {}
    for where, message in errors.items():
        target = where
        if target not in known and f"{target}.value" in known:
            target = f"{target}.value"
        while target and target not in known:
            target = target.rpartition(".")[0]
        out.setdefault(target, message)
    return out


# -- routes ----------------------------------------------------------------------------

ROUTE_FIELDS = (
    "address",
    "queue",
    "priority",
    "skills",
    "language",
    "reply_from",
    "reply_from_name",
    "auto_ack",
    "preferred_agents",
    "preferred_window_s",
    "deadline_s",
)
IMAP_FIELDS = (
    "host",
    "port",
    "tls",
    "user",
    "password",
    "folder",
    "after_import",
    "move_to",
    "poll_interval_s",
    "idle",
)
ROUTE_FORM_FIELDS = (*ROUTE_FIELDS, *(f"imap.{f}" for f in IMAP_FIELDS))


def route_form(form: Mapping[str, Any]) -> dict[str, Any]:
    """The typed strings, to show again."""
    values: dict[str, Any] = {f: text(form, f) for f in ROUTE_FORM_FIELDS}
    values["imap.idle"] = text(form, "imap.idle") == "true"
    return values


def route_data(values: Mapping[str, Any]) -> dict[str, Any]:
    """RouteChange input from the typed strings (validated with strict=False)."""
    data: dict[str, Any] = {"address": values["address"], "queue": values["queue"]}
    for name in ("priority", "preferred_window_s"):
        if values[name].strip():
            data[name] = values[name].strip()
    for name in ("language", "reply_from", "reply_from_name", "auto_ack", "deadline_s"):
        data[name] = _opt(values[name])
    data["skills"] = skills(values["skills"], "skills")
    data["preferred_agents"] = names(values["preferred_agents"])
    if values["imap.host"].strip() or values["imap.user"].strip():
        imap: dict[str, Any] = {
            "host": values["imap.host"],
            "user": values["imap.user"],
            "password": values["imap.password"] or None,
            "idle": bool(values["imap.idle"]),
        }
        for name in ("port", "tls", "folder", "after_import", "poll_interval_s"):
            if values[f"imap.{name}"].strip():
                imap[name] = values[f"imap.{name}"].strip()
        imap["move_to"] = _opt(values["imap.move_to"])
        data["imap"] = imap
    return data


def route_values(route: Mapping[str, Any] | None) -> dict[str, Any]:
    """Form strings for a stored route (its public form), or the new-route defaults."""
    if route is None:
        return {f: "" for f in ROUTE_FORM_FIELDS} | {
            "priority": "0",
            "preferred_window_s": "300",
            "imap.port": "993",
            "imap.tls": "ssl",
            "imap.folder": "INBOX",
            "imap.after_import": "seen",
            "imap.poll_interval_s": "60",
            "imap.idle": True,
        }

    def show(v: Any) -> str:
        if v is None:
            return ""
        return f"{v:g}" if isinstance(v, float) else str(v)

    values: dict[str, Any] = {f: show(route.get(f)) for f in ROUTE_FIELDS}
    values["skills"] = skills_text(route.get("skills"))
    values["preferred_agents"] = ", ".join(route.get("preferred_agents") or [])
    imap = route.get("imap") or {}
    for f in IMAP_FIELDS:
        values[f"imap.{f}"] = show(imap.get(f))
    values["imap.password"] = ""
    values["imap.idle"] = bool(imap.get("idle", True)) if imap else True
    values["imap.password_set"] = bool(imap.get("password_set"))
    return values


# -- rules -----------------------------------------------------------------------------

ACTION_FIELDS = (
    "queue",
    "priority",
    "skills",
    "language",
    "tags",
    "discard",
    "auto_ack",
    "preferred_agents",
    "preferred_window_s",
    "deadline_s",
    "stop",
)
COND_FIELDS = ("field", "op", "value", "negate")


def rule_fields(rows: int) -> tuple[str, ...]:
    return (
        "name",
        "match",
        "enabled",
        *(f"then.{f}" for f in ACTION_FIELDS),
        *(f"when.{i}.{f}" for i in range(rows) for f in COND_FIELDS),
    )


def rule_form(
    form: Mapping[str, Any], *, add_row: bool = False, remove_row: int | None = None
) -> dict[str, Any]:
    """The typed strings; without condition row `remove_row`, and with `add_row` an
    empty row added."""
    conds = []
    for i in range(MAX_CONDITIONS):
        if f"when.{i}.field" not in form:
            break
        if i == remove_row:
            continue
        conds.append(
            {
                "field": text(form, f"when.{i}.field"),
                "op": text(form, f"when.{i}.op") or "contains",
                "value": text(form, f"when.{i}.value"),
                "negate": text(form, f"when.{i}.negate") == "true",
            }
        )
    if add_row and len(conds) < MAX_CONDITIONS:
        conds.append({"field": "subject", "op": "contains", "value": "", "negate": False})
    then: dict[str, Any] = {f: text(form, f"then.{f}") for f in ACTION_FIELDS}
    then["stop"] = text(form, "then.stop") == "true"
    return {
        "name": text(form, "name"),
        "match": text(form, "match") or "all",
        "enabled": text(form, "enabled") == "true",
        "when": conds,
        "then": then,
    }


def rule_data(values: Mapping[str, Any]) -> dict[str, Any]:
    """RuleModel input from the typed strings; condition rows without a value are left
    out (an empty row added to the form is not "contains nothing", true for all)."""
    then = values["then"]
    actions: dict[str, Any] = {"stop": then["stop"], "tags": names(then["tags"])}
    for name in (
        "queue",
        "priority",
        "language",
        "discard",
        "auto_ack",
        "preferred_window_s",
        "deadline_s",
    ):
        actions[name] = _opt(then[name])
    if then["skills"].strip():
        actions["skills"] = skills(then["skills"], "then.skills")
    if then["preferred_agents"].strip():
        actions["preferred_agents"] = names(then["preferred_agents"])
    when = [
        {"field": c["field"], "op": c["op"], "value": c["value"], "negate": c["negate"]}
        for c in values["when"]
        if c["value"] != ""
    ]
    return {
        "name": values["name"],
        "match": values["match"],
        "enabled": values["enabled"],
        "when": when,
        "then": actions,
    }


def rule_values(rule: Mapping[str, Any] | None) -> dict[str, Any]:
    """Form strings for a stored rule, or a new rule with one empty condition."""
    if rule is None:
        return {
            "name": "",
            "match": "all",
            "enabled": True,
            "when": [{"field": "subject", "op": "contains", "value": "", "negate": False}],
            "then": {f: "" for f in ACTION_FIELDS} | {"stop": False},
        }
    a = rule.get("then") or {}

    def show(v: Any) -> str:
        if v is None:
            return ""
        return f"{v:g}" if isinstance(v, float) else str(v)

    then: dict[str, Any] = {f: show(a.get(f)) for f in ACTION_FIELDS}
    then["skills"] = skills_text(a.get("skills")) if a.get("skills") is not None else ""
    then["tags"] = ", ".join(a.get("tags") or [])
    agents = a.get("preferred_agents")
    then["preferred_agents"] = ", ".join(agents) if agents else ""
    then["stop"] = bool(a.get("stop"))
    return {
        "name": rule.get("name", ""),
        "match": rule.get("match", "all"),
        "enabled": bool(rule.get("enabled", True)),
        "when": [dict(c) for c in rule.get("when") or []],
        "then": then,
    }
