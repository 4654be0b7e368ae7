"""The catalogs agents and queues refer to by name: skills, languages, wrap-up codes.

Create, change and delete entries (each change audited in its transaction);
check that names given elsewhere exist (`require`: an unknown one is an
`InvalidField` naming it); add missing entries for the configuration file's
seed and the command line (`ensure`). Deleting an entry still in use is
refused with the users (or queues, routes, rules) that use it.

No routing decisions and no HTTP here; the entries do not change routing by
themselves (an agent's or a queue's settings do), so the configuration
version does not move.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from postroom.domain.errors import ConflictError, NotFoundError
from postroom.services.admin import audit
from postroom.services.admin.schema import Language, Name, SkillName, _printable
from postroom.services.users import InvalidField
from postroom.store.schema import agents, languages, queues, routes, rules, skills, wrapup_codes

Kind = Literal["skill", "language", "wrapup_code"]

Text = Annotated[str, Field(max_length=2000), AfterValidator(_printable)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SkillIn(_In):
    """A skill agents have (with a proficiency 1–5) and routes may require."""

    name: SkillName
    description: Text = ""


class LanguageIn(_In):
    """A language agents speak and routes may require: a code (en, de, pt-BR) and a name."""

    code: Language
    name: Annotated[str, Field(max_length=100), AfterValidator(_printable)] = ""


class WrapupCodeIn(_In):
    """Why an interaction ended; queues list the codes their agents choose from."""

    name: Name
    description: Text = ""


class TextIn(_In):
    """The changeable part of an entry (its key is its id and does not change)."""

    text: Text = Field(default="", description="description (skills, codes) or name (languages)")


@dataclass(frozen=True, slots=True)
class _Spec:
    table: sa.Table
    key: str
    text: str
    label: str


SPECS: dict[str, _Spec] = {
    "skill": _Spec(skills, "name", "description", "skill"),
    "language": _Spec(languages, "code", "name", "language"),
    "wrapup_code": _Spec(wrapup_codes, "name", "description", "wrap-up code"),
}


def _row(spec: _Spec, row: sa.Row[Any]) -> dict[str, Any]:
    return {spec.key: getattr(row, spec.key), spec.text: getattr(row, spec.text)}


def entries(conn: sa.Connection, kind: Kind) -> list[dict[str, Any]]:
    spec = SPECS[kind]
    key = spec.table.c[spec.key]
    return [_row(spec, r) for r in conn.execute(sa.select(spec.table).order_by(key))]


def names(conn: sa.Connection, kind: Kind) -> set[str]:
    spec = SPECS[kind]
    return {str(v) for (v,) in conn.execute(sa.select(spec.table.c[spec.key]))}


def get(conn: sa.Connection, kind: Kind, key: str) -> dict[str, Any]:
    spec = SPECS[kind]
    row = conn.execute(sa.select(spec.table).where(spec.table.c[spec.key] == key)).first()
    if row is None:
        raise NotFoundError(f"no {spec.label} {key!r}")
    return _row(spec, row)


def require(conn: sa.Connection, kind: Kind, wanted: Iterable[str], field: str) -> None:
    """Refuse (InvalidField on `field`) a name that is not in the catalog."""
    known = names(conn, kind)
    for name in wanted:
        if name not in known:
            label = SPECS[kind].label
            raise InvalidField(
                field,
                f"unknown {label} {name!r}; add it to the {label}s catalog first "
                f"(/admin/wrapup-codes, or POST /api/v1/routing/{_path(kind)})",
            )


def _path(kind: Kind) -> str:
    return {"skill": "skills", "language": "languages", "wrapup_code": "wrapupcodes"}[kind]


def ensure(conn: sa.Connection, at: datetime, kind: Kind, wanted: Iterable[str]) -> list[str]:
    """Add the names missing from the catalog (the file's seed and the command line
    may name skills, languages and codes nobody entered yet); the names added."""
    spec = SPECS[kind]
    known = names(conn, kind)
    added = []
    for name in dict.fromkeys(wanted):
        if name and name not in known:
            conn.execute(spec.table.insert().values({spec.key: name, "created_at": at}))
            known.add(name)
            added.append(name)
    return added


def ensure_for_configuration(conn: sa.Connection, config: Any, at: datetime) -> None:
    """The catalog entries a configuration (schema.Configuration) names: queues'
    wrap-up codes and ring skills, routes' and rules' skills and languages."""
    codes: list[str] = []
    skill_names: list[str] = []
    langs: list[str] = []
    for q in config.queues:
        codes.extend(q.wrapup_codes)
        for ring in q.rings:
            skill_names.extend(ring.skills_to_remove)
    for r in config.routes:
        skill_names.extend(r.skills)
        if r.language:
            langs.append(r.language)
    for rule in config.rules:
        skill_names.extend(rule.then.skills or {})
        if rule.then.language:
            langs.append(rule.then.language)
    ensure(conn, at, "wrapup_code", codes)
    ensure(conn, at, "skill", skill_names)
    ensure(conn, at, "language", langs)


def create(
    db: sa.Engine, at: datetime, actor: audit.Actor, kind: Kind, key: str, text: str
) -> dict[str, Any]:
    spec = SPECS[kind]
    with db.begin() as conn:
        found = conn.execute(sa.select(spec.table).where(spec.table.c[spec.key] == key)).first()
        if found is not None:
            raise ConflictError(f"there is already a {spec.label} {key!r}")
        conn.execute(spec.table.insert().values({spec.key: key, spec.text: text, "created_at": at}))
        after = {spec.key: key, spec.text: text}
        audit.record(conn, at, actor, f"{kind}.create", kind, key, None, after)
    return after


def update(
    db: sa.Engine, at: datetime, actor: audit.Actor, kind: Kind, key: str, text: str
) -> dict[str, Any]:
    spec = SPECS[kind]
    with db.begin() as conn:
        before = get(conn, kind, key)
        conn.execute(
            spec.table.update().where(spec.table.c[spec.key] == key).values({spec.text: text})
        )
        after = {spec.key: key, spec.text: text}
        audit.record(conn, at, actor, f"{kind}.update", kind, key, before, after)
    return after


def users_of(conn: sa.Connection, kind: Kind, key: str) -> list[str]:
    """Who or what uses the entry: "agent NAME", "queue NAME", "route ADDR", "rule NAME"."""
    found: list[str] = []
    if kind in ("skill", "language"):
        for row in conn.execute(
            sa.select(agents.c.id, agents.c.skills, agents.c.languages).order_by(agents.c.id)
        ):
            held = [str(n) for n, _ in row.skills] if kind == "skill" else list(row.languages)
            if key in held:
                found.append(f"agent {row.id}")
    for row in conn.execute(sa.select(queues.c.name, queues.c.config).order_by(queues.c.name)):
        config = row.config or {}
        if kind == "wrapup_code" and key in (config.get("wrapup_codes") or []):
            found.append(f"queue {row.name}")
        if kind == "skill" and any(
            key in (ring.get("skills_to_remove") or []) for ring in config.get("rings") or []
        ):
            found.append(f"queue {row.name}")
    if kind in ("skill", "language"):
        for row in conn.execute(sa.select(routes.c.address, routes.c.config)):
            config = row.config or {}
            if (kind == "skill" and key in (config.get("skills") or {})) or (
                kind == "language" and config.get("language") == key
            ):
                found.append(f"route {row.address}")
        for row in conn.execute(sa.select(rules.c.name, rules.c.config)):
            then = (row.config or {}).get("then") or {}
            if (kind == "skill" and key in (then.get("skills") or {})) or (
                kind == "language" and then.get("language") == key
            ):
                found.append(f"rule {row.name}")
    return found


def delete(db: sa.Engine, at: datetime, actor: audit.Actor, kind: Kind, key: str) -> None:
    spec = SPECS[kind]
    with db.begin() as conn:
        before = get(conn, kind, key)
        used = users_of(conn, kind, key)
        if used:
            shown = ", ".join(used[:20]) + (f" and {len(used) - 20} more" if len(used) > 20 else "")
            raise ConflictError(
                f"{spec.label} {key!r} is in use by {shown}; remove it there first"
            )
        conn.execute(spec.table.delete().where(spec.table.c[spec.key] == key))
        audit.record(conn, at, actor, f"{kind}.delete", kind, key, before, None)
