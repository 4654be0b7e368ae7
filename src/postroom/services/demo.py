"""The demo organisation `make run` starts with, and the sample mail `postroom demo send` sends.

Seeds users (four agents, a supervisor) and canned responses into an empty
store, with passwords made here and shown once. Queues, routes, wrap-up
codes and the queues' signatures come from the sample configuration (so the
canned responses here do not sign off: the signature does). No sockets here:
sending the sample mail is the command line's job.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid

import sqlalchemy as sa

from postroom.services import canned as canned_svc
from postroom.services import users as user_svc
from postroom.services.admin import audit
from postroom.store.schema import users


@dataclass(frozen=True, slots=True)
class DemoUser:
    user_id: str
    name: str
    role: str
    queues: tuple[str, ...] = ()
    skills: tuple[tuple[str, float], ...] = ()
    languages: tuple[str, ...] = ("en",)


DEMO_USERS = (
    DemoUser("ann", "Ann Agent", "agent", ("support",), (("printers", 4.0),)),
    DemoUser("bob", "Bob Agent", "agent", ("support", "billing"), (("billing", 3.0),)),
    DemoUser("carla", "Carla Agent", "agent", ("billing",), (("billing", 5.0),), ("en", "de")),
    DemoUser("dev", "Dev Agent", "agent", ("support",), (("printers", 2.0),)),
    DemoUser("sam", "Sam Supervisor", "supervisor"),
)

CANNED = (
    ("Greeting", None, "Hello {customer_name},\n\nthank you for writing to us."),
    (
        "Printer: restart first",
        "support",
        "Hello {customer_name},\n\nplease switch the printer off, wait ten seconds and switch it "
        "on again. If the problem stays, reply to this email (reference {reference}).",
    ),
    (
        "Refund on its way",
        "billing",
        "Hello {customer_name},\n\nyour refund is on its way and will reach your account within "
        "five working days.",
    ),
)


def seed(
    db: sa.Engine, clock: Callable[[], datetime], known_queues: list[str]
) -> list[tuple[str, str, str]] | None:
    """Create the demo users and canned responses if the store has no users yet.

    Returns (login, role, password) for each user created, or None when the store
    already had users (nothing is changed then).
    """
    with db.connect() as conn:
        if conn.execute(sa.select(sa.func.count()).select_from(users)).scalar_one():
            return None
    hasher = user_svc.password_hasher()
    created = []
    for u in DEMO_USERS:
        queues = [q for q in u.queues if q in known_queues]
        password = secrets.token_urlsafe(9)
        user_svc.add_user(
            db, clock, u.user_id, role=u.role, password=password, hasher=hasher, name=u.name,
            queues=queues if u.role == "agent" else None,
            skills=list(u.skills) if u.role == "agent" else None,
            languages=list(u.languages) if u.role == "agent" else None,
            known_queues=known_queues,
        )
        created.append((u.user_id, u.role, password))
    for name, queue, text in CANNED:
        if queue is None or queue in known_queues:
            canned_svc.create(
                db,
                clock,
                audit.SYSTEM,
                {"name": name, "text": text, "queue": queue},
                known_queues=known_queues,
            )
    return created


SAMPLES = (
    ("Ada Lovelace <ada@customer.example>", "My printer prints only blank pages",
     "Hello,\n\nsince this morning my printer only prints blank pages. I already replaced the "
     "toner. Can you help?\n\nAda"),
    ("Grace Hopper <grace@customer.example>", "Refund for invoice 2026-114",
     "Hi,\n\nI was charged twice for invoice 2026-114. Could you refund the second payment?\n\n"
     "Thanks, Grace"),
    ("Linus Example <linus@customer.example>", "Paper jam error E-21",
     "Hello support,\n\nthe display shows E-21 but there is no paper stuck anywhere.\n\nLinus"),
)


def sample_messages(to: str, domain: str, now: datetime) -> list[bytes]:
    """A few realistic customer emails addressed to `to`."""
    out = []
    for sender, subject, body in SAMPLES:
        msg = EmailMessage()
        msg["From"] = sender
        msg["To"] = to
        msg["Subject"] = subject
        msg["Date"] = format_datetime(now)
        msg["Message-ID"] = make_msgid(domain=domain)
        msg.set_content(body)
        out.append(msg.as_bytes(policy=SMTP))
    return out
