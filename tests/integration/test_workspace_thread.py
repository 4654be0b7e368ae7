"""The workspace's thread view, offer banner and routing controls as rendered by the
server: which message the thread opens on (the customer's, not our
acknowledgement), wrap-ups shown to the next agent, where an offer comes from, the
queue button after a missed offer, what supervisors are told, and the transfer
dialog's agents with their status. SQLite and PostgreSQL."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

import sqlalchemy as sa

from postroom.services.outbound import OutboundConfig, OutboundService
from postroom.store.schema import agents, messages
from tests.integration import test_api_fixtures as fx
from tests.integration.test_api_fixtures import Api

api = fx.api  # the shared fixtures
api_wrapup_codes = fx.api_wrapup_codes


class Tree(HTMLParser):
    """Elements of a rendered fragment: tag, attributes and the text inside each."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[dict[str, Any]] = []
        self._open: list[dict[str, Any]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        el = {"tag": tag, "attrs": dict(attrs), "text": ""}
        self.elements.append(el)
        if tag not in ("input", "meta", "link", "br", "img"):
            self._open.append(el)

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self._open) - 1, -1, -1):
            if self._open[i]["tag"] == tag:
                del self._open[i:]
                break

    def handle_data(self, data: str) -> None:
        for el in self._open:
            el["text"] += data

    def find(self, tag: str | None = None, **attrs: str) -> list[dict[str, Any]]:
        def has(el: dict[str, Any], k: str, v: str) -> bool:
            got = el["attrs"].get(k.replace("_", "-"))
            if k == "class_":
                return v in (el["attrs"].get("class") or "").split()
            return got == v

        return [
            e for e in self.elements
            if (tag is None or e["tag"] == tag) and all(has(e, k, v) for k, v in attrs.items())
        ]


def thread_messages(api: Api, user: str, cid: int) -> list[dict[str, Any]]:
    html = api.client(user).get(f"/workspace/parts/thread/{cid}").text
    # The messages, not the disclosures inside them (why this thread) or the timeline.
    return [d for d in Tree(html).find("details") if "data-message" in d["attrs"]]


def message_pks(api: Api, cid: int) -> list[tuple[int, str, str | None]]:
    with api.db.connect() as conn:
        return [
            (int(r.id), r.direction, r.auto_kind)
            for r in conn.execute(
                sa.select(messages.c.id, messages.c.direction, messages.c.auto_kind)
                .where(messages.c.conversation_id == cid)
                .order_by(messages.c.id)
            )
        ]


def acknowledge(api: Api) -> int:
    """What the sender role does first: queue the auto-acknowledgements due."""
    return OutboundService(api.db, api.comps.blobs, OutboundConfig(), api.comps.clock).queue_auto_acks()


# -- the message the thread opens on ----------------------------------------------------


def test_thread_opens_on_the_latest_customer_message_and_keeps_automatic_ones_closed(api: Api) -> None:
    api.on_queue("ann")
    cid = api.offered_and_accepted("ann", message_id="<q1@customer.example>")
    assert acknowledge(api) == 1  # the support route acknowledges
    # The customer's out-of-office, then a follow-up written by the customer that
    # says outright it is not automatic ("Auto-Submitted: no" is a person's mail).
    for body, headers in (
        ("I am out of the office until Monday.\n", {"Auto-Submitted": "auto-replied"}),
        ("Also: the tray is jammed.\n", {"Auto-Submitted": "no"}),
        ("Delivery report\n", {"Precedence": "bulk"}),
    ):
        assert api.deliver(
            "Re: Printer on fire", body=body, headers=headers,
            in_reply_to="<q1@customer.example>", references="<q1@customer.example>",
        ) == cid
    pks = message_pks(api, cid)
    question, ack, ooo, follow_up, bulk = (pk for pk, _, _ in pks)
    assert [(d, k) for _, d, k in pks] == [
        ("in", None), ("out", "auto-replied"), ("in", "auto-submitted:auto-replied"),
        ("in", None), ("in", "precedence:bulk"),
    ]
    shown = thread_messages(api, "ann", cid)
    opened = [int(d["attrs"]["data-message"]) for d in shown if "open" in d["attrs"]]
    assert opened == [follow_up]
    auto = {int(d["attrs"]["data-message"]): d for d in shown if "auto" in d["attrs"]["class"].split()}
    assert set(auto) == {ack, ooo, bulk}
    assert "auto-acknowledgement" in auto[ack]["text"]
    assert "automatic reply" in auto[ooo]["text"]
    assert "bulk mail" in auto[bulk]["text"]
    assert question not in auto and follow_up not in auto
    # The full page opens the same one.
    page = Tree(api.client("ann").get(f"/c/{cid}").text)
    assert [int(d["attrs"]["data-message"]) for d in page.find("details") if "open" in d["attrs"] and "data-message" in d["attrs"]] == [follow_up]


