"""The browser page and the customer panel fragment: supervisors get pick boxes for
the bulk bar, agents see only their own, bad filters are said, a bad cursor is a
400 page; the thread view loads the customer panel."""

from __future__ import annotations

from tests.integration import test_api_fixtures as fx
from tests.integration.test_api_fixtures import Api

api = fx.api


def test_browser_page_for_supervisors_and_agents(api: Api) -> None:
    api.on_queue("ann")
    mine = api.offered_and_accepted("ann", subject="Heron <sighting>", body="a grey heron\n")
    other = api.deliver("Heron again", body="heron & egret\n")
    page = api.client("sue").get("/conversations", params={"q": "heron"})
    assert page.status_code == 200, page.text
    html = page.text
    assert f'href="/c/{mine}"' in html and f'href="/c/{other}"' in html
    assert f'class="pick" value="{mine}" form="bulk"' in html
    assert "Heron &lt;sighting&gt;" in html and "<sighting>" not in html
    assert "<mark>heron</mark>" in html
    agent = api.client("ann").get("/conversations", params={"q": "heron"}).text
    assert f'href="/c/{mine}"' in agent and f'href="/c/{other}"' not in agent
    assert 'class="pick"' not in agent  # agents do not act on the backlog
    odd = api.client("sue").get("/conversations", params={"state": "bogus", "from": "nope"})
    assert odd.status_code == 200 and "No such state" in odd.text and "not a date" in odd.text
    assert api.client("sue").get("/conversations", params={"cursor": "!!"}).status_code == 400
    assert api.client("sue").get("/conversations", params={"q": "x" * 5000}).status_code == 200


def test_thread_view_loads_the_customer_panel(api: Api) -> None:
    api.on_queue("ann")
    cid = api.offered_and_accepted("ann", subject="Held one", sender="kim@kimco.example")
    first = api.deliver("Waiting one", sender="kim@kimco.example")  # ann is at capacity
    part = api.client("ann").get(f"/workspace/parts/conversation/{cid}").text
    assert f'hx-get="/conversations/parts/customer/{cid}"' in part
    panel = api.client("sue").get(f"/conversations/parts/customer/{cid}").text
    assert "kim@kimco.example" in panel and f'href="/c/{first}"' in panel
    # ann never held the waiting one: her panel does not show it
    mine = api.client("ann").get(f"/conversations/parts/customer/{cid}").text
    assert f'href="/c/{first}"' not in mine
    assert api.client("bob").get(f"/conversations/parts/customer/{cid}").text == ""
