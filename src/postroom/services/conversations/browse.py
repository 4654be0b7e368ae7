"""Finding conversations: the browser's filters, full-text search through the search
port (services/search/), sorting, and keyset paging with opaque cursors. Every
query goes through the access rule (access.py `visible_clause`). It reads and
changes nothing; it knows nothing of HTTP.

A cursor is the sort key of the last row of a page (base64 of a small JSON list):
the next page starts strictly after it, so rows never repeat or go missing between
pages while new mail arrives (new conversations sort before the first page when
newest first). Relevance paging follows the rank; on SQLite bm25 weighs words by
how rare they are in all mail, so a page taken after much new mail may rank a few
rows differently.
"""

from __future__ import annotations

import base64
import binascii
import html
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa

from postroom.domain.errors import PostroomError
from postroom.domain.search_query import Query, parse, snippet, tokens
from postroom.mail.threading import thread_token
from postroom.services.conversations.access import visible_clause
from postroom.services.conversations.common import STATES
from postroom.services.conversations.common import iso as _iso
from postroom.services.search.port import SearchIndex, for_dialect
from postroom.services.users import User
from postroom.store.db import as_utc
from postroom.store.schema import ID_MAX, conversations, messages, threads

Sort = Literal["newest", "oldest", "activity", "relevance", "id"]
SORTS: tuple[str, ...] = ("newest", "oldest", "activity", "relevance")
DIRECTIONS = ("in", "out")
MAX_LIMIT = 200
MAX_CURSOR = 500


class InvalidCursor(PostroomError):
    """A page cursor that this list did not hand out."""

    def __init__(self) -> None:
        super().__init__(
            "the cursor is not one this list handed out (or it belongs to another sort); "
            "start again without a cursor and follow next_cursor"
        )


@dataclass(frozen=True, slots=True)
class BrowseFilter:
    q: str | None = None
    state: str | None = None
    queue: str | None = None
    agent: str | None = None
    wrapup_code: str | None = None
    tag: str | None = None
    sender: str | None = None  # an address, or a domain (example.com)
    direction: str | None = None  # "in": the customer wrote first; "out": an agent did
    created_from: datetime | None = None
    created_to: datetime | None = None  # exclusive
    mine: bool = False
    sort: Sort | None = None  # None: relevance with words to search, else newest
    limit: int = 50
    cursor: str | None = None
    before_id: int | None = None  # the older API's paging (sort "id")


@dataclass(frozen=True, slots=True)
class Page:
    conversations: list[dict[str, Any]]
    next_cursor: str | None
    sort: str
    query: Query


def summary(row: Any, prefix: str) -> dict[str, Any]:
    """A conversation as lists show it."""
    return {
        "id": row.id,
        "reference": thread_token(prefix, row.thread_id),
        "thread_id": row.thread_id,
        "state": row.state,
        "queue": row.queue,
        "priority": row.priority,
        "agent": row.agent_id,
        "last_agent": row.last_agent,
        "offer_deadline": _iso(row.offer_deadline),
        "subject": row.subject,
        "tags": row.tags,
        "language": row.language,
        "created_at": _iso(row.created_at),
        "enqueued_at": _iso(row.enqueued_at),
        "closed_at": _iso(row.closed_at),
        "wrapup_code": row.wrapup_code,
    }


def _like_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def sender_clause(value: str) -> sa.ColumnElement[bool]:
    """Conversations with a message from this address, or from anyone at this domain."""
    value = value.strip().lower().lstrip("@")
    if "@" in value:
        match: sa.ColumnElement[bool] = messages.c.sender == value
    else:
        match = messages.c.sender.like("%@" + _like_escape(value), escape="\\")
    return sa.exists(
        sa.select(messages.c.id).where(messages.c.conversation_id == conversations.c.id, match)
    )


def _first_direction() -> sa.ScalarSelect[Any]:
    return (
        sa.select(messages.c.direction)
        .where(messages.c.conversation_id == conversations.c.id)
        .order_by(messages.c.id)
        .limit(1)
        .scalar_subquery()
    )