def test_thread_opens_on_the_customers_question_under_the_acknowledgement(api: Api) -> None:
    api.on_queue("ann")
    cid = api.offered_and_accepted("ann")
    acknowledge(api)
    shown = thread_messages(api, "ann", cid)
    # Newest first: the acknowledgement is on top, closed; the question below, open.
    assert ["open" in d["attrs"] for d in shown] == [False, True]
    assert "auto" in shown[0]["attrs"]["class"].split()
    assert "printer is on fire" in shown[1]["text"]


def test_a_conversation_of_only_automatic_mail_opens_on_the_newest(api: Api) -> None:
    api.on_queue("ann")
    cid = api.offered_and_accepted("ann", body="Out of office.\n", headers={"Auto-Submitted": "auto-replied"})
    shown = thread_messages(api, "ann", cid)
    assert len(shown) == 1 and "open" in shown[0]["attrs"]
    assert "auto" in shown[0]["attrs"]["class"].split()


# -- wrap-ups ------------------------------------------------------------------------------


def test_wrap_up_notes_are_shown_in_the_thread_and_to_the_next_agent(api: Api) -> None:
    api.on_queue("ann")
    first = api.offered_and_accepted("ann", message_id="<w1@customer.example>")
    ann = api.client("ann")
    notes = 'Sent new toner <script>alert(1)</script>\nCall back on Friday'
    r = ann.post(f"/api/v1/conversations/{first}/wrapup", json={"code": "resolved", "notes": notes})
    assert r.status_code == 200, r.text
    api.wait_state(first, "closed")
    tree = Tree(ann.get(f"/workspace/parts/thread/{first}").text)
    (item,) = tree.find("li", class_="wrapup")
    assert item["attrs"]["data-conversation"] == str(first)
    assert "resolved" in item["text"] and "Ann" in item["text"] and "this conversation" in item["text"]
    assert "UTC" in item["text"]
    (shown,) = tree.find("p", class_="wrapup-notes")
    assert shown["text"] == notes  # as text: the script is not an element
    assert not tree.find("script")

    # The customer writes again; Bob (Ann is away) takes it and sees Ann's wrap-up.
    api.client("ann").put("/api/v1/users/ann/presence", json={"presence": "away"})
    api.on_queue("bob")
    second = api.deliver(
        "Re: Printer on fire", body="Still broken.\n",
        in_reply_to="<w1@customer.example>", references="<w1@customer.example>",
    )
    assert second != first
    api.wait_state(second, "alerting", "bob")
    assert api.client("bob").post(f"/api/v1/conversations/{second}/accept").status_code == 200
    tree = Tree(api.client("bob").get(f"/workspace/parts/thread/{second}").text)
    (item,) = tree.find("li", class_="wrapup")
    assert item["attrs"]["data-conversation"] == str(first)
    assert f"earlier conversation {first}" in item["text"] and "Ann" in item["text"]
    assert "Call back on Friday" in item["text"]
    # A wrap-up without notes still says its code, agent and time.
    r = api.client("bob").post(f"/api/v1/conversations/{second}/wrapup", json={"code": "done"})
    assert r.status_code == 200, r.text
    api.wait_state(second, "closed")
    items = Tree(api.client("bob").get(f"/workspace/parts/thread/{second}").text).find("li", class_="wrapup")
    assert [i["attrs"]["data-conversation"] for i in items] == [str(second), str(first)]
    assert "done" in items[0]["text"] and "Bob" in items[0]["text"] and "No notes." in items[0]["text"]
    # A supervisor sees both.
    assert len(Tree(api.client("sue").get(f"/workspace/parts/thread/{first}").text).find("li", class_="wrapup")) == 2


# -- where an offer comes from ---------------------------------------------------------------


def offer_titles(api: Api, user: str) -> dict[int, str]:
    tree = Tree(api.client(user).get("/workspace/parts/offers").text)
    return {
        int(o["attrs"]["data-cid"]): " ".join(s["text"].split())
        for o in tree.find("div", class_="offer")
        for s in tree.find("strong")
        if s["attrs"].get("id") == f"offer-title-{o['attrs']['data-cid']}"
    }


