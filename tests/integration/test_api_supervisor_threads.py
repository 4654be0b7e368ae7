"""POST /api/v1/conversations/{id}/split and /merge: supervisors only (act_on_backlog),
named errors as 400/404/409, hostile bodies as 4xx, the router ending a merged
waiting conversation."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from postroom.runtime.settings import Settings
from postroom.store.schema import messages
from tests.integration.test_api_fixtures import Api, close_api, make_api
from tests.mailfactory import make_email


@pytest.fixture
def api(settings: Settings) -> Iterator[Api]:
    a = make_api(settings)
    yield a
    close_api(a)


def deliver(api: Api, mid: str, **kw: str) -> tuple[int, int]:
    raw = make_email(message_id=f"<{mid}@customer.example>", **kw)
    pk = api.comps.spool().accept_sync(raw, source="smtp", envelope_to=["support@example.com"]).message_pk
    api.comps.intake.drain()
    with api.db.connect() as conn:
        return pk, int(conn.execute(sa.select(messages.c.conversation_id).where(messages.c.id == pk)).scalar_one())


def test_a_supervisor_splits_and_merges(api: Api) -> None:
    _, cid = deliver(api, "x1")
    m2, same = deliver(api, "x2", in_reply_to="<x1@customer.example>", subject="Re: x")
    assert same == cid
    sue = api.client("sue")
    r = sue.post(f"/api/v1/conversations/{cid}/split", json={"message_id": m2})
    assert r.status_code == 200, r.text
    body = r.json()
    new = body["new_conversation_id"]
    assert body["moved_messages"] == [m2] and body["conversation_id"] == cid
    got = sue.get(f"/api/v1/conversations/{new}").json()
    assert [m["id"] for m in got["messages"]] == [m2]

    r = sue.post(f"/api/v1/conversations/{new}/merge", json={"into": cid})
    assert r.status_code == 200, r.text
    assert r.json()["moved_messages"] == [m2] and r.json()["source_state"] == "queued"
    assert api.wait_state(new, "closed").close_reason == f"merged into conversation {cid}"


def test_errors_are_named_and_mapped(api: Api) -> None:
    m1, cid = deliver(api, "y1")
    _, other = deliver(api, "y2", subject="Another", sender="Bob <bob@elsewhere.example>")
    sue = api.client("sue")
    r = sue.post(f"/api/v1/conversations/{cid}/split", json={"message_id": m1})
    assert r.status_code == 400 and "nothing would remain" in r.json()["error"]["message"]
    r = sue.post(f"/api/v1/conversations/{cid}/merge", json={"into": cid})
    assert r.status_code == 400 and "into itself" in r.json()["error"]["message"]
    r = sue.post(f"/api/v1/conversations/{other}/merge", json={"into": cid})
    assert r.status_code == 409 and '"force": true' in r.json()["error"]["message"]
    assert r.json()["error"]["code"] == "conflict"
    r = sue.post("/api/v1/conversations/2147483647/merge", json={"into": cid})
    assert r.status_code == 404
    r = sue.post(f"/api/v1/conversations/{other}/merge", json={"into": cid, "force": True})
    assert r.status_code == 200 and r.json()["forced"] is True


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"message_id": 0},
        {"message_id": 2**31},
        {"message_id": "1\x00"},
        {"message_id": 1, "extra": 1},
        {"into": -1},
        {"into": 10**40},
        {"into": 1, "force": "maybe"},
    ],
)
def test_hostile_bodies_get_4xx(api: Api, body: dict[str, object]) -> None:
    sue = api.client("sue")
    for op in ("split", "merge"):
        r = sue.post(f"/api/v1/conversations/1/{op}", json=body)
        assert 400 <= r.status_code < 500, (op, body, r.status_code, r.text)


def test_agents_may_neither_split_nor_merge(api: Api) -> None:
    m1, cid = deliver(api, "z1")
    ann = api.client("ann")
    assert ann.post(f"/api/v1/conversations/{cid}/split", json={"message_id": m1}).status_code == 403
    assert ann.post(f"/api/v1/conversations/{cid}/merge", json={"into": 1}).status_code == 403
