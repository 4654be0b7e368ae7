"""Full-text search and the conversation browser on both databases: messages are
indexed at intake and when an agent sends, words, phrases and operators find them,
snippets are escaped, the access rule holds, cursors stay stable while mail arrives,
and hostile queries and cursors are 4xx answers; the customer panel."""

from __future__ import annotations

import base64
import json
from typing import Any

from tests.integration import test_api_fixtures as fx
from tests.integration.test_api_fixtures import Api

api = fx.api  # the shared fixture (SQLite and PostgreSQL)

URL = "/api/v1/conversations"


def _find(api: Api, who: str, **params: Any) -> list[dict[str, Any]]:
    r = api.client(who).get(URL, params=params)
    assert r.status_code == 200, r.text
    found: list[dict[str, Any]] = r.json()["conversations"]
    return found


def _ids(api: Api, who: str, q: str, **params: Any) -> list[int]:
    return [c["id"] for c in _find(api, who, q=q, **params)]


def test_intake_indexes_every_field_and_the_language_finds_them(api: Api) -> None:
    a = api.deliver(
        "Flux capacitor broken",
        body="The flux capacitor hums at night.\nPlease advise.\n",
        attachment=("wiring-diagram.pdf", b"%PDF-1.4\n", "application/pdf"),
    )
    b = api.deliver(
        "Capacitor order", sender="Bob Buyer <bob@shop.example>", to="support@example.com",
        body="I want to order a capacitor, not a flux one.\n",
    )  # fmt: skip
    assert set(_ids(api, "sue", "capacitor")) == {a, b}
    assert _ids(api, "sue", '"flux capacitor"') == [a]  # a phrase, in order
    assert set(_ids(api, "sue", "flux capacitor")) == {a, b}  # both words, anywhere
    assert _ids(api, "sue", '"capacitor flux"') == []
    assert _ids(api, "sue", "hums") == [a]  # the text
    assert _ids(api, "sue", "wiring diagram") == [a]  # attachment names
    assert _ids(api, "sue", "buyer") == [b]  # the sender's name
    assert _ids(api, "sue", "capacitor from:bob@shop.example") == [b]
    assert _ids(api, "sue", "capacitor from:shop.example") == [b]  # a domain
    assert _ids(api, "sue", 'to:"support@example.com" hums') == [a]
    assert _ids(api, "sue", "capacitor queue:billing") == []
    assert set(_ids(api, "sue", "capacitor queue:support state:queued")) == {a, b}
    assert _ids(api, "sue", "capacitor state:closed") == []
    ref = api.client("sue").get(f"{URL}/{a}").json()["reference"]
    assert _ids(api, "sue", ref) == [a]  # PR-12 still finds its thread
    assert _ids(api, "sue", ref.lower()) == [a]
    assert _ids(api, "sue", f"ref:{ref}") == [a]
    hit = _find(api, "sue", q="hums")[0]
    assert "<mark>hums</mark>" in hit["snippet"] and hit["rank"] > 0
    # LIKE wildcards are plain characters now: "%" and "_" match nothing special.
    assert _ids(api, "sue", "%") == [] and _ids(api, "sue", "_") == []


def test_snippets_are_html_safe(api: Api) -> None:
    api.deliver("Odd", body='<script>alert("x")</script> & <b>zebra</b> crossing\n')
    snippet = _find(api, "sue", q="zebra")[0]["snippet"]
    assert "<script>" not in snippet and "<b>" not in snippet
    assert "&lt;/script&gt;" in snippet and "&amp;" in snippet
    assert "<mark>zebra</mark>" in snippet


def test_outbound_messages_are_indexed_when_sent(api: Api) -> None:
    api.on_queue("ann")
    cid = api.offered_and_accepted("ann", subject="Shipping")
    assert _ids(api, "ann", "walrus") == []
    r = api.client("ann").post(f"{URL}/{cid}/send", json={"text": "A walrus will deliver it."})
    assert r.status_code == 201, r.text
    assert _ids(api, "ann", "walrus") == [cid]


def test_agents_find_only_what_they_may_see(api: Api) -> None:
    api.on_queue("ann")
    mine = api.offered_and_accepted("ann", subject="Llama invoice")
    waiting = api.deliver("Llama delivery")  # queued: nobody holds it
    api.client("ann").put("/api/v1/users/ann/presence", json={"presence": "offline"})
    assert set(_ids(api, "sue", "llama")) == {mine, waiting}
    assert set(_ids(api, "adam", "llama")) == {mine, waiting}
    assert _ids(api, "ann", "llama") == [mine]
    assert _ids(api, "bob", "llama") == []
    assert _find(api, "bob", sort="newest") == []
    # the customer panel follows the same rule
    r = api.client("bob").get(f"{URL}/{mine}/customer")
    assert r.status_code == 404


