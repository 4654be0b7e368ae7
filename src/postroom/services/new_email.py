"""Agent-initiated email: an agent starts a new conversation by writing to a customer.

The job: check that the agent may send from the queue, then in one transaction
create the thread and the conversation (already ``connected`` to the agent,
who took part in the thread), store and queue the message through the outbox
(services/outbound.py: From the queue's route address, a Message-ID on our
domain, the subject token), record the recipients as the thread's
participants so that their answers thread back, and ask the router to take
the conversation into the agent's capacity (request ``adopt``, see
services/routing.py). Events are published only after the commit.

What it must not do: decide routing (the router adopts the conversation, in
request order, before any later action on it), build MIME or speak SMTP, or
know about HTTP.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from postroom.domain.errors import NoQueueAddressError, NotFoundError, PostroomError
from postroom.domain.routes import QueueConfig, Route, send_address
from postroom.mail import compose as mc
from postroom.mail.quotes import html_to_text
from postroom.mail.sanitize import sanitize_html
from postroom.mail.threading import thread_token
from postroom.routing.model import MAX_CAPACITY
from postroom.services import conversations as conv_svc
from postroom.services.agents import RequestRefused
from postroom.services.outbound import OutboundService
from postroom.services.users import Forbidden, User
from postroom.store import intake_repo as repo
from postroom.store.schema import agents, conversations, thread_agents

# The routing engine's largest capacity: a new email is assigned to its agent even
# past their capacity, but never past this many held conversations (the router
# checks the same limit).
MAX_HELD = MAX_CAPACITY
HELD_STATES = ("alerting", "connected", "wrapup")


class NotQueueMember(Forbidden):
    """An agent tried to send from a queue they do not belong to."""


class NotAnAgent(PostroomError):
    """The conversation would be held by a user without an agent profile."""


@dataclass(frozen=True, slots=True)
class NewEmail:
    """What the agent wrote; attachments and inline images are ids of their uploads."""

    queue: str
    subject: str
    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    bcc: tuple[str, ...] = ()
    text: str = ""
    html: str | None = None
    attachments: tuple[int, ...] = ()
    inline: tuple[int, ...] = ()
    agent: str | None = None  # supervisors and admins: start it for this agent


@dataclass(frozen=True, slots=True)
class Started:
    conversation_id: int
    thread_id: int
    reference: str
    queue: str
    agent: str
    message_id: str  # the Message-ID header, without brackets
    outbox_id: int
    recipients: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "conversation_id": self.conversation_id,
            "thread_id": self.thread_id,
            "reference": self.reference,
            "queue": self.queue,
            "agent": self.agent,
            "state": "connected",
            "message_id": self.message_id,
            "outbox_id": self.outbox_id,
            "recipients": list(self.recipients),
        }


# -- inline images -----------------------------------------------------------------

_UPLOAD_SRC = re.compile(
    r"""(\bsrc\s*=\s*["']?)\s*(?:(?:https?://[^/"'\s>]+)?/api/v1/uploads/|cid:upload-)(\d+)(?=["'\s>])""",
    re.IGNORECASE,
)


def inline_content_id(upload_id: int, unique: str, domain: str) -> str:
    """The Content-ID an inline upload travels under (globally unique, RFC 2392)."""
    return f"upload-{upload_id}.{unique}@{domain}"


def link_inline_images(html: str, content_ids: dict[int, str]) -> str:
    """Point ``<img>`` sources at their inline parts. Pure.

    An editor shows an uploaded image from its URL (``/api/v1/uploads/ID``, as
    returned by the upload); ``cid:upload-ID`` is accepted too. Both become
    ``cid:<Content-ID>`` of that upload when it is one of the inline images;
    other sources are left for the sanitizer.
    """

    def swap(m: re.Match[str]) -> str:
        cid = content_ids.get(int(m.group(2)))
        return m.group(0) if cid is None else f"{m.group(1)}cid:{cid}"

    return _UPLOAD_SRC.sub(swap, html)


# -- the use case --------------------------------------------------------------------


def start(
    db: sa.Engine,
    service: OutboundService,
    clock: Callable[[], datetime],
    user: User,
    email: NewEmail,
    *,
    queues: Sequence[QueueConfig],
    routes: Sequence[Route],
    max_recipients: int,
    max_attachments: int,
) -> Started:
    """Create the conversation and queue its first message; raises the named errors."""
    queue = next((q for q in queues if q.name == email.queue), None)
    if queue is None:
        names = ", ".join(q.name for q in queues)
        raise NotFoundError(f"no queue {email.queue!r}; queues: {names}")
    agent_id = email.agent or user.id
    if agent_id != user.id and not user.sees_everything:
        raise Forbidden(
            f"you can start emails only for yourself ({user.id}); a supervisor can start one "
            "for another agent"
        )
    with db.connect() as conn:
        profile = conn.execute(
            sa.select(agents.c.id, agents.c.queues).where(agents.c.id == agent_id)
        ).first()
        held = conn.execute(
            sa.select(sa.func.count())
            .select_from(conversations)
            .where(conversations.c.agent_id == agent_id, conversations.c.state.in_(HELD_STATES))
        ).scalar_one()
    if profile is None:
        raise NotAnAgent(
            f"{agent_id} has no agent profile, and only agents hold conversations: "
            + (
                "name an agent in `agent`, or give yourself a profile with "
                f"`postroom agent add {agent_id} --queues {email.queue}`"
                if agent_id == user.id
                else f"add one with `postroom agent add {agent_id} --queues {email.queue}`"
            )
        )
    if not user.sees_everything and email.queue not in (profile.queues or []):
        mine = ", ".join(profile.queues or []) or "none"
        raise NotQueueMember(
            f"you are not a member of queue {email.queue!r}; send from one of your queues "
            f"({mine}) or ask a supervisor to add you"
        )
    found = send_address(tuple(routes), email.queue)
    if found is None:
        raise NoQueueAddressError(email.queue)
    route, from_address = found
    subject = " ".join(email.subject.split())
    if not subject:
        raise PostroomError("a new email needs a subject")
    conv_svc.check_limits(
        {
            "to": email.to,
            "cc": email.cc,
            "bcc": email.bcc,
            "attachments": [*email.attachments, *email.inline],
        },
        max_recipients=max_recipients,
        max_attachments=max_attachments,
    )
    if email.inline and email.html is None:
        raise PostroomError("inline images need an HTML body that shows them (<img src=...>)")
    if held >= MAX_HELD:
        raise RequestRefused(
            f"{agent_id} already holds {held} conversations, the most anyone can; end one first"
        )
    files, content_ids = _files(db, service, user, email)
    html = email.html
    if html is not None:
        html = sanitize_html(link_inline_images(html, content_ids), cid_url=None)
    # A mail client without HTML shows the text part: never leave it empty.
    text = email.text if email.text.strip() or html is None else html_to_text(html)
    now = clock()
    with db.begin() as conn:
        thread_id = conn.execute(
            repo.INSERT_THREAD,
            {"subject": subject[:1000], "created_at": now, "last_activity_at": now},
        ).scalar_one()
        conv_id = conn.execute(
            repo.INSERT_CONVERSATION,
            {
                "thread_id": thread_id,
                # Connected at once: the agent is writing it. The router takes it
                # into the agent's capacity when it reads the `adopt` request (and
                # a router that starts later rebuilds it as the agent's held work).
                "state": "connected",
                "agent_id": agent_id,
                "queue": queue.name,
                "priority": 0,
                "skills": [],
                "language": route.language,
                "tags": [],
                "route_address": route.address,
                "reply_from": from_address,
                "created_at": now,
                "enqueued_at": now,
                "closed_at": None,
                "close_reason": None,
                "last_agent": None,
            },
        ).scalar_one()
        # The agent took part: they keep the thread's history, as after an accepted offer.
        conn.execute(thread_agents.insert().values(thread_id=thread_id, agent_id=agent_id))
        evs = [
            _event(conn, now, "thread_created", conv_id, thread_id, {}),
            _event(
                conn,
                now,
                "conversation_created",
                conv_id,
                thread_id,
                {
                    "state": "connected",
                    "queue": queue.name,
                    "agent": agent_id,
                    "origin": "agent",
                    "by": user.id,
                    "route": route.address,
                },
            ),
        ]
        queued, queued_evs = service.queue_in(
            conn,
            conv_id,
            text=text,
            html=html,
            attachments=files,
            to=email.to,
            cc=email.cc,
            bcc=email.bcc,
            subject=subject,
            agent_id=user.id,
        )
        evs.extend(queued_evs)
        # Whoever got it may answer with only the subject token to go by.
        repo.add_participants(conn, thread_id, [a[:320] for a in queued.recipients])
        repo.request_routing(conn, now, "adopt", conv_id, agent_id)
    service.publish(evs)
    return Started(
        conversation_id=conv_id,
        thread_id=thread_id,
        reference=thread_token(service.config.thread_token_prefix, thread_id),
        queue=queue.name,
        agent=agent_id,
        message_id=queued.message_id,
        outbox_id=queued.outbox_id,
        recipients=queued.recipients,
    )


def _files(
    db: sa.Engine, service: OutboundService, user: User, email: NewEmail
) -> tuple[list[mc.OutboundAttachment], dict[int, str]]:
    """The uploads as attachments, and the Content-ID of each inline one by upload id."""
    wanted = [*email.attachments, *email.inline]
    rows = {r.id: r for r in conv_svc.owned_uploads(db, user, wanted)}
    content_ids = {
        uid: inline_content_id(uid, service.unique(), service.config.message_id_domain)
        for uid in dict.fromkeys(email.inline)
    }
    files = [
        mc.OutboundAttachment(
            filename=rows[uid].filename,
            content_type=rows[uid].content_type,
            data=service.blobs.get(rows[uid].sha256),
            content_id=content_ids.get(uid),
        )
        for uid in dict.fromkeys(wanted)
    ]
    return files, content_ids


def _event(
    conn: sa.Connection,
    at: datetime,
    kind: str,
    conversation_id: int,
    thread_id: int,
    data: dict[str, Any],
) -> dict[str, Any]:
    eid = conn.execute(
        repo.INSERT_EVENT,
        {
            "at": at,
            "kind": kind,
            "conversation_id": conversation_id,
            "message_id": None,
            "thread_id": thread_id,
            "data": data,
        },
    ).scalar_one()
    return {
        "id": eid,
        "at": at.isoformat(),
        "kind": kind,
        "conversation_id": conversation_id,
        "message_id": None,
        "thread_id": thread_id,
        "data": data,
    }
