"""IMAP mailbox → spool → pipeline with the real stores, and `serve` wiring routes to pollers."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from postroom.domain.routes import ImapSource, Route
from postroom.ingest.imap import ImapPoller
from postroom.runtime.imap_supervisor import RouteRecipient, imap_mailboxes
from postroom.runtime.settings import Settings
from postroom.runtime.wiring import build
from postroom.store.intake_repo import SqlCursorStore, status_counts
from tests.integration.dovecot import Dovecot
from tests.mailfactory import make_email

pytestmark = [pytest.mark.imap, pytest.mark.timeout(90)]


def imap_settings(settings: Settings, server: Dovecot) -> Settings:
    route = Route(
        address="support@example.org",
        queue="support",
        imap=ImapSource(
            host=server.host,
            port=server.port,
            tls="none",
            user="support@example.org",
            password="secret",
        ),
    )
    return replace(settings, routes=(*settings.routes, route))


def test_mail_from_imap_becomes_conversations_once(
    any_settings: Settings, dovecot: Dovecot
) -> None:
    s = imap_settings(any_settings, dovecot)
    for i in range(2):
        dovecot.append(make_email(to="support@example.org", sender=f"c{i}@customer.example"))
    # Delivered as Bcc: the headers name someone else; the mailbox's route still applies.
    dovecot.append(make_email(to="someone@else.example", sender="bcc@customer.example"))
    comps = build(s)
    try:
        [(box, address)] = imap_mailboxes(s.routes)
        assert address == "support@example.org"
        poller = ImapPoller(
            box, RouteRecipient(comps.spool(), address), SqlCursorStore(comps.engine)
        )
        assert asyncio.run(poller.poll_once()) == 3
        assert asyncio.run(poller.poll_once()) == 0
        comps.intake.drain()
        with comps.engine.connect() as conn:
            st = status_counts(conn)
        assert st["messages"]["received"] == 3 and st["messages"]["processed"] == 3
        assert st["conversations"]["queued"] == 3
        # A new poller (as after a restart) continues from the stored cursor.
        again = ImapPoller(box, comps.spool(), SqlCursorStore(comps.engine))
        assert asyncio.run(again.poll_once()) == 0
    finally:
        comps.close()


def test_a_mailbox_added_through_the_admin_api_is_polled_without_a_restart(
    any_settings: Settings, dovecot: Dovecot
) -> None:
    """The imap role's supervisor follows the stored routes: a route with a
    mailbox created by an admin gets a poller, its mail becomes a conversation
    of that route; the route removed, the poller stops."""
    from datetime import UTC, datetime

    import sqlalchemy as sa

    from postroom.runtime.imap_supervisor import ImapSupervisor
    from postroom.services.admin import routes as route_svc
    from postroom.services.admin.audit import Actor
    from postroom.services.admin.schema import RouteChange
    from postroom.store.schema import conversations

    comps = build(any_settings)
    dovecot.append(make_email(to="support@example.org", sender="imap@customer.example"))
    cursors = SqlCursorStore(comps.engine)
    sup = ImapSupervisor(
        lambda: comps.live.current().routes,
        lambda box, address: ImapPoller(box, RouteRecipient(comps.spool(), address), cursors),
        check_s=0.05,
    )
    change = RouteChange.model_validate(
        {
            "address": "support@example.org",
            "queue": "support",
            "imap": {"host": dovecot.host, "port": dovecot.port, "tls": "none",
                     "user": "support@example.org", "password": "secret", "idle": False,
                     "poll_interval_s": 1},
        }
    )

    def routed() -> list[str]:
        with comps.engine.connect() as conn:
            return [r for (r,) in conn.execute(sa.select(conversations.c.route_address))]

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(sup.run(stop))
        await asyncio.sleep(0.2)
        assert sup.keys() == []
        made = route_svc.create_route(comps.engine, datetime.now(UTC), Actor("adam", "session"), change)
        for _ in range(400):
            comps.intake.drain()
            if "support@example.org" in routed():
                break
            await asyncio.sleep(0.05)
        assert "support@example.org" in routed() and sup.keys() == ["support@example.org"]
        route_svc.delete_route(comps.engine, datetime.now(UTC), Actor("adam", "session"), made["id"])
        for _ in range(200):
            if not sup.keys():
                break
            await asyncio.sleep(0.05)
        assert sup.keys() == []
        stop.set()
        await task

    try:
        asyncio.run(scenario())
    finally:
        comps.close()
