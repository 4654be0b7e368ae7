"""Canned responses: the library (folders, search), its changes with their audit
entries, and the substitution of {customer_name}, {agent_name}, {queue_name} and
{reference} that canned responses, their preview and queue signatures share.

Each change owns its transaction and writes its audit entry in it. Values are
checked here (a named field in each error); who may change the library is the
callers' check. It knows nothing of HTTP.
"""

from __future__ import annotations

import html as html_lib
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from postroom.domain.errors import NotFoundError, PostroomError
from postroom.mail.threading import thread_token
from postroom.services import conversations as conv_svc
from postroom.services.admin import audit
from postroom.services.admin.audit import Actor
from postroom.services.users import InvalidField, User
from postroom.store.db import LIKE_ESCAPE, as_utc, like_contains, like_escaped
from postroom.store.schema import agents, canned_responses

NAME_MAX = 200
FOLDER_MAX = 200
FOLDER_PART_MAX = 60
TEXT_MAX = 100_000
HTML_MAX = 500_000
FIELDS = ("customer_name", "agent_name", "queue_name", "reference")

_FIELD = re.compile(r"\{(" + "|".join(FIELDS) + r")\}")


# -- substitution ------------------------------------------------------------------------


def substitute(template: str | None, values: Mapping[str, str]) -> str | None:
    """`template` with the known fields filled in; unknown ones stay as written. Pure."""
    if template is None:
        return None
    return _FIELD.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def substitute_both(
    text: str | None, html: str | None, values: Mapping[str, str]
) -> tuple[str | None, str | None]:
    """Text and HTML filled in; in the HTML the values are escaped, so a customer
    whose name is markup stays text. Pure."""
    escaped = {k: html_lib.escape(v, quote=True) for k, v in values.items()}
    return substitute(text, values), substitute(html, escaped)


def agent_name(db: sa.Engine, user: User) -> str:
    """The name the user's agent profile gives (else the user's own name)."""
    with db.connect() as conn:
        name = conn.execute(sa.select(agents.c.name).where(agents.c.id == user.id)).scalar()
    return str(name or user.name)


def substitution_values(
    db: sa.Engine, user: User, conversation_id: int | None, *, queue: str = "", prefix: str = "PR"
) -> dict[str, str]:
    """The values of the substitution fields for `user` in a conversation they can see.

    Without a conversation (a new email) only {agent_name} and {queue_name} (the
    given `queue`) are known; {customer_name} and {reference} become empty.
    """
    values = {
        "customer_name": "",
        "agent_name": agent_name(db, user),
        "queue_name": queue,
        "reference": "",
    }
    if conversation_id is not None:
        conv_svc.ensure_visible(db, user, conversation_id)
        customer, conv_queue, thread_id = conv_svc.customer_and_queue(db, conversation_id)
        values |= {
            "customer_name": customer,
            "queue_name": queue or conv_queue,
            "reference": thread_token(prefix, thread_id),
        }
    return values


# -- reading the library ------------------------------------------------------------------


def _iso(value: datetime | None) -> str | None:
    at = as_utc(value)
    return at.isoformat() if at is not None else None


def _json(r: sa.Row[Any]) -> dict[str, Any]:
    return {
        "id": r.id,
        "name": r.name,
        "folder": r.folder or "",
        "queue": r.queue,
        "text": r.text,
        "html": r.html,
        "created_at": _iso(r.created_at),
        "updated_at": _iso(r.updated_at),
    }


