"""An agent's drafts (one per conversation) and their uploaded files, with the
limits on recipients, attachments and file size. Nothing here sends."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from postroom.domain.errors import MessageTooLargeError, NotFoundError, PostroomError
from postroom.services.conversations.access import ensure_visible
from postroom.services.conversations.common import iso as _iso
from postroom.services.users import User
from postroom.store.blobs import BlobStore, sha256_hex
from postroom.store.schema import drafts, uploads


class LimitExceeded(PostroomError):
    """A request carries more than a configured limit allows."""



def get_draft(db: sa.Engine, user: User, conversation_id: int) -> dict[str, Any] | None:
    ensure_visible(db, user, conversation_id)
    with db.connect() as conn:
        row = conn.execute(
            sa.select(drafts).where(
                drafts.c.conversation_id == conversation_id, drafts.c.user_id == user.id
            )
        ).first()
    if row is None:
        return None
    return {
        "conversation_id": conversation_id,
        "data": row.data,
        "updated_at": _iso(row.updated_at),
        "attachment_files": _upload_files(db, user, (row.data or {}).get("attachments") or []),
    }


def _upload_files(db: sa.Engine, user: User, ids: Sequence[Any]) -> list[dict[str, Any]]:
    """Name, type and size of the user's own uploads among `ids`, in that order; ids
    that are not (or no longer) theirs are left out."""
    wanted = [int(i) for i in ids if isinstance(i, int) or str(i).isdigit()]
    if not wanted:
        return []
    with db.connect() as conn:
        rows = {
            r.id: r
            for r in conn.execute(
                sa.select(uploads.c.id, uploads.c.filename, uploads.c.content_type, uploads.c.size)
                .where(uploads.c.id.in_(wanted), uploads.c.user_id == user.id)
            )
        }
    return [
        {
            "id": i,
            "filename": rows[i].filename,
            "content_type": rows[i].content_type,
            "size": rows[i].size,
        }
        for i in dict.fromkeys(wanted)
        if i in rows
    ]


def save_draft(
    db: sa.Engine,
    clock: Callable[[], datetime],
    user: User,
    conversation_id: int,
    data: dict[str, Any],
    *,
    max_recipients: int,
    max_attachments: int,
) -> dict[str, Any]:
    """Create or replace the user's one draft for the conversation."""
    ensure_visible(db, user, conversation_id)
    check_limits(data, max_recipients=max_recipients, max_attachments=max_attachments)
    ids = [int(x) for x in data.get("attachments") or []]
    owned_uploads(db, user, ids)
    now = clock()
    with db.begin() as conn:
        done = conn.execute(
            drafts.update()
            .where(drafts.c.conversation_id == conversation_id, drafts.c.user_id == user.id)
            .values(data=data, updated_at=now)
        ).rowcount
        if not done:
            conn.execute(
                drafts.insert().values(
                    conversation_id=conversation_id, user_id=user.id, data=data, updated_at=now
                )
            )
    return {"conversation_id": conversation_id, "data": data, "updated_at": now.isoformat()}


def delete_draft(db: sa.Engine, user: User, conversation_id: int) -> None:
    ensure_visible(db, user, conversation_id)
    with db.begin() as conn:
        conn.execute(
            drafts.delete().where(
                drafts.c.conversation_id == conversation_id, drafts.c.user_id == user.id
            )
        )


def check_limits(data: dict[str, Any], *, max_recipients: int, max_attachments: int) -> None:
    count = sum(len(data.get(k) or []) for k in ("to", "cc", "bcc"))
    if count > max_recipients:
        raise LimitExceeded(
            f"{count} recipients; at most {max_recipients} are allowed in to, cc and bcc "
            "together: send several messages instead"
        )
    n = len(data.get("attachments") or [])
    if n > max_attachments:
        raise LimitExceeded(
            f"{n} attachments; at most {max_attachments} are allowed: zip them or send "
            "several messages"
        )


# -- uploads ------------------------------------------------------------------------------------


def save_upload(
    db: sa.Engine,
    clock: Callable[[], datetime],
    blobs: BlobStore,
    user: User,
    *,
    filename: str,
    content_type: str,
    data: bytes,
    max_size: int,
) -> dict[str, Any]:
    if len(data) > max_size:
        raise MessageTooLargeError(
            f"the file is {len(data)} bytes; at most {max_size} bytes are allowed: "
            "compress it or share a link instead"
        )
    name = (filename or "attachment").replace("/", "_").replace("\\", "_")[:255]
    key = blobs.put(data, sha256=sha256_hex(data))
    with db.begin() as conn:
        uid = conn.execute(
            uploads.insert()
            .values(
                user_id=user.id,
                filename=name,
                content_type=(content_type or "application/octet-stream")[:255],
                size=len(data),
                sha256=key,
                created_at=clock(),
            )
            .returning(uploads.c.id)
        ).scalar_one()
    return {
        "id": uid,
        "filename": name,
        "content_type": content_type,
        "size": len(data),
        "url": f"/api/v1/uploads/{uid}",
    }


def owned_uploads(db: sa.Engine, user: User, ids: Sequence[int]) -> list[sa.Row[Any]]:
    if not ids:
        return []
    with db.connect() as conn:
        rows = conn.execute(
            sa.select(uploads).where(uploads.c.id.in_(list(ids)), uploads.c.user_id == user.id)
        ).all()
    found = {r.id for r in rows}
    missing = [i for i in ids if i not in found]
    if missing:
        raise NotFoundError(f"no upload {missing[0]} of yours; upload the file again")
    return list(rows)


def upload_for_download(db: sa.Engine, user: User, upload_id: int) -> tuple[str, str, str]:
    (row,) = owned_uploads(db, user, [upload_id])
    return row.sha256, row.filename, row.content_type
