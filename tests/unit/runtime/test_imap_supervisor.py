"""runtime/imap_supervisor.py: the imap role follows the stored routes — a new
route's mailbox gets a poller, a removed one stops, a changed one restarts."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from postroom.domain.routes import ImapSource, Route
from postroom.ingest.imap import ImapMailbox
from postroom.runtime.imap_supervisor import ImapSupervisor, imap_mailboxes, plan

SRC = ImapSource(host="imap.example.com", user="u", password="p")


def route(address: str, **kw: object) -> Route:
    return Route(address=address, queue="support", imap=replace(SRC, **kw))  # type: ignore[arg-type]


def test_plan_starts_new_stops_removed_and_restarts_changed() -> None:
    a, b = imap_mailboxes([route("a@example.com"), route("b@example.com")])
    assert plan({}, [a, b]).start == (a, b) and plan({}, [a, b]).stop == ()
    running = {a[0].key: a[0], b[0].key: b[0]}
    assert plan(running, [a, b]).start == () and plan(running, [a, b]).stop == ()
    assert plan(running, [a]).stop == (b[0].key,)
    (changed,) = imap_mailboxes([route("b@example.com", password="new")])
    todo = plan(running, [a, changed])
    assert todo.stop == (b[0].key,) and todo.start == (changed,)


class FakePoller:
    def __init__(self, box: ImapMailbox, log: list[str]) -> None:
        self.box, self.log = box, log

    async def run(self, stop: asyncio.Event) -> None:
        self.log.append(f"start {self.box.key} {self.box.password}")
        await stop.wait()
        self.log.append(f"stop {self.box.key}")


def test_supervisor_follows_the_routes() -> None:
    routes: list[Route] = [Route(address="plain@example.com", queue="support")]
    log: list[str] = []

    async def scenario() -> None:
        sup = ImapSupervisor(lambda: routes, lambda box, _addr: FakePoller(box, log), check_s=0.01)
        await sup.reconcile()
        assert sup.keys() == []
        routes.append(route("new@example.com"))
        await sup.reconcile()
        await asyncio.sleep(0)
        assert sup.keys() == ["new@example.com"] and log == ["start new@example.com p"]
        routes[-1] = route("new@example.com", password="q")
        await sup.reconcile()
        await asyncio.sleep(0)
        assert log[-2:] == ["stop new@example.com", "start new@example.com q"]
        routes.pop()
        await sup.reconcile()
        assert sup.keys() == [] and log[-1] == "stop new@example.com"
        # run() stops every poller when the process stops.
        routes.append(route("last@example.com"))
        stop = asyncio.Event()
        task = asyncio.create_task(sup.run(stop))
        while "start last@example.com p" not in log:
            await asyncio.sleep(0.01)
        stop.set()
        await task
        assert log[-1] == "stop last@example.com" and sup.keys() == []

    asyncio.run(scenario())