def list_canned(
    db: sa.Engine,
    *,
    search: str | None = None,
    queue: str | None = None,
    folder: str | None = None,
) -> list[dict[str, Any]]:
    """The library by folder and name: `search` finds text in the name, the text or
    the folder; `queue` keeps those for every queue and that one; `folder` keeps
    that folder and the folders below it."""
    q = sa.select(canned_responses)
    if queue:
        q = q.where(sa.or_(canned_responses.c.queue.is_(None), canned_responses.c.queue == queue))
    if search and search.strip():
        like = like_contains(search.strip())
        q = q.where(
            sa.or_(
                sa.func.lower(canned_responses.c.name).like(like, escape=LIKE_ESCAPE),
                sa.func.lower(canned_responses.c.text).like(like, escape=LIKE_ESCAPE),
                sa.func.lower(canned_responses.c.folder).like(like, escape=LIKE_ESCAPE),
            )
        )
    if folder is not None and folder.strip("/ "):
        path = normalize_folder(folder)
        below = like_escaped(path) + "/%"
        q = q.where(
            sa.or_(
                canned_responses.c.folder == path,
                canned_responses.c.folder.like(below, escape=LIKE_ESCAPE),
            )
        )
    order = (canned_responses.c.folder, canned_responses.c.name, canned_responses.c.id)
    with db.connect() as conn:
        return [_json(r) for r in conn.execute(q.order_by(*order))]


def folders(db: sa.Engine) -> list[str]:
    """Every folder path in use, with the folders above them, sorted ("" left out)."""
    with db.connect() as conn:
        used = conn.execute(sa.select(canned_responses.c.folder).distinct()).scalars().all()
    found: set[str] = set()
    for path in used:
        parts = [p for p in (path or "").split("/") if p]
        for i in range(1, len(parts) + 1):
            found.add("/".join(parts[:i]))
    return sorted(found, key=lambda p: [s.lower() for s in p.split("/")])


def get_canned(db: sa.Engine, canned_id: int) -> dict[str, Any]:
    with db.connect() as conn:
        row = conn.execute(
            sa.select(canned_responses).where(canned_responses.c.id == canned_id)
        ).first()
    if row is None:
        raise NotFoundError(f"no canned response {canned_id}; see GET /api/v1/canned-responses")
    return _json(row)


# -- changes ----------------------------------------------------------------------------------


def normalize_folder(value: str | None) -> str:
    """ "Billing / Refunds/" -> "Billing/Refunds"; "" is the top level."""
    parts = [p.strip() for p in (value or "").split("/")]
    parts = [p for p in parts if p]
    for part in parts:
        if len(part) > FOLDER_PART_MAX:
            raise InvalidField(
                "folder", f"each folder name may have at most {FOLDER_PART_MAX} characters"
            )
    path = "/".join(parts)
    if len(path) > FOLDER_MAX:
        raise InvalidField("folder", f"the folder path may have at most {FOLDER_MAX} characters")
    return path


def _checked(values: Mapping[str, Any], known_queues: Iterable[str]) -> dict[str, Any]:
    name = str(values.get("name") or "").strip()
    if not name:
        raise InvalidField("name", "give the canned response a name")
    if len(name) > NAME_MAX:
        raise InvalidField("name", f"a name may have at most {NAME_MAX} characters")
    text = str(values.get("text") or "")
    if not text.strip():
        raise InvalidField("text", "write the text agents insert")
    if len(text) > TEXT_MAX:
        raise InvalidField("text", f"the text may have at most {TEXT_MAX} characters")
    html = values.get("html") or None
    if html is not None and len(html) > HTML_MAX:
        raise InvalidField("html", f"the HTML may have at most {HTML_MAX} characters")
    queue = values.get("queue") or None
    known = list(known_queues)
    if queue is not None and queue not in known:
        raise InvalidField(
            "queue",
            f"queue {queue!r} does not exist; leave it empty for every queue or use one of: "
            + ", ".join(known),
        )
    return {
        "name": name,
        "folder": normalize_folder(values.get("folder")),
        "queue": queue,
        "text": text,
        "html": html,
    }


_AUDITED = ("name", "folder", "queue", "text", "html")


def _audited(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: item.get(k) for k in _AUDITED}


def create(
    db: sa.Engine,
    clock: Callable[[], datetime],
    actor: Actor,
    values: Mapping[str, Any],
    *,
    known_queues: Iterable[str],
) -> dict[str, Any]:
    """Add one to the library (fields: name, folder, queue, text, html)."""
    fields = _checked(values, known_queues)
    at = clock()
    with db.begin() as conn:
        cid = conn.execute(
            canned_responses.insert()
            .values(**fields, created_at=at, updated_at=at)
            .returning(canned_responses.c.id)
        ).scalar_one()
        audit.record(
            conn, at, actor, "canned_response.create", "canned_response", str(cid), None, fields
        )
        row = conn.execute(sa.select(canned_responses).where(canned_responses.c.id == cid)).one()
    return _json(row)


