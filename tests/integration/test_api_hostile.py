"""Hostile input at the HTTP edge: every operation of the OpenAPI description,
with garbage in every path parameter, query parameter and JSON body field (ids
beyond any integer column, negative numbers, NUL characters, 100 KB strings,
10,000 levels of nesting, wrong types), as an administrator, a supervisor and
nobody, on SQLite and PostgreSQL: never a 5xx, and every refusal is a JSON
error with a message."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from postroom.runtime.settings import Settings
from postroom.store.schema import attachments, messages
from tests.integration import test_api_fixtures as fx
from tests.integration.test_api_fixtures import CSRF_HEADER, Api, LiveServer

api = fx.api  # the shared fixture

DEEP = 10_000
DEEP_LIST = "[" * DEEP + "]" * DEEP
DEEP_OBJECT = '{"a":' * DEEP + "1" + "}" * DEEP

# Raw text for path and query parameters.
URL_VALUES = [
    str(2**64),
    str(10**30),
    "99999999999999999999999",
    str(2**31),
    "-1",
    "0",
    "-9223372036854775809",
    "1e309",
    "abc",
    "\x00",
    "a\x00b",
    "x" * 100_000,
    "PR-99999999999999999999",
    "PR-999999999999",
    "%",
    "..",
]
# Raw JSON text for one body field.
FIELD_VALUES = [
    str(2**64),
    str(10**30),
    str(2**31),
    "-1",
    "0",
    "9" * 5000,
    "1e309",
    "1.5",
    "true",
    "null",
    '"\\u0000"',
    '"a\\u0000b"',
    json.dumps("x" * 100_000),
    '"PR-99999999999999999999"',
    DEEP_LIST,
    DEEP_OBJECT,
    "[" + ",".join([str(10**30)] * 3) + "]",
    "[" + ",".join(["1"] * 100_000) + "]",
    '{"$gt": ""}',
    "[]",
]
# Raw bytes for a whole JSON body.
BODIES = [
    DEEP_LIST.encode(),
    DEEP_OBJECT.encode(),
    b"[]",
    b'"x"',
    b"123",
    b"null",
    b"{",
    b"",
    b'{"a": "\x00"}',
    b"\xff\xfe",
    str(10**30).encode(),
]

SKIP_FOR_USERS = {
    ("post", "/api/v1/auth/logout"),  # would end the session the walk uses
    ("post", "/api/v1/auth/login"),  # would replace it (walked anonymously)
    ("get", "/api/v1/events/stream"),  # never ends when accepted: see the stream test
}


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref:
        out: dict[str, Any] = spec["components"]["schemas"][ref.rsplit("/", 1)[-1]]
        return out
    return schema


def _sample(schema: dict[str, Any], name: str, base: dict[str, str]) -> Any:
    """A plausible value for one field, so the hostile one is what gets refused."""
    kinds = [schema.get("type")] + [s.get("type") for s in schema.get("anyOf", [])]
    if "integer" in kinds:
        return int(base["id"])
    if "array" in kinds:
        return []
    if "boolean" in kinds:
        return False
    if name in ("queue", "name"):
        return "support"
    if name == "user":
        return "nobody"
    if name == "password":
        return "not-the-password"
    if name in ("to", "cc", "bcc"):
        return []
    return "text"


def _baseline(api: Api) -> dict[str, str]:
    api.on_queue("ann")
    cid = api.offered_and_accepted("ann", attachment=("a.pdf", b"%PDF-1.4 x", "application/pdf"))
    with api.db.connect() as conn:
        mid = conn.execute(sa.select(sa.func.min(messages.c.id))).scalar_one()
        att = conn.execute(sa.select(attachments.c.id)).scalar_one()
    sue = api.client("sue")
    canned = sue.post("/api/v1/canned-responses", json={"name": "hi", "text": "Hi"}).json()["id"]
    upload = api.client("adam").post(
        "/api/v1/uploads", files={"file": ("n.txt", b"hello", "text/plain")}
    ).json()["id"]
    hook = api.client("adam").post(
        "/api/v1/webhooks",
        json={"name": "crm", "url": "http://127.0.0.1:9/hook", "event_types": ["*"]},
    ).json()["id"]
    ping = api.client("adam").post(f"/api/v1/webhooks/{hook}/test").json()["id"]
    route = api.client("adam").get("/api/v1/routing/routes").json()["routes"][0]["id"]
    rule = api.client("adam").get("/api/v1/routing/rules").json()["rules"][0]["id"]
    return {
        "id": str(cid),
        "webhook_id": str(hook),
        "route_id": str(route),
        "rule_id": str(rule),
        "delivery_id": str(ping),
        "conversation_id": str(cid),
        "message_id": str(mid),
        "attachment_id": str(att),
        "canned_id": str(canned),
        "upload_id": str(upload),
        "user_id": "ann",
        "agent_id": "bob",
        "code": "en",
        "name": "support",
        "content_id": "logo@x",
        "token_id": "1",
    }


def _url(template: str, names: list[str], base: dict[str, str], hostile: dict[str, str]) -> str:
    for n in names:
        template = template.replace("{" + n + "}", quote(hostile.get(n, base[n]), safe=""))
    return template


def _json(content: bytes | None, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = dict(extra)
    if content is not None:
        out["content"] = content
        out["headers"] = {"content-type": "application/json"}
    return out


def _requests(spec: dict[str, Any], base: dict[str, str]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(method, path, httpx request arguments) with one hostile value each."""
    for template, ops in spec["paths"].items():
        for method, op in ops.items():
            params = op.get("parameters", [])
            names = [p["name"] for p in params if p["in"] == "path"]
            path = _url(template, names, base, {})
            content = op.get("requestBody", {}).get("content", {})
            body_schema = content.get("application/json", {}).get("schema")
            fields: dict[str, Any] = {}
            if body_schema is not None:
                body_schema = _resolve(spec, body_schema)
                props = body_schema.get("properties", {})
                fields = {k: _sample(v, k, base) for k, v in props.items()}
            baseline = json.dumps(fields).encode() if body_schema is not None else None

            yield method, path, _json(baseline)
            for n in names:
                for v in URL_VALUES:
                    yield method, _url(template, names, base, {n: v}), _json(baseline)
            for p in params:
                if p["in"] == "query":
                    for v in URL_VALUES:
                        yield method, path, _json(baseline, params={p["name"]: v})
            if body_schema is not None:
                for field in fields:
                    for v in FIELD_VALUES:
                        raw = json.dumps({**fields, field: "\x01HOSTILE\x01"})
                        text = raw.replace(json.dumps("\x01HOSTILE\x01"), v)
                        yield method, path, _json(text.encode())
                for b in BODIES:
                    yield method, path, _json(b)
                for ctype in (None, "text/plain", "application/problem+json"):
                    headers = {"content-type": ctype} if ctype else {}
                    yield method, path, {"content": DEEP_LIST.encode(), "headers": headers}
                yield method, path, {"data": {k: "\x00" for k in fields}}
            if "multipart/form-data" in content:
                for name in ("a\x00b.txt", "x" * 100_000, "../../etc/passwd", "\x00"):
                    yield method, path, {"files": {"file": (name, b"data", "text/plain")}}
                yield method, path, {"files": {"file": ("a.txt", b"d", "text/\x00plain")}}
                yield method, path, {"data": {"file": "not a file"}}