def test_offer_banner_says_new_conversation_or_customer_reply(api: Api) -> None:
    api.on_queue("ann")
    cid = api.deliver("Printer on fire", message_id="<o1@customer.example>")
    api.wait_state(cid, "alerting", "ann")
    assert offer_titles(api, "ann") == {cid: "New conversation: Printer on fire"}
    ann = api.client("ann")
    assert ann.post(f"/api/v1/conversations/{cid}/accept").status_code == 200
    assert ann.post(f"/api/v1/conversations/{cid}/wrapup", json={"code": "x"}).status_code == 200
    api.wait_state(cid, "closed")
    again = api.deliver(
        "Re: Printer on fire", body="It is on fire again.\n",
        in_reply_to="<o1@customer.example>", references="<o1@customer.example>",
    )
    row = api.wait_state(again, "alerting", "ann")
    assert offer_titles(api, "ann") == {again: f"Customer replied in thread PR-{row.thread_id}: Printer on fire"}


def test_offer_banner_names_who_transferred_it(api: Api) -> None:
    api.on_queue("ann")
    cid = api.offered_and_accepted("ann")
    api.on_queue("bob")
    r = api.client("ann").post(f"/api/v1/conversations/{cid}/transfer", json={"agent": "bob"})
    assert r.status_code == 200, r.text
    api.wait_state(cid, "alerting", "bob")
    assert offer_titles(api, "bob") == {cid: "Transferred from Ann (support): Printer on fire"}
    # Bob declines: the next offer of it still says it was transferred.
    assert api.client("bob").post(f"/api/v1/conversations/{cid}/decline").status_code == 200
    api.wait_state(cid, "alerting", "ann")
    assert offer_titles(api, "ann") == {cid: "Transferred from Ann (support): Printer on fire"}
    # Accepted, then transferred into a queue: Ann goes away first so Bob gets it.
    assert api.client("ann").post(f"/api/v1/conversations/{cid}/accept").status_code == 200
    api.client("bob").put("/api/v1/users/bob/presence", json={"presence": "on_queue"})
    api.client("ann").put("/api/v1/users/ann/presence", json={"presence": "away"})
    r = api.client("ann").post(f"/api/v1/conversations/{cid}/transfer", json={"queue": "support"})
    assert r.status_code == 200, r.text
    api.wait_state(cid, "alerting", "bob")
    assert offer_titles(api, "bob") == {cid: "Transferred from Ann (support): Printer on fire"}


def test_offer_banner_says_returned_from_park(api: Api) -> None:
    api.on_queue("ann")
    cid = api.offered_and_accepted("ann", message_id="<p1@customer.example>")
    assert api.client("ann").post(f"/api/v1/conversations/{cid}/park").status_code == 200
    api.wait_state(cid, "parked", "ann")
    # Ann leaves; the customer answers: it returns to the queue and is offered to Bob.
    api.client("ann").put("/api/v1/users/ann/presence", json={"presence": "away"})
    api.on_queue("bob")
    assert api.deliver(
        "Re: Printer on fire", body="Any news?\n",
        in_reply_to="<p1@customer.example>", references="<p1@customer.example>",
    ) == cid
    api.wait_state(cid, "alerting", "bob")
    titles = offer_titles(api, "bob")
    assert titles[cid].startswith("Returned from park (parked by ")
    assert titles[cid].endswith(": Printer on fire")


def test_offer_banner_keeps_a_hostile_subject_as_text(api: Api) -> None:
    api.on_queue("ann")
    cid = api.deliver('<img src=x onerror=alert(1)> "New conversation"')
    api.wait_state(cid, "alerting", "ann")
    html = api.client("ann").get("/workspace/parts/offers").text
    assert "<img" not in html
    assert offer_titles(api, "ann") == {cid: 'New conversation: <img src=x onerror=alert(1)> "New conversation"'}


# -- routing controls -----------------------------------------------------------------------


def status_button(api: Api, user: str) -> dict[str, Any]:
    (button,) = Tree(api.client(user).get("/workspace/parts/status").text).find("button", id="queue-toggle")
    return button


