"""The HTTP edge guard: what every request must satisfy before an endpoint parses
it, and the headers every API response carries.

Refused with a JSON error before any endpoint runs:
- a NUL character in the path or query string (400; PostgreSQL text cannot
  hold NUL, and no name or search term needs one);
- a JSON body (or one without a Content-Type, which FastAPI reads as JSON)
  over `MAX_JSON_BODY` bytes (413), nested deeper than
  `MAX_JSON_DEPTH` (400; the parser and validators recurse, so a deep body
  would otherwise exhaust the stack), or with a `\\u0000` escape in a string
  (400); a form body with `%00` (400).
Multipart bodies (uploads) are left to their endpoint: file content may hold
any byte. API responses get `X-Content-Type-Options: nosniff` and
`Cache-Control: no-store` unless the endpoint set its own.

A plain ASGI middleware: it only reads bytes and headers, never the database,
and holds no business rules.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import anyio.to_thread

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_JSON_DEPTH = 32
MAX_JSON_BODY = 16 * 1024 * 1024
OFF_LOOP_BYTES = 256 * 1024  # bodies larger than this are checked in a worker thread

_NUL_URL = re.compile(rb"%00|\x00", re.IGNORECASE)
# A \u0000 escape: preceded by an even number of backslashes (an odd count in all).
_NUL_JSON = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000", re.IGNORECASE)
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_AS_SQUARE = bytes.maketrans(b"{}", b"[]")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")

API_HEADERS = ((b"x-content-type-options", b"nosniff"), (b"cache-control", b"no-store"))


class RequestRefused(Exception):
    """A request the edge turns away, with the status and message to send."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def nested_deeper_than(body: bytes, limit: int) -> bool:
    """Whether JSON text nests arrays and objects more than `limit` deep (or has
    unbalanced brackets), counting only brackets outside strings. Cheap enough to
    run before the parser: with every bracket made square, each pass drops the
    innermost pairs everywhere at once, so a body of depth d is empty after d
    passes of `bytes.replace`; a run of more than `limit` openers ends it early."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    brackets = _JSON_STRING.sub(b"", body).translate(_AS_SQUARE, _NOT_BRACKETS)
    too_deep = b"[" * (limit + 1)
    for _ in range(limit):
        if not brackets:
            return False
        if too_deep in brackets:
            return True
        brackets = brackets.replace(b"[]", b"")
    return bool(brackets)


def check_url(scope: Scope) -> None:
    raw_path = scope.get("raw_path") or scope.get("path", "").encode("utf-8", "surrogateescape")
    if _NUL_URL.search(raw_path) or _NUL_URL.search(scope.get("query_string", b"")):
        raise RequestRefused(
            400, "bad_request", "the address contains a NUL character (%00); remove it"
        )


def check_body(content_type: str, body: bytes) -> None:
    ctype = content_type.split(";")[0].strip().lower()
    if _json_type(ctype):
        if len(body) > MAX_JSON_BODY:
            raise RequestRefused(
                413, "too_large", f"a JSON body may have at most {MAX_JSON_BODY} bytes"
            )
        if nested_deeper_than(body, MAX_JSON_DEPTH):
            raise RequestRefused(
                400,
                "bad_request",
                f"the JSON body is nested more than {MAX_JSON_DEPTH} levels deep; "
                "no endpoint takes such data",
            )
        if _NUL_JSON.search(body):
            raise RequestRefused(
                400, "bad_request", "text in the JSON body contains a NUL character (\\u0000)"
            )
    elif ctype == "application/x-www-form-urlencoded" and _NUL_URL.search(body):
        raise RequestRefused(400, "bad_request", "a form field contains a NUL character (%00)")


def _json_type(ctype: str) -> bool:
    # No type at all counts: FastAPI then parses the body as JSON.
    return ctype in ("", "application/json") or ctype.endswith("+json")


def _wants_check(content_type: str) -> bool:
    ctype = content_type.split(";")[0].strip().lower()
    return _json_type(ctype) or ctype == "application/x-www-form-urlencoded"


async def _refuse(send: Send, exc: RequestRefused) -> None:
    body = json.dumps({"error": {"code": exc.code, "message": str(exc)}}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": exc.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *API_HEADERS,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class EdgeGuard:
    """ASGI middleware applying the rules in the module docstring."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        content_type = headers.get(b"content-type", b"").decode("latin-1")
        try:
            check_url(scope)
            if _wants_check(content_type):
                body, receive = await _buffer(receive)
                if len(body) > OFF_LOOP_BYTES:  # keep the event loop free for others
                    await anyio.to_thread.run_sync(check_body, content_type, body)
                else:
                    check_body(content_type, body)
        except RequestRefused as exc:
            await _refuse(send, exc)
            return
        if scope.get("path", "").startswith("/api/"):
            send = _with_api_headers(send)
        await self.app(scope, receive, send)


async def _buffer(receive: Receive) -> tuple[bytes, Receive]:
    """Read the whole body (up to one byte past the JSON limit), and a `receive`
    that replays it to the app."""
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await receive()
        if message["type"] != "http.request":  # the client went away
            break
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        more = bool(message.get("more_body"))
        if size > MAX_JSON_BODY:
            raise RequestRefused(
                413,
                "too_large",
                f"a request body of this type may have at most {MAX_JSON_BODY} bytes",
            )
    body = b"".join(chunks)
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return body, replay


def _with_api_headers(send: Send) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            present = {k.lower() for k, _ in message.get("headers", [])}
            extra = [(k, v) for k, v in API_HEADERS if k not in present]
            if extra:
                message = dict(message)
                message["headers"] = [*message.get("headers", []), *extra]
        await send(message)

    return wrapped