def test_cursors_are_stable_while_new_mail_arrives(api: Api) -> None:
    first = [api.deliver(f"Batch {i}", body=f"penguin number {i}\n") for i in range(5)]
    seen: list[int] = []
    r = api.client("sue").get(URL, params={"q": "penguin", "sort": "newest", "limit": 2}).json()
    seen += [c["id"] for c in r["conversations"]]
    later = [api.deliver(f"Late {i}", body="penguin again\n") for i in range(2)]
    while r["next_cursor"]:
        r = api.client("sue").get(
            URL, params={"q": "penguin", "sort": "newest", "limit": 2, "cursor": r["next_cursor"]}
        ).json()
        seen += [c["id"] for c in r["conversations"]]
    assert seen == sorted(first, reverse=True)  # each once, none of the later ones
    assert all(cid > max(first) for cid in later)
    # without q: oldest first, pages of one, to the end
    ids: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"sort": "oldest", "limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = api.client("sue").get(URL, params=params).json()
        ids += [c["id"] for c in page["conversations"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert ids == sorted(first + later)


def _b64(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def test_hostile_queries_and_cursors_are_answered_not_crashed(api: Api) -> None:
    api.deliver("Hostile", body="ordinary words here\n")
    sue = api.client("sue")
    for q in (
        '"unbalanced', 'NEAR(a b) * ^ : "" "', "a:b:c", "from:", "ref:PR-99999999999999",
        "PR-99999999999", "*", "-", "OR AND NOT", "x" * 10_000, "ünïcödé ✓", "'; DROP TABLE",
        "to:\"\"", "state:bogus", "{[()]}", "\\", "ordinary" + " words" * 500,
    ):  # fmt: skip
        r = sue.get(URL, params={"q": q})
        assert r.status_code == 200, (q[:40], r.status_code, r.text[:200])
    assert sue.get(URL, params={"q": "a\x00b"}).status_code == 400
    assert sue.get(URL, params={"q": "x" * 10_001}).status_code == 422
    for cursor in (
        "!!!", "x" * 600, _b64(["newest"]), _b64(["oldest", "2026-01-01T00:00:00+00:00", 1]),
        _b64(["newest", "yesterday", 1]), _b64(["newest", "2026-01-01T00:00:00", 1]),
        _b64(["newest", "2026-01-01T00:00:00+00:00", 2**40]), _b64(["relevance", "NaN", 1]),
        _b64(["newest", "2026-01-01T00:00:00+00:00", True]), _b64({"a": 1}), _b64("[" * 5000),
    ):  # fmt: skip
        r = sue.get(URL, params={"cursor": cursor, "sort": "newest"})
        assert r.status_code in (400, 422), (cursor[:40], r.status_code, r.text[:200])
    good = _b64(["newest", "2026-01-01T00:00:00+00:00", 5])
    assert sue.get(URL, params={"cursor": good, "sort": "newest"}).status_code == 200


def test_browser_filters(api: Api) -> None:
    a = api.deliver("Tagged", sender="vip@vip.example", body="one\n")  # the vip rule tags it
    b = api.deliver("Plain", body="two\n")
    assert [c["id"] for c in _find(api, "sue", tag="vip")] == [a]
    assert [c["id"] for c in _find(api, "sue", sender="vip.example")] == [a]
    assert [c["id"] for c in _find(api, "sue", queue="vip")] == [a]
    assert set(c["id"] for c in _find(api, "sue", direction="in")) == {a, b}
    assert _find(api, "sue", direction="out") == []
    assert _find(api, "sue", created_from="2199-01-01T00:00:00Z") == []
    assert len(_find(api, "sue", created_to="2199-01-01T00:00:00Z")) == 2
    assert api.client("sue").get(URL, params={"direction": "sideways"}).status_code == 422


def test_customer_panel_lists_the_sender_and_their_domain_but_not_free_mail(api: Api) -> None:
    first = api.deliver("First", sender="Ann Acme <ann@acme.example>")
    second = api.deliver("Second", sender="ann@acme.example")
    colleague = api.deliver("Colleague", sender="joe@acme.example")
    api.deliver("Stranger", sender="zed@other.example")
    g1 = api.deliver("Gmail one", sender="one@gmail.com")
    api.deliver("Gmail two", sender="two@gmail.com")
    sue = api.client("sue")
    panel = sue.get(f"{URL}/{second}/customer").json()
    assert panel["address"] == "ann@acme.example" and panel["domain"] == "acme.example"
    assert [c["id"] for c in panel["same_sender"]] == [first]
    assert [c["id"] for c in panel["same_domain"]] == [colleague]
    assert {"state", "queue", "agent", "wrapup_code", "reference"} <= set(panel["same_sender"][0])
    gmail = sue.get(f"{URL}/{g1}/customer").json()
    assert gmail["free_mail"] is True and gmail["same_domain"] == [] and gmail["same_sender"] == []