def test_queue_button_says_what_it_does(api: Api) -> None:
    off = status_button(api, "ann")
    assert off["text"].strip() == "Go on queue" and off["attrs"]["data-next"] == "on_queue"
    api.on_queue("ann")
    on = status_button(api, "ann")
    assert on["text"].strip() == "On queue" and on["attrs"]["data-next"] == "available"
    assert on["attrs"]["aria-pressed"] == "true"
    # A missed offer: still on queue, but not responding. One click must bring her back.
    cid = api.deliver()
    api.wait_state(cid, "alerting", "ann")
    assert api.client("ann").post(f"/api/v1/conversations/{cid}/decline").status_code == 200
    with api.db.connect() as conn:
        assert conn.execute(sa.select(agents.c.routing_status).where(agents.c.id == "ann")).scalar() == "not_responding"
    stuck = status_button(api, "ann")
    assert stuck["text"].strip() == "Not responding — go back on queue"
    assert stuck["attrs"]["data-next"] == "on_queue" and stuck["attrs"]["aria-pressed"] == "false"
    assert "stuck" in stuck["attrs"]["class"].split()
    # What the button sends brings her back: idle again, and the offer comes back.
    api.on_queue("ann")
    api.wait_state(cid, "alerting", "ann")
    assert status_button(api, "ann")["text"].strip() == "On queue"


def test_supervisors_are_not_told_to_go_on_queue(api: Api) -> None:
    for user, who in (("sue", "a supervisor"), ("adam", "an administrator")):
        page = api.client(user).get("/")
        assert "Go on queue" not in page.text
        (hint,) = Tree(page.text).find("p", id="empty-hint")
        assert f"You are {who}: you take no offers" in hint["text"] and "Queues" in hint["text"]
        status = api.client(user).get("/workspace/parts/status").text
        assert "Go on queue" not in status and 'href="/queues"' in status
    page = api.client("ann").get("/").text
    assert "Go on queue to receive offers" in page and 'id="empty-hint"' not in page


def test_transfer_dialog_shows_each_agents_status_offline_last(api: Api) -> None:
    api.on_queue("ann")
    cid = api.offered_and_accepted("ann")
    for uid, name in (("cleo", "Cleo"), ("dan", "Dan"), ("eve", "Eve")):
        with api.db.begin() as conn:
            conn.execute(agents.insert().values(
                id=uid, name=name, presence="offline", routing_status="off_queue", queues=["support"],
                capacity=1, skills=[], languages=[], updated_at=api.comps.clock(),
            ))
    api.on_queue("bob")
    with api.db.begin() as conn:
        conn.execute(agents.update().where(agents.c.id == "dan").values(presence="away"))
        conn.execute(agents.update().where(agents.c.id == "eve").values(presence="on_queue", routing_status="not_responding"))
    tree = Tree(api.client("ann").get(f"/c/{cid}").text)
    (select,) = tree.find("select", id="transfer-agent")
    assert select["attrs"]["aria-describedby"] == "transfer-agent-hint"
    opts = [o for o in tree.find("option") if o["attrs"].get("data-status")]
    assert [(o["attrs"]["value"], o["attrs"]["data-status"], o["text"]) for o in opts] == [
        ("bob", "ready", "Bob — on queue, idle"),
        ("eve", "full", "Eve — on queue, not responding"),
        ("dan", "away", "Dan — away"),
        ("cleo", "offline", "Cleo — offline"),
    ]
    groups = [g["attrs"]["label"] for g in tree.find("optgroup")]
    assert groups == ["Can take it now", "On queue, cannot take it now", "Not on queue", "Offline"]
    assert "it waits in the queue" in tree.find("p", id="transfer-agent-hint")[0]["text"]


def test_wrap_up_dialog_offers_no_code_only_where_the_queue_has_none(api_wrapup_codes: Api) -> None:
    api = api_wrapup_codes
    api.on_queue("ann")
    cid = api.offered_and_accepted("ann")
    tree = Tree(api.client("ann").get(f"/c/{cid}").text)
    values = [o["attrs"]["value"] for o in _options(tree, "wrapup-code")]
    assert values == ["resolved", "spam"]  # the API refuses an empty code here
    (label,) = [e for e in tree.find("label") if e["attrs"].get("for") == "wrapup-code"]
    assert "(required)" in label["text"]
    assert api.client("ann").post(f"/api/v1/conversations/{cid}/wrapup", json={"code": ""}).status_code == 400


def _options(tree: Tree, select_id: str) -> list[dict[str, Any]]:
    """The <option> elements inside one <select> (in document order)."""
    els = tree.elements
    start = next(i for i, e in enumerate(els) if e["tag"] == "select" and e["attrs"].get("id") == select_id)
    out = []
    for e in els[start + 1:]:
        if e["tag"] == "select":
            break
        if e["tag"] == "option":
            out.append(e)
    return out
