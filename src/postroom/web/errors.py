"""HTTP edge for errors: every error a client meets becomes
``{"error": {"code", "message"}}`` with a status code, here and nowhere else.

Maps the named error types of the services to status codes; it raises nothing
itself and holds no business rules. The last line of defence against values the
edge types did not bound: a value the database refuses (`DataError`: out of
range, too long, a NUL character) or cannot bind (`OverflowError` on SQLite) is
the client's 400, not a 500; it is logged so a missing bound can be added.
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from postroom.domain.errors import (
    ConflictError,
    InvalidConfigField,
    InvalidWebhookError,
    MessageTooLargeError,
    NoQueueAddressError,
    NotFoundError,
    PostroomError,
    TooManyAttachmentsError,
    TooManyRecipientsError,
)
from postroom.services.agents import RequestRefused
from postroom.services.conversations import LimitExceeded
from postroom.services.new_email import NotAnAgent
from postroom.services.supervisor.backlog import (
    BacklogActionRefused,
    InvalidBacklogAction,
    RouterSilent,
)
from postroom.services.users import (
    Forbidden,
    InvalidCredentials,
    InvalidField,
    LastAdmin,
    NotAuthenticated,
    TooManyAttempts,
)

log = logging.getLogger(__name__)


class RouterUnavailable(PostroomError):
    """No router answered a request in time."""


class CsrfRejected(PostroomError):
    """A cookie-authenticated change came without the session's CSRF token."""


# Most specific first: the first matching type wins.
STATUS: tuple[tuple[type[PostroomError], int, str], ...] = (
    (NotAuthenticated, 401, "not_authenticated"),
    (InvalidCredentials, 401, "invalid_credentials"),
    (Forbidden, 403, "forbidden"),
    (CsrfRejected, 403, "csrf_rejected"),
    (NotFoundError, 404, "not_found"),
    (BacklogActionRefused, 409, "backlog_refused"),
    (RequestRefused, 409, "refused"),
    (LastAdmin, 409, "last_admin"),
    (ConflictError, 409, "conflict"),
    (InvalidConfigField, 422, "invalid_field"),
    (InvalidField, 422, "invalid_field"),
    (MessageTooLargeError, 413, "too_large"),
    (LimitExceeded, 422, "limit_exceeded"),
    (TooManyRecipientsError, 422, "limit_exceeded"),
    (TooManyAttachmentsError, 422, "limit_exceeded"),
    (NoQueueAddressError, 422, "no_send_address"),
    (NotAnAgent, 422, "not_an_agent"),
    (InvalidWebhookError, 422, "invalid_webhook"),
    (TooManyAttempts, 429, "too_many_attempts"),
    (RouterUnavailable, 503, "router_unavailable"),
    (RouterSilent, 503, "router_unavailable"),
    (InvalidBacklogAction, 422, "invalid_action"),
    (PostroomError, 400, "bad_request"),
)


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def status_for(exc: PostroomError) -> tuple[int, str]:
    for cls, status, code in STATUS:
        if isinstance(exc, cls):
            return status, code
    return 400, "bad_request"


def install(app: FastAPI) -> None:
    @app.exception_handler(PostroomError)
    async def postroom_error(_: Request, exc: PostroomError) -> JSONResponse:
        status, code = status_for(exc)
        headers = {}
        if isinstance(exc, TooManyAttempts):
            headers["Retry-After"] = str(exc.retry_after_s)
        if isinstance(exc, NotAuthenticated):
            headers["WWW-Authenticate"] = "Bearer"
        body = error_body(code, str(exc))
        if isinstance(exc, InvalidField | InvalidConfigField | ConflictError) and exc.field:
            body["error"]["field"] = exc.field
        return JSONResponse(body, status_code=status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors()[:5]:
            where = ".".join(str(x) for x in err.get("loc", ()) if x != "body")
            parts.append(f"{where}: {err.get('msg')}")
        message = "invalid request: " + "; ".join(parts) + " (see /api/v1/docs)"
        body = error_body("invalid_request", message)
        first = exc.errors()[:1]
        if first:
            body["error"]["field"] = ".".join(
                str(x) for x in first[0].get("loc", ()) if x not in ("body", "query", "path")
            )
        return JSONResponse(body, status_code=422)

    async def unstorable(request: Request, exc: Exception) -> JSONResponse:
        log.warning(
            "request value refused by the database",
            extra={"path": request.url.path, "error": type(exc).__name__},
        )
        message = (
            "a value in the request cannot be stored or searched: a number out of range, "
            "text too long, or a NUL character; see /api/v1/docs for the limits"
        )
        return JSONResponse(error_body("bad_value", message), status_code=400)

    app.add_exception_handler(sqlalchemy.exc.DataError, unstorable)
    app.add_exception_handler(OverflowError, unstorable)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        message = str(exc.detail)
        if exc.status_code == 404:
            message = "no such endpoint; see /api/v1/docs for the API"
        return JSONResponse(
            error_body(code, message), status_code=exc.status_code, headers=exc.headers
        )
