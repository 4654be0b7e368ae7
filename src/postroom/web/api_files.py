"""File endpoints: upload a file for a draft, download your uploads and the
attachments of messages you can see.

Sizes are checked against the outbound message size limit; access to message
attachments follows the conversation access rule (services/conversations.py).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import anyio.to_thread
from fastapi import APIRouter, Request, UploadFile
from fastapi.responses import Response

from postroom.domain.errors import MessageTooLargeError, NotFoundError
from postroom.services import conversations as conv_svc
from postroom.store.blobs import BlobNotFoundError
from postroom.web.deps import Ctx, CurrentUser, RowId

router = APIRouter(prefix="/api/v1", tags=["files"])

# Types a browser may show inline; everything else is downloaded.
INLINE_SAFE = frozenset(
    {"image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf", "text/plain"}
)


@router.post("/uploads", status_code=201)
async def upload(file: UploadFile, request: Request, ctx: Ctx, user: CurrentUser) -> dict[str, Any]:
    """Upload one file (multipart field `file`) to attach to a draft."""
    limit = ctx.config.max_message_size
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limit + 64 * 1024:
        raise MessageTooLargeError(
            f"the upload is {length} bytes; at most {limit} bytes are allowed: "
            "compress it or share a link instead"
        )
    data = await file.read(limit + 1)
    return await anyio.to_thread.run_sync(
        lambda: conv_svc.save_upload(
            ctx.db,
            ctx.clock,
            ctx.blobs,
            user,
            filename=file.filename or "attachment",
            content_type=file.content_type or "application/octet-stream",
            data=data,
            max_size=limit,
        )
    )


def _file_response(ctx: Ctx, key: str, filename: str, content_type: str) -> Response:
    try:
        data = ctx.blobs.get(key)
    except BlobNotFoundError as exc:
        raise NotFoundError("the file's content is missing from the blob store") from exc
    ctype = content_type.split(";")[0].strip().lower() or "application/octet-stream"
    disposition = "inline" if ctype in INLINE_SAFE else "attachment"
    if ctype not in INLINE_SAFE:
        ctype = "application/octet-stream"
    return Response(
        data,
        media_type=ctype,
        headers={
            "Content-Disposition": f"{disposition}; filename*=UTF-8''{quote(filename)}",
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "Cache-Control": "private, no-store",
        },
    )


@router.get("/uploads/{upload_id}")
async def get_upload(upload_id: RowId, ctx: Ctx, user: CurrentUser) -> Response:
    """One of your own uploads."""
    key, name, ctype = await anyio.to_thread.run_sync(
        conv_svc.upload_for_download, ctx.db, user, upload_id
    )
    return await anyio.to_thread.run_sync(_file_response, ctx, key, name, ctype)


@router.get("/attachments/{attachment_id}")
async def get_attachment(attachment_id: RowId, ctx: Ctx, user: CurrentUser) -> Response:
    """An attachment of a message in a conversation you can see."""
    key, name, ctype = await anyio.to_thread.run_sync(
        conv_svc.attachment_for_download, ctx.db, user, attachment_id
    )
    return await anyio.to_thread.run_sync(_file_response, ctx, key, name, ctype)