def update(
    db: sa.Engine,
    clock: Callable[[], datetime],
    actor: Actor,
    canned_id: int,
    changes: Mapping[str, Any],
    *,
    known_queues: Iterable[str],
) -> dict[str, Any]:
    """Change the given fields (the others stay); the whole result is checked."""
    unknown = set(changes) - set(_AUDITED)
    if unknown:
        raise PostroomError(f"unknown fields {', '.join(sorted(unknown))}")
    at = clock()
    with db.begin() as conn:
        row = conn.execute(
            sa.select(canned_responses).where(canned_responses.c.id == canned_id).with_for_update()
        ).first()
        if row is None:
            raise NotFoundError(f"no canned response {canned_id}; see GET /api/v1/canned-responses")
        before = _audited(_json(row))
        fields = _checked(before | dict(changes), known_queues)
        conn.execute(
            canned_responses.update()
            .where(canned_responses.c.id == canned_id)
            .values(**fields, updated_at=at)
        )
        if fields != before:
            audit.record(
                conn,
                at,
                actor,
                "canned_response.update",
                "canned_response",
                str(canned_id),
                before,
                fields,
            )
        row = conn.execute(
            sa.select(canned_responses).where(canned_responses.c.id == canned_id)
        ).one()
    return _json(row)


def delete(db: sa.Engine, clock: Callable[[], datetime], actor: Actor, canned_id: int) -> None:
    at = clock()
    with db.begin() as conn:
        row = conn.execute(
            sa.select(canned_responses).where(canned_responses.c.id == canned_id).with_for_update()
        ).first()
        if row is None:
            raise NotFoundError(f"no canned response {canned_id}; see GET /api/v1/canned-responses")
        conn.execute(canned_responses.delete().where(canned_responses.c.id == canned_id))
        audit.record(
            conn,
            at,
            actor,
            "canned_response.delete",
            "canned_response",
            str(canned_id),
            _audited(_json(row)),
            None,
        )


# -- rendering --------------------------------------------------------------------------------


def render(
    db: sa.Engine,
    user: User,
    canned_id: int,
    conversation_id: int | None,
    *,
    queue: str = "",
    prefix: str = "PR",
) -> dict[str, Any]:
    """The canned response with its fields filled in for one conversation the user
    can see, or, without a conversation (a new email), for `queue` (customer and
    reference stay empty)."""
    if conversation_id is not None:
        conv_svc.ensure_visible(db, user, conversation_id)
    item = get_canned(db, canned_id)
    values = substitution_values(db, user, conversation_id, queue=queue, prefix=prefix)
    text, html = substitute_both(item["text"], item["html"], values)
    return {"id": item["id"], "name": item["name"], "text": text, "html": html}


def preview(
    db: sa.Engine,
    user: User,
    text: str,
    html: str | None,
    conversation_id: int | None,
    *,
    queue: str = "",
    prefix: str = "PR",
) -> dict[str, Any]:
    """An unsaved text (and HTML) filled in as `render` would: for a conversation
    the user can see, or with sample values for what is not known (the editor's
    preview). Which fields the template uses, and unknown ones, are listed."""
    values = substitution_values(db, user, conversation_id, queue=queue, prefix=prefix)
    if conversation_id is None:
        values |= {
            "customer_name": values["customer_name"] or "Alex Example",
            "queue_name": values["queue_name"] or "support",
            "reference": values["reference"] or thread_token(prefix, 1042),
        }
    out_text, out_html = substitute_both(text, html, values)
    written = set(re.findall(r"\{([a-z_]+)\}", text + (html or "")))
    return {
        "text": out_text,
        "html": out_html,
        "values": values,
        "fields_used": sorted(written & set(FIELDS)),
        "unknown_fields": sorted(written - set(FIELDS)),
    }