def _check(r: httpx.Response, method: str, path: str) -> None:
    where = (method.upper(), path[:120], r.status_code, r.text[:300])
    assert r.status_code < 500, where
    if r.status_code >= 400 and path.startswith("/api/"):
        error = r.json()["error"]
        assert error["code"] and error["message"], where


async def _walk_async(
    api: Api, base: dict[str, str], signed_in: TestClient | None
) -> int:
    # One event loop for the whole walk: httpx's ASGI transport calls the app
    # directly, without TestClient's thread hop per message (six times faster).
    transport = httpx.ASGITransport(app=api.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        if signed_in is not None:
            client.cookies.update(signed_in.cookies)
            client.headers.update({CSRF_HEADER: signed_in.headers[CSRF_HEADER]})
        count = 0
        for method, path, kw in _requests(api.app.openapi(), base):
            if signed_in is not None and (method, path.split("?")[0]) in SKIP_FOR_USERS:
                continue
            try:
                r = await client.request(method, path, **kw)
            except (httpx.InvalidURL, httpx.LocalProtocolError, ValueError):
                continue  # the client itself will not send it (e.g. NUL in a header)
            _check(r, method, path)
            count += 1
            if signed_in is None:  # a login that worked must not make the next one signed in
                client.cookies.clear()
        return count


def _walk(api: Api, base: dict[str, str], signed_in: TestClient | None) -> int:
    return asyncio.run(_walk_async(api, base, signed_in))


@pytest.fixture
def sqlite_api(settings: Settings) -> Iterator[Api]:
    a = fx.make_api(settings)
    yield a
    fx.close_api(a)


def test_every_operation_survives_hostile_input_as_admin(api: Api) -> None:
    """The administrator may do everything, so this walk reaches every endpoint's
    queries: on both databases."""
    assert _walk(api, _baseline(api), api.client("adam")) > 1000


@pytest.mark.parametrize("who", ["sue", None])
def test_every_operation_survives_hostile_input(sqlite_api: Api, who: str | None) -> None:
    """A supervisor's and an anonymous walk are mostly refusals before any query:
    SQLite is enough for them."""
    base = _baseline(sqlite_api)
    assert _walk(sqlite_api, base, sqlite_api.client(who) if who else None) > 1000


def test_huge_ids_are_a_clear_422(api: Api) -> None:
    sue = api.client("sue")
    for path in (
        "/api/v1/conversations/99999999999999999999999",
        f"/api/v1/conversations/{2**64}/draft",
        f"/api/v1/attachments/{2**31}",
        "/api/v1/conversations/-1",
    ):
        r = sue.get(path)
        assert r.status_code == 422, (path, r.text)
        assert "conversation_id" in r.text or "attachment_id" in r.text
    r = sue.put("/api/v1/conversations/1/draft", json={"attachments": [10**30]})
    assert r.status_code == 422 and "attachments" in r.json()["error"]["message"]


def test_deep_json_to_login_is_refused_before_parsing(api: Api) -> None:
    with TestClient(api.app) as anon:
        r = anon.post(
            "/api/v1/auth/login", content=DEEP_LIST, headers={"content-type": "application/json"}
        )
    assert r.status_code == 400
    assert "nested" in r.json()["error"]["message"]


def test_nul_in_a_search_or_name_is_a_400(api: Api) -> None:
    sue = api.client("sue")
    for r in (
        sue.get("/api/v1/conversations", params={"q": "a\x00b"}),
        sue.get("/api/v1/queues/sup%00port"),
        sue.get("/api/v1/users/ann%00/routing-status"),
        sue.put("/api/v1/users/ann/presence", json={"presence": "on_queue\u0000"}),
    ):
        assert r.status_code == 400, r.text
        assert "NUL" in r.json()["error"]["message"]


def test_a_huge_reference_number_finds_nothing(api: Api) -> None:
    api.deliver()
    sue = api.client("sue")
    for q in ("PR-999999999999", "PR-99999999999999999999"):
        r = sue.get("/api/v1/conversations", params={"q": q})
        assert r.status_code == 200, r.text
        assert r.json()["conversations"] == []


def test_stream_resume_points_beyond_any_id(api: Api) -> None:
    with LiveServer(api.app) as server:
        c = fx.login(server.url, "sue")
        for after in (str(2**64), "-1", "abc", "\x00"):
            r = c.get("/api/v1/events/stream", params={"after": after})
            assert r.status_code in (400, 422), r.text
        # A Last-Event-ID beyond any id is clamped: the stream opens and says hello.
        for last in (str(10**30), "9" * 5000):
            with c.stream(
                "GET", "/api/v1/events/stream", headers={"Last-Event-ID": last}
            ) as resp:
                assert resp.status_code == 200
                first = next(resp.iter_lines())
                assert first.startswith(":") or first.startswith("retry")
        c.close()


def test_workspace_pages_refuse_ids_beyond_any_row(api: Api) -> None:
    sue = api.client("sue")
    for path in (
        "/c/{}",
        "/workspace/parts/conversation/{}",
        "/workspace/parts/thread/{}",
        "/workspace/parts/delivery/{}",
        "/workspace/messages/{}/body",
    ):
        for value in (str(2**64), "99999999999999999999999", str(2**31), "-1", "%00"):
            r = sue.get(path.format(value))
            assert 400 <= r.status_code < 500, (path, value, r.status_code, r.text[:200])
    r = sue.get("/workspace/messages/1/body", params={"images": "9" * 5000})
    assert r.status_code < 500


def test_a_value_the_database_refuses_is_a_400_not_a_500(api: Api) -> None:
    """The last line of defence, behind the declared bounds: an endpoint that lets
    an unbounded id through meets OverflowError (SQLite) or DataError (PostgreSQL)."""
    from postroom.store.schema import conversations

    @api.app.get("/api/v1/unbounded/{n}")
    def unbounded(n: int) -> dict[str, int]:
        with api.db.connect() as conn:
            conn.execute(sa.select(conversations.c.id).where(conversations.c.id == n)).all()
        return {"n": n}

    sue = api.client("sue")
    assert sue.get("/api/v1/unbounded/5").status_code == 200
    r = sue.get(f"/api/v1/unbounded/{2**70}")
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "bad_value"
    assert "out of range" in r.json()["error"]["message"]
