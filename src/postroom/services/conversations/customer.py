"""The customer panel: who a conversation's customer is (the sender of its first
received message; for an email an agent started, its first To address), their
other conversations (any thread the address took part in) and those of their
domain — except at free-mail providers (domain/search_query.py FREE_MAIL_DOMAINS),
where two senders are strangers. Only what the user may see (access.py). It
reads and changes nothing; it knows nothing of HTTP.
"""

from __future__ import annotations

from email.utils import getaddresses
from typing import Any

import sqlalchemy as sa

from postroom.domain.search_query import FREE_MAIL_DOMAINS, address_domain, shared_domain
from postroom.services.conversations.access import ensure_visible, visible_clause
from postroom.services.conversations.browse import summary
from postroom.services.users import User
from postroom.store.schema import conversations, messages, thread_participants, threads

LIMIT = 20  # conversations shown in each list


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def customer_address(conn: sa.Connection, conversation_id: int) -> str | None:
    first_in = conn.execute(
        sa.select(messages.c.sender)
        .where(
            messages.c.conversation_id == conversation_id,
            messages.c.direction == "in",
            messages.c.sender.is_not(None),
        )
        .order_by(messages.c.id)
        .limit(1)
    ).scalar()
    if first_in:
        return str(first_in).lower()
    first = conn.execute(
        sa.select(messages.c.headers)
        .where(messages.c.conversation_id == conversation_id)
        .order_by(messages.c.id)
        .limit(1)
    ).scalar()
    to = [str(v) for k, v in (first or []) if str(k).lower() == "to"]
    found = [addr.lower() for _, addr in getaddresses(to) if addr]
    return found[0] if found else None


def _conversations(
    conn: sa.Connection, user: User, where: sa.ColumnElement[bool], exclude: int, prefix: str
) -> list[dict[str, Any]]:
    threads_of = sa.select(thread_participants.c.thread_id).where(where)
    rows = conn.execute(
        sa.select(conversations, threads.c.subject)
        .join(threads, threads.c.id == conversations.c.thread_id)
        .where(
            conversations.c.thread_id.in_(threads_of),
            conversations.c.id != exclude,
            visible_clause(user),
        )
        .order_by(conversations.c.created_at.desc(), conversations.c.id.desc())
        .limit(LIMIT)
    ).all()
    return [summary(r, prefix) for r in rows]


def customer_panel(
    db: sa.Engine, user: User, conversation_id: int, *, prefix: str = "PR"
) -> dict[str, Any]:
    """``{"address", "domain", "free_mail", "same_sender", "same_domain"}``: the lists
    newest first, at most LIMIT each, without this conversation."""
    ensure_visible(db, user, conversation_id)
    with db.connect() as conn:
        address = customer_address(conn, conversation_id)
        same_sender: list[dict[str, Any]] = []
        same_domain: list[dict[str, Any]] = []
        domain = shared_domain(address)
        if address:
            same_sender = _conversations(
                conn, user, thread_participants.c.address == address, conversation_id, prefix
            )
        if address and domain:
            others = sa.and_(
                thread_participants.c.address.like("%@" + _escape(domain), escape="\\"),
                thread_participants.c.address != address,
            )
            same_domain = _conversations(conn, user, others, conversation_id, prefix)
    return {
        "address": address,
        "domain": address_domain(address),
        "free_mail": address_domain(address) in FREE_MAIL_DOMAINS,
        "same_sender": same_sender,
        "same_domain": same_domain,
    }