def _encode(sort: str, key: Sequence[Any]) -> str:
    data = json.dumps([sort, *key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _decode(cursor: str, sort: str) -> list[Any]:
    """The sort key in `cursor`, checked; InvalidCursor for anything else."""
    if len(cursor) > MAX_CURSOR or not cursor.isascii():
        raise InvalidCursor()
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
    except (binascii.Error, ValueError, RecursionError):
        raise InvalidCursor() from None
    if not isinstance(data, list) or len(data) != 3 or data[0] != sort:
        raise InvalidCursor()
    value, cid = data[1], data[2]
    if not isinstance(cid, int) or isinstance(cid, bool) or not 0 < cid <= ID_MAX:
        raise InvalidCursor()
    if sort == "relevance":
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise InvalidCursor()
        if not math.isfinite(value):
            raise InvalidCursor()
        return [float(value), cid]
    if not isinstance(value, str) or len(value) > 40:
        raise InvalidCursor()
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidCursor() from None
    if when.tzinfo is None:
        raise InvalidCursor()
    return [when, cid]


def _sort_of(flt: BrowseFilter, query: Query) -> str:
    if flt.sort is None:
        return "relevance" if query.has_text else "newest"
    if flt.sort == "relevance" and not query.has_text:
        return "newest"  # nothing to rank by
    return flt.sort


def _filters(q: sa.Select[Any], flt: BrowseFilter, user: User, query: Query,
             port: SearchIndex) -> sa.Select[Any]:  # fmt: skip
    c = conversations.c
    if flt.state is not None:
        if flt.state not in STATES:
            raise PostroomError(f"state must be one of {', '.join(STATES)}")
        q = q.where(c.state == flt.state)
    if flt.direction is not None:
        if flt.direction not in DIRECTIONS:
            raise PostroomError("direction must be in (the customer wrote) or out (an agent did)")
        q = q.where(_first_direction() == flt.direction)
    if flt.queue:
        q = q.where(c.queue == flt.queue)
    if flt.agent:
        # Held now, or held last (a closed conversation keeps its last agent).
        q = q.where(sa.or_(c.agent_id == flt.agent, c.last_agent == flt.agent))
    if flt.mine:
        q = q.where(c.agent_id == user.id)
    if flt.wrapup_code:
        q = q.where(c.wrapup_code == flt.wrapup_code)
    if flt.tag:
        q = q.where(port.has_tag(c.tags, flt.tag))
    if flt.sender:
        q = q.where(sender_clause(flt.sender))
    if flt.created_from is not None:
        q = q.where(c.created_at >= flt.created_from)
    if flt.created_to is not None:
        q = q.where(c.created_at < flt.created_to)
    if flt.before_id is not None:
        q = q.where(c.id < flt.before_id)
    # The operators of the search box.
    for s in query.senders:
        q = q.where(sender_clause(s))
    if query.queues:
        q = q.where(c.queue.in_(query.queues))
    if query.states:
        q = q.where(c.state.in_(query.states))
    if query.refs:
        q = q.where(c.thread_id.in_([n for n in query.refs if n <= ID_MAX] or [-1]))
    return q


def browse(db: sa.Engine, user: User, flt: BrowseFilter, *, prefix: str = "PR") -> Page:
    """One page of the conversations `user` may see that match `flt`."""
    query = parse(flt.q, prefix=prefix)
    sort = "id" if flt.sort == "id" else _sort_of(flt, query)
    limit = max(1, min(flt.limit, MAX_LIMIT))
    if flt.q and flt.q.strip() and query.empty:
        return Page([], None, sort, query)  # typed something with no word in it: no match
    port = for_dialect(db.dialect.name)
    c = conversations.c
    cols: list[Any] = [conversations, threads.c.subject, threads.c.last_activity_at]
    best = None
    if query.has_text:
        hits = port.matches(query)
        best = (
            sa.select(
                hits.c.conversation_id.label("cid"),
                sa.func.min(hits.c.score).label("score"),
                sa.func.max(hits.c.message_id).label("message_id"),
            )
            .where(hits.c.conversation_id.is_not(None))
            .group_by(hits.c.conversation_id)
            .subquery("best")
        )
        cols += [best.c.score, best.c.message_id.label("hit_message")]
    joined = conversations.join(threads, threads.c.id == c.thread_id)
    if best is not None:
        joined = joined.join(best, best.c.cid == c.id)
    q = sa.select(*cols).select_from(joined).where(visible_clause(user))
    q = _filters(q, flt, user, query, port)
    key_col: Any
    if sort == "relevance":
        assert best is not None
        key_col = best.c.score
        order = [best.c.score.asc(), c.id.desc()]
    elif sort == "oldest":
        key_col = c.created_at
        order = [c.created_at.asc(), c.id.asc()]
    elif sort == "activity":
        key_col = threads.c.last_activity_at
        order = [threads.c.last_activity_at.desc(), c.id.desc()]
    elif sort == "newest":
        key_col = c.created_at
        order = [c.created_at.desc(), c.id.desc()]
    else:
        key_col = None
        order = [c.id.desc()]
    if flt.cursor and sort != "id":
        value, cid = _decode(flt.cursor, sort)
        if sort in ("relevance", "oldest"):
            after = key_col > value
            tie = c.id < cid if sort == "relevance" else c.id > cid
        else:
            after, tie = key_col < value, c.id < cid
        q = q.where(sa.or_(after, sa.and_(key_col == value, tie)))
    with db.connect() as conn:
        rows = conn.execute(q.order_by(*order).limit(limit + 1)).all()
        more = len(rows) > limit
        rows = rows[:limit]
        texts: dict[int, Any] = {}
        if best is not None and rows:
            found = conn.execute(
                sa.select(messages.c.id, messages.c.subject, messages.c.text).where(
                    messages.c.id.in_([int(r.hit_message) for r in rows])
                )
            )
            texts = {int(m.id): m for m in found}
    items = []
    for r in rows:
        item = summary(r, prefix)
        if best is not None:
            item["rank"] = round(-float(r.score), 6)
            hit = texts.get(int(r.hit_message))
            item["snippet"] = snippet_html(hit.text if hit else None,
                                           hit.subject if hit else None, query)  # fmt: skip
            item["matched_message"] = int(r.hit_message)
        items.append(item)
    next_cursor = None
    if more and rows and sort != "id":
        last = rows[-1]
        if sort == "relevance":
            next_cursor = _encode(sort, [float(last.score), int(last.id)])
        else:
            when = as_utc(last.last_activity_at if sort == "activity" else last.created_at)
            assert when is not None
            next_cursor = _encode(sort, [when.isoformat(), int(last.id)])
    return Page(items, next_cursor, sort, query)


def snippet_html(text: str | None, subject: str | None, query: Query) -> str:
    """HTML-safe: each piece escaped, then the matching words wrapped in <mark>."""
    wanted = set(query.words)
    source = text
    if subject and not wanted.intersection(tokens(text)) and wanted.intersection(tokens(subject)):
        source = subject
    return "".join(
        f"<mark>{html.escape(p.text)}</mark>" if p.marked else html.escape(p.text)
        for p in snippet(source, wanted)
    )
