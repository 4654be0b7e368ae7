"""What of a message is indexed, and writing it: subject, text, sender, recipients
(To and Cc), the thread's reference (PR-12) and attachment file names, as tokens
(domain/search_query.py). Called in the transaction that stores the message
(intake's store stage, outbound's insert), so a message is findable exactly when it
is committed; it never commits and reads only through the caller's connection.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from postroom.domain.search_query import index_fields
from postroom.services.search.port import Document, for_dialect
from postroom.store.schema import attachments, messages


def document(
    message_id: int,
    *,
    subject: str | None,
    sender: str | None,
    headers: Any,
    text: str | None,
    thread_id: int | None,
    filenames: Sequence[str],
    prefix: str,
) -> Document:
    """The indexed form of one message (domain/search_query.py `index_fields`)."""
    fields = index_fields(
        subject=subject,
        sender=sender,
        headers=headers,
        text=text,
        thread_id=thread_id,
        filenames=filenames,
        prefix=prefix,
    )
    return Document(message_id=message_id, **fields)


def index_messages(conn: sa.Connection, message_ids: Sequence[int], *, prefix: str) -> None:
    """(Re)index these stored messages in `conn`'s transaction."""
    ids = sorted(set(message_ids))
    if not ids:
        return
    rows = conn.execute(
        sa.select(
            messages.c.id,
            messages.c.subject,
            messages.c.sender,
            messages.c.headers,
            messages.c.text,
            messages.c.thread_id,
        ).where(messages.c.id.in_(ids))
    ).all()
    names: dict[int, list[str]] = {}
    for mid, filename in conn.execute(
        sa.select(attachments.c.message_id, attachments.c.filename)
        .where(attachments.c.message_id.in_(ids))
        .order_by(attachments.c.message_id, attachments.c.position)
    ):
        names.setdefault(int(mid), []).append(filename)
    docs = [
        document(
            int(r.id),
            subject=r.subject,
            sender=r.sender,
            headers=r.headers,
            text=r.text,
            thread_id=r.thread_id,
            filenames=names.get(int(r.id), []),
            prefix=prefix,
        )
        for r in rows
    ]
    for_dialect(conn.dialect.name).index(conn, docs)
