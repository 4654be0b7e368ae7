"""Intake use case: take one spooled message through parse → classify → thread →
rules → conversation, in one transaction, and publish events after the commit.

Each stage is a small method. All database effects of a message happen in a
single transaction together with its status change, so re-running after a
crash at any point yields the same result and never a second conversation.
A stage that fails sends the message to quarantine with the reason; intake
goes on. No sockets, no SMTP/IMAP here: transports only fill the spool.

No message can stop intake: each start on a message is counted in its row and
committed before the work, so one that keeps crashing or hanging the process is
quarantined after `max_attempts`; parsing, the one step whose cost depends on
the content, goes through a `Parser` that may enforce a time budget
(`postroom.ingest.parse_process`).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar
from urllib.parse import quote

import sqlalchemy as sa

from postroom.domain.errors import NoRouteError
from postroom.domain.routes import Route, RoutingDecision, Rule, find_route
from postroom.domain.states import ConversationState, MessageStatus
from postroom.mail import classify
from postroom.mail import rules as rule_engine
from postroom.mail import threading as thread_keys
from postroom.mail.model import Address, ParsedMessage
from postroom.mail.parse import parse_message
from postroom.services import outbound
from postroom.services.configuration import ConfigSource, Snapshot, StaticConfig
from postroom.services.search import index as search_index
from postroom.store import intake_repo as repo
from postroom.store.blobs import BlobNotFoundError, BlobStore, sha256_hex
from postroom.store.db import as_utc
from postroom.store.schema import messages

log = logging.getLogger("postroom.intake")
T = TypeVar("T")

# Stage marker an operator's retry sets: the loop guard lets that message pass once.
RELEASED = "released"

# Column limits (store/schema.py). Values are clipped the same way wherever they
# are written or looked up, so an absurd header can neither fail a commit on
# PostgreSQL nor break matching. Index keys stay under PostgreSQL's btree limit.
MAX_ADDRESS = 320
MAX_MESSAGE_ID = 500
MAX_KIND = 60


def _addr(address: str | None) -> str | None:
    return address[:MAX_ADDRESS] if address else None


def _sender(msg: ParsedMessage) -> str | None:
    return _addr(msg.from_.address) if msg.from_ else None


def _mid(message_id: str | None) -> str | None:
    return message_id[:MAX_MESSAGE_ID] if message_id else None


def _auto_kind(msg: ParsedMessage, envelope_from: str | None) -> str | None:
    kind = classify.auto_kind(msg, envelope_from)
    return (
        kind[:MAX_KIND] if kind else None
    )  # stage marker set by an operator's retry: skip the loop guard once


# At most this many unknown Message-IDs of one message are remembered (awaited_references).
MAX_AWAITED = 20


def _reference_ids(msg: ParsedMessage) -> list[str]:
    refs = thread_keys.reference_ids(msg.in_reply_to, msg.references)
    return [m for m in (_mid(r) for r in refs) if m]


def _addresses(msg: ParsedMessage) -> list[Address]:
    """The people a message names: From, Reply-To, To and Cc."""
    return [a for a in (msg.from_, *msg.reply_to, *msg.to, *msg.cc) if a is not None]


def _route_preferences(decision: RoutingDecision, received: datetime) -> dict[str, Any]:
    """The conversation columns for the route's preferred agents and deadline.

    Both count from the message's arrival, so a restart neither renews the
    preferred window nor moves the deadline.
    """
    preferred = list(decision.preferred_agents)
    return {
        "preferred_agents": preferred or None,
        "preferred_until": received + timedelta(seconds=decision.preferred_window_s)
        if preferred
        else None,
        "deadline_at": received + timedelta(seconds=decision.deadline_s)
        if decision.deadline_s is not None
        else None,
    }


@dataclass(frozen=True, slots=True)
class _ThreadChoice:
    thread_id: int | None  # the thread the message may join
    refused: int | None  # a thread it referenced but may not join (sender not a participant)
    unresolved: tuple[str, ...]  # Message-IDs it referenced that no stored message carries
    # How it was threaded (mail/threading.py `thread_reason`), stored with the message.
    reason: dict[str, Any] | None = None


_NO_CHOICE = _ThreadChoice(None, None, (), thread_keys.thread_reason("no_match"))


class StageError(Exception):
    """A pipeline stage failed; carries the stage name for the quarantine entry."""

    def __init__(self, stage: str, cause: BaseException) -> None:
        super().__init__(f"{stage}: {type(cause).__name__}: {cause}")
        self.stage = stage
        self.cause = cause
        self.parsed: ParsedMessage | None = None  # what the parse stage made, if it ran


class ParseTimeout(Exception):
    """Parsing one message took longer than its budget and was stopped."""

    def __init__(self, pk: int, budget_s: float) -> None:
        super().__init__(
            f"took longer than {budget_s:g} s to parse ([intake] parse_timeout_s), so it was "
            f"stopped; retry with `postroom quarantine retry {pk}` (same budget) or discard it "
            f"with `postroom quarantine discard {pk}`"
        )


class ParserDied(Exception):
    """The process parsing a message died (crashed, or killed from outside)."""

    def __init__(self, pk: int, exit_code: int | None) -> None:
        how = f"exit code {exit_code}" if exit_code is not None else "no exit code"
        super().__init__(
            f"the parser process died while parsing this message ({how}; see the log); "
            f"retry with `postroom quarantine retry {pk}` or discard it with "
            f"`postroom quarantine discard {pk}`"
        )


class ParserUnavailable(Exception):
    """The parser cannot run at all (its process does not start): not this message's fault."""


class AttemptsExhausted(Exception):
    """The pipeline started on a message this often without ever finishing it."""

    def __init__(self, pk: int, attempts: int) -> None:
        super().__init__(
            f"processing did not finish after {attempts} attempts (crash, kill or time-out); "
            f"see the log for message_pk {pk}; retry with `postroom quarantine retry {pk}` or "
            f"discard it with `postroom quarantine discard {pk}`"
        )


class RawMissing(Exception):
    """The raw bytes of a pending message are in neither its row nor the blob store."""

    def __init__(self, pk: int, sha256: str) -> None:
        super().__init__(
            f"the raw bytes of this message (sha256 {sha256}) are missing from the blob store "
            f"(blobs/{sha256[:2]}/{sha256[2:4]}/{sha256} under the data folder); restore the "
            f"file from a backup and retry with `postroom quarantine retry {pk}`, or discard "
            f"it with `postroom quarantine discard {pk}`"
        )


def cid_url(pk: int, cid: str) -> str:
    """Where the API serves inline part `cid` of message `pk` (module level: picklable)."""
    return f"/api/v1/messages/{pk}/cid/{quote(cid, safe='')}"


class Parser(Protocol):
    """Turns raw bytes into a ParsedMessage; may raise ParseTimeout or ParserDied."""

    def parse(self, pk: int, raw: bytes, cid_url: Callable[[str], str]) -> ParsedMessage: ...

    def close(self) -> None: ...


class InlineParser:
    """Parses in the calling thread: no time budget (`[intake] parse_timeout_s = 0`)."""

    def parse(self, pk: int, raw: bytes, cid_url: Callable[[str], str]) -> ParsedMessage:
        return parse_message(raw, cid_url=cid_url)

    def close(self) -> None:
        pass


@dataclass(frozen=True, slots=True)
class IntakeConfig:
    routes: tuple[Route, ...]
    rules: tuple[Rule, ...]
    loop_guard_max_messages: int = 20
    loop_guard_window_s: int = 600
    reopen_window_days: int = 30
    thread_token_prefix: str = "PR"
    max_attempts: int = 3  # starts on one message without finishing before it is quarantined
    slow_message_s: float = 2.0  # a message taking longer is logged as a warning


@dataclass(slots=True)
class Outcome:
    message_pk: int
    status: str
    thread_id: int | None = None
    conversation_id: int | None = None
    new_conversation: bool = False
    stage: str | None = None
    reason: str | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    thread_reason: dict[str, Any] | None = None  # how the message was threaded


EventListener = Callable[[Sequence[dict[str, Any]]], None]


class IntakeService:
    def __init__(
        self,
        engine: sa.Engine,
        blobs: BlobStore,
        config: IntakeConfig,
        clock: Callable[[], datetime],
        listeners: Sequence[EventListener] = (),
        parser: Parser | None = None,
        live: ConfigSource | None = None,
    ) -> None:
        self.engine = engine
        self.blobs = blobs
        self.config = config
        # Routes and rules: the stored configuration (re-read when it changes), or
        # the ones in `config` when there is none (tests).
        self.live: ConfigSource = live or StaticConfig(routes=config.routes, rules=config.rules)
        # The configuration the current message is decided with: taken before its
        # transaction opens (a read inside it would wait for SQLite's write lock).
        self._configured: Snapshot = self.live.current()
        self.clock = clock
        self.listeners = list(listeners)
        self.parser: Parser = parser or InlineParser()
        # Attempt counting (see _count_attempt): the message whose next attempt the
        # current message's final transaction also counts, and the one it counted.
        # One thread drives a service at a time.
        self._upcoming: int | None = None
        self._counted: int | None = None

    def close(self) -> None:
        self.parser.close()

    # -- driving ------------------------------------------------------------

    def process_pending(self, limit: int = 100) -> int:
        """Process up to `limit` pending messages in arrival order; return how many."""
        with self.engine.connect() as conn:
            ids = repo.pending_ids(conn, limit)
        try:
            for pos, pk in enumerate(ids):
                # The transaction that finishes this message also counts the next
                # one's attempt, which saves a commit per message under load.
                self._upcoming = ids[pos + 1] if pos + 1 < len(ids) else None
                self.process(pk)
        finally:
            self._upcoming = self._counted = None
        return len(ids)

    def drain(self) -> int:
        total = 0
        while n := self.process_pending():
            total += n
        return total

    def process(self, pk: int) -> Outcome | None:
        started = time.perf_counter()
        try:
            outcome = self._process(pk)
        except StageError as err:
            reason = str(err.cause) or type(err.cause).__name__
            outcome = self._quarantine(pk, err.stage, reason, err.parsed)
        if outcome is None:
            return None
        self._publish(outcome.events)
        ms = round((time.perf_counter() - started) * 1000, 2)
        log.info(
            "message processed",
            extra={
                "message_pk": pk,
                "status": outcome.status,
                "thread_id": outcome.thread_id,
                "conversation_id": outcome.conversation_id,
                "stage": outcome.stage,
                "reason": outcome.reason,
                "ms": ms,
            },
        )
        if ms > self.config.slow_message_s * 1000:
            with self.engine.connect() as conn:
                found = repo.get_message(conn, pk)
            log.warning(
                "message slow to process",
                extra={
                    "message_pk": pk,
                    "ms": ms,
                    "size": found.raw_size if found is not None else None,
                    "status": outcome.status,
                    "stage": outcome.stage,
                },
            )
        return outcome

    # -- the stages -----------------------------------------------------------

    def _process(self, pk: int) -> Outcome | None:
        with self.engine.connect() as conn:
            row = repo.get_message(conn, pk)
        if row is None or row.status != MessageStatus.PENDING:
            return None
        self._count_attempt(row)
        self._configured = self.live.current()  # new routes and rules: from this message on
        raw = self._stage("spool", lambda: self._raw(row))
        parsed = self._stage("parse", lambda: self._parse(pk, raw))
        self._stage(
            "parse", lambda: [self.blobs.put(a.data, sha256=a.sha256) for a in parsed.attachments]
        )
        try:
            return self._route(pk, parsed)
        except StageError as err:
            err.parsed = parsed
            raise
        except (sa.exc.DataError, sa.exc.IntegrityError) as exc:
            # Raised by the commit itself: this message's data, not the database, is
            # at fault, so it must not block the messages behind it.
            raise StageError("store", exc) from exc

    def _route(self, pk: int, parsed: ParsedMessage) -> Outcome | None:
        with self._begin() as conn:
            locked = repo.lock_pending(conn, pk)
            if locked is None:
                return None  # another worker took it, or it is done already
            outcome = self._stage("classify", lambda: self._classify(conn, locked, parsed))
            if outcome is None:
                refs = thread_keys.reference_ids(parsed.in_reply_to, parsed.references)
                ids = [m for m in (_mid(r) for r in refs) if m]
                thread_id, why = self._stage(
                    "thread", lambda: self._find_thread(conn, locked, parsed, ids)
                )
                decision = self._stage("rules", lambda: self._decide(locked, parsed))
                outcome = self._stage(
                    "conversation",
                    lambda: self._conversation(conn, locked, parsed, thread_id, decision, why),
                )
            self._stage("store", lambda: self._store_parsed(conn, locked, parsed, outcome))
        return outcome

    def _count_attempt(self, row: sa.Row[Any]) -> None:
        """Record this start on the message durably before any work on it begins.

        A message that was started `max_attempts` times and is still pending made
        the process crash, be killed or hang each time: it is quarantined instead
        of being started again, so a restart never stalls on it.
        """
        prepaid = self._counted == row.id  # counted by the previous message's commit
        self._counted = None
        started = int(row.attempts) - (1 if prepaid else 0)
        if 0 < self.config.max_attempts <= started:
            raise StageError("attempts", AttemptsExhausted(row.id, started))
        if not prepaid:
            with self.engine.begin() as conn:
                repo.count_attempt(conn, row.id)

    @contextmanager
    def _begin(self) -> Iterator[sa.Connection]:
        """A write transaction that also counts the upcoming message's attempt."""
        upcoming, self._upcoming = self._upcoming, None
        with self.engine.begin() as conn:
            yield conn
            if upcoming is not None:
                repo.count_attempt(conn, upcoming)
        self._counted = upcoming

    def _stage(self, name: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except (StageError, ParserUnavailable):
            raise
        except Exception as exc:
            raise StageError(name, exc) from exc

    def _raw(self, row: sa.Row[Any]) -> bytes:
        """The message's bytes, moved into the blob store if they were inline.

        The row's inline copy is cleared only in the transaction that finishes the
        message, after this put is durable, so there is always one durable copy.
        """
        if row.raw is not None:
            raw = bytes(row.raw)
            self.blobs.put(raw, sha256=row.raw_sha256)
            return raw
        try:
            raw = self.blobs.get(row.raw_sha256)
        except BlobNotFoundError as exc:
            raise RawMissing(row.id, row.raw_sha256) from exc
        if sha256_hex(raw) != row.raw_sha256:
            raise ValueError(
                "the stored raw bytes do not match their checksum (damaged by a crash "
                "before the sender was told 250); the sender will have retried: discard it"
            )
        return raw

    def _parse(self, pk: int, raw: bytes) -> ParsedMessage:
        return self.parser.parse(pk, raw, functools.partial(cid_url, pk))

    def _classify(
        self, conn: sa.Connection, row: sa.Row[Any], msg: ParsedMessage
    ) -> Outcome | None:
        sender = _sender(msg)
        dup = repo.find_duplicate(conn, row.id, row.raw_sha256, _mid(msg.message_id), sender)
        if dup is not None:
            ev = self._event(
                conn, "message_duplicate", message_id=row.id, data={"duplicate_of": dup}
            )
            conn.execute(
                messages.update()
                .where(messages.c.id == row.id)
                .values(status="duplicate", duplicate_of=dup)
            )
            return Outcome(
                row.id, MessageStatus.DUPLICATE, reason=f"duplicate of {dup}", events=[ev]
            )
        if classify.is_bounce(msg):
            target = repo.outbound_by_message_ids(conn, classify.bounced_message_ids(msg))
            if target is not None:
                # The event names our message's conversation, so that its agents
                # (not only supervisors) hear of the bounce on their event stream.
                where = repo.conversation_of_message(conn, target)
                ev = self._event(
                    conn,
                    "bounce_received",
                    message_id=row.id,
                    conversation_id=where[0] if where else None,
                    thread_id=where[1] if where else None,
                    data={"outbound_message": target},
                )
                conn.execute(
                    messages.update().where(messages.c.id == row.id).values(bounce_for=target)
                )
                outbound.mark_bounced(conn, target, self.clock(), msg)  # outbox row: bounced
                return Outcome(
                    row.id, MessageStatus.PROCESSED, reason=f"bounce of {target}", events=[ev]
                )
        if sender and row.stage != RELEASED and self.config.loop_guard_max_messages > 0:
            received = as_utc(row.received_at)
            assert received is not None
            since = received - timedelta(seconds=self.config.loop_guard_window_s)
            earlier = repo.recent_from_sender(conn, row.id, sender, since)
            if earlier + 1 > self.config.loop_guard_max_messages:
                reason = (
                    f"loop guard: more than {self.config.loop_guard_max_messages} messages from "
                    f"{sender} within {self.config.loop_guard_window_s} s; release it with "
                    "`postroom quarantine retry` or on the Quarantine admin page once the "
                    "sender is known to be safe"
                )
                return self._held(conn, row.id, "loop_guard", reason)
        return None

    def _find_thread(
        self, conn: sa.Connection, row: sa.Row[Any], msg: ParsedMessage, ids: list[str]
    ) -> tuple[int | None, dict[str, Any] | None]:
        """The thread the message joins (None: a new one) and why."""
        choice = self._thread_choice(conn, msg, ids)
        thread_id = choice.thread_id
        if thread_id is None:
            return None, choice.reason
        last = repo.latest_conversation(conn, thread_id)
        if (
            last is not None
            and last.state == ConversationState.CLOSED
            and last.closed_at is not None
        ):
            closed = as_utc(last.closed_at)
            received = as_utc(row.received_at)
            assert closed is not None and received is not None
            if received - closed > timedelta(days=self.config.reopen_window_days):
                # Too old: the customer starts a new exchange.
                days = self.config.reopen_window_days
                why = thread_keys.thread_reason("reopen_window_passed", thread=thread_id, days=days)
                return None, why
        return thread_id, choice.reason

    def _thread_choice(
        self, conn: sa.Connection, msg: ParsedMessage, ids: list[str]
    ) -> _ThreadChoice:
        """Which thread the message may join, and what it referenced but may not join.

        By In-Reply-To/References only when the sender took part in that thread
        (so a stranger who copies a Message-ID does not read or write into it); by
        a ``[#PR-n]`` subject token under the same condition; and, for a message that
        arrives after a reply to it, the reply's thread when each of the two
        senders is among the other message's addresses.
        """
        sender = _sender(msg)
        matches, found = repo.thread_matches(conn, ids)
        unresolved = tuple(m for m in ids if m not in found)[:MAX_AWAITED]
        refused: int | None = None
        replied_to = {_mid(r) for r in msg.in_reply_to}
        for candidate, header_id, pk in matches:
            if sender and repo.is_participant(conn, candidate, sender):
                code = "in_reply_to" if header_id in replied_to else "references"
                why = thread_keys.thread_reason(
                    code, thread=candidate, message=pk, message_id=header_id
                )
                return _ThreadChoice(candidate, None, unresolved, why)
            refused = candidate if refused is None else refused
        if sender:
            for candidate in thread_keys.tokens_in_subject(
                msg.subject, self.config.thread_token_prefix
            ):
                if repo.thread_exists(conn, candidate) and repo.is_participant(
                    conn, candidate, sender
                ):
                    token = thread_keys.thread_token(self.config.thread_token_prefix, candidate)
                    why = thread_keys.thread_reason("subject_token", thread=candidate, token=token)
                    return _ThreadChoice(candidate, refused, unresolved, why)
        own_id = _mid(msg.message_id)
        if sender and own_id:
            addresses = {a.address.lower() for a in _addresses(msg)}
            for candidate, replier in repo.awaited_by(conn, own_id):
                if replier in addresses and repo.is_participant(conn, candidate, sender):
                    why = thread_keys.thread_reason("reply_arrived_first", thread=candidate)
                    return _ThreadChoice(candidate, refused, unresolved, why)
        if refused is not None:
            why = thread_keys.thread_reason("not_participant", thread=refused)
        else:
            why = thread_keys.thread_reason("no_match")
        return _ThreadChoice(None, refused, unresolved, why)

    def _decide(self, row: sa.Row[Any], msg: ParsedMessage) -> RoutingDecision:
        recipients = rule_engine.message_recipients(row.envelope_to or [], msg)
        snapshot = self._configured  # one view for the route and its rules
        route = find_route(snapshot.routes, recipients)
        if route is None:
            raise NoRouteError(recipients)
        return rule_engine.decide(route, snapshot.rules, msg, recipients)

    def _conversation(
        self,
        conn: sa.Connection,
        row: sa.Row[Any],
        msg: ParsedMessage,
        thread_id: int | None,
        decision: RoutingDecision,
        why: dict[str, Any] | None = None,
    ) -> Outcome:
        received = as_utc(row.received_at)
        assert received is not None
        if decision.discard_reason:
            return self._held(
                conn, row.id, "rules", decision.discard_reason, status=MessageStatus.DISCARDED
            )
        evs: list[dict[str, Any]] = []
        new_thread = thread_id is None
        ids = _reference_ids(msg)
        if thread_id is None:
            thread_id = conn.execute(
                repo.INSERT_THREAD,
                {
                    "subject": msg.subject[:1000],
                    "created_at": received,
                    "last_activity_at": received,
                },
            ).scalar_one()
            choice = self._thread_choice(conn, msg, ids) if ids else _NO_CHOICE
            created: dict[str, Any] = {}
            if choice.refused is not None:
                # Kept apart from the thread it named; a supervisor may merge them.
                created = {
                    "referenced_thread": choice.refused,
                    "reason": "sender is not a participant",
                }
                log.warning(
                    "thread reference refused",
                    extra={"message_pk": row.id, "referenced_thread": choice.refused},
                )
            evs.append(
                self._event(
                    conn, "thread_created", thread_id=thread_id, message_id=row.id, data=created
                )
            )
            unresolved = choice.unresolved
        else:
            repo.touch_thread(conn, thread_id, received)
            unresolved = repo.unresolved_ids(conn, ids)[:MAX_AWAITED] if ids else ()
        people = [_addr(a.address) for a in _addresses(msg)]
        repo.add_participants(
            conn, thread_id, [p for p in people if p and not self._own_address(p)]
        )
        sender = _sender(msg)
        repo.add_awaited(conn, thread_id, row.id, sender.lower() if sender else None, unresolved)
        last = None if new_thread else repo.latest_conversation(conn, thread_id)
        if last is not None and last.state != ConversationState.CLOSED:
            evs.append(
                self._event(
                    conn,
                    "message_appended",
                    conversation_id=last.id,
                    message_id=row.id,
                    thread_id=thread_id,
                )
            )
            if last.state == ConversationState.PARKED:
                # The customer replied: the parked conversation returns to its agent.
                repo.request_routing(conn, self.clock(), "unparked", last.id)
            return Outcome(
                row.id, MessageStatus.PROCESSED, thread_id, last.id, False, events=evs,
                thread_reason=why,
            )  # fmt: skip
        conv_id = conn.execute(
            repo.INSERT_CONVERSATION,
            {
                "thread_id": thread_id,
                "state": str(ConversationState.QUEUED),
                "queue": decision.queue,
                "priority": decision.priority,
                "skills": [list(s) for s in decision.skills],
                "language": decision.language,
                "tags": list(decision.tags),
                "route_address": decision.route_address,
                "reply_from": decision.reply_from,
                "created_at": self.clock(),
                "enqueued_at": received,
                "closed_at": None,
                "close_reason": None,
                "last_agent": last.last_agent if last is not None else None,
                # Last-agent routing counts its window from here: without it the
                # engine never prefers the last agent.
                "last_agent_at": last.last_agent_at if last is not None else None,
                **_route_preferences(decision, received),
            },
        ).scalar_one()
        evs.append(
            self._event(
                conn,
                "conversation_created",
                conversation_id=conv_id,
                message_id=row.id,
                thread_id=thread_id,
                data={
                    "state": "queued",
                    "queue": decision.queue,
                    "priority": decision.priority,
                    "skills": [list(s) for s in decision.skills],
                    "language": decision.language,
                    "tags": list(decision.tags),
                    "rules": list(decision.matched_rules),
                    "enqueued_at": received.isoformat(),
                    "last_agent": last.last_agent if last is not None else None,
                    "preferred_agents": list(decision.preferred_agents),
                    "deadline_s": decision.deadline_s,
                    "route_address": decision.route_address,  # analytics groups by it
                },
            )
        )
        repo.request_routing(conn, self.clock(), "enqueued", conv_id)
        auto_kind = _auto_kind(msg, row.envelope_from)
        if decision.auto_ack and auto_kind is None and msg.from_ is not None:
            evs.append(
                self._event(
                    conn,
                    "auto_ack_requested",
                    conversation_id=conv_id,
                    message_id=row.id,
                    thread_id=thread_id,
                    data={"to": msg.from_.address, "template": decision.auto_ack},
                )
            )
        return Outcome(
            row.id, MessageStatus.PROCESSED, thread_id, conv_id, True, events=evs,
            thread_reason=why,
        )  # fmt: skip

    # -- helpers ----------------------------------------------------------------

    def _own_address(self, address: str) -> bool:
        """One of ours (a route's address or reply address): never a participant."""
        low = address.lower()
        return any(
            r.matches(low) or (r.reply_from or "").lower() == low
            for r in self._configured.routes
        )

    def _held(
        self,
        conn: sa.Connection,
        pk: int,
        stage: str,
        reason: str,
        status: MessageStatus = MessageStatus.QUARANTINED,
    ) -> Outcome:
        kind = "message_quarantined" if status == MessageStatus.QUARANTINED else "message_discarded"
        ev = self._event(conn, kind, message_id=pk, data={"stage": stage, "reason": reason})
        return Outcome(pk, status, stage=stage, reason=reason, events=[ev])

    def _store_parsed(
        self, conn: sa.Connection, row: sa.Row[Any], msg: ParsedMessage, outcome: Outcome
    ) -> None:
        values: dict[str, Any] = {
            "header_message_id": _mid(msg.message_id),
            "sender": _sender(msg),
            "subject": msg.subject,
            "sent_at": msg.date,
            "in_reply_to": list(msg.in_reply_to),
            "references": list(msg.references),
            "auto_kind": _auto_kind(msg, row.envelope_from),
            "text": msg.text,
            "html": msg.html,
            "preview": msg.reply_text[:500],
            "headers": [list(h) for h in msg.headers],
            "defects": list(msg.defects),
            "raw": None,  # _raw() made the blob durable before this transaction
        }
        if outcome.status != MessageStatus.DUPLICATE:
            values |= {
                "status": str(outcome.status),
                "stage": outcome.stage,
                "error": outcome.reason if outcome.status != MessageStatus.PROCESSED else None,
                "thread_id": outcome.thread_id,
                "conversation_id": outcome.conversation_id,
                "thread_reason": outcome.thread_reason,
            }
            # A retried message may carry rows from its earlier attempt.
            repo.replace_attachments(
                conn,
                row.id,
                [
                    {
                        "position": pos,
                        "filename": att.filename,
                        "content_type": att.content_type[:255],
                        "sniffed_type": att.sniffed_type,
                        "size": att.size,
                        "sha256": att.sha256,
                        "content_id": (att.content_id or "")[:998] or None,
                        "inline": att.inline,
                    }
                    for pos, att in enumerate(msg.attachments)
                ],
            )
        repo.update_message(conn, row.id, values)
        if outcome.conversation_id is not None and outcome.status == MessageStatus.PROCESSED:
            # Findable from the moment it is committed (services/search/index.py).
            search_index.index_messages(conn, [row.id], prefix=self.config.thread_token_prefix)
        if outcome.status in (MessageStatus.PROCESSED, MessageStatus.DUPLICATE):
            outcome.events.insert(
                0,
                self._event(
                    conn,
                    "message_received",
                    message_id=row.id,
                    thread_id=outcome.thread_id,
                    conversation_id=outcome.conversation_id,
                    data={"source": row.source, "auto_kind": values["auto_kind"]},
                ),
            )

    def _quarantine(
        self, pk: int, stage: str, error: str, parsed: ParsedMessage | None
    ) -> Outcome | None:
        # Keep sender and subject when parsing got that far: operators triage by them.
        known: dict[str, Any] = {}
        if parsed is not None:
            known = {
                "sender": _sender(parsed),
                "subject": parsed.subject,
                "header_message_id": _mid(parsed.message_id),
            }
        try:
            ev = self._write_quarantine(pk, stage, error, known)
        except (sa.exc.DataError, sa.exc.IntegrityError):
            ev = self._write_quarantine(pk, stage, error, {})
        if ev is None:
            return None
        return Outcome(pk, MessageStatus.QUARANTINED, stage=stage, reason=error, events=[ev])

    def _write_quarantine(
        self, pk: int, stage: str, error: str, known: dict[str, Any]
    ) -> dict[str, Any] | None:
        with self._begin() as conn:
            locked = repo.lock_pending(conn, pk)
            if locked is None:
                return None
            values = {"status": "quarantined", "stage": stage, "error": error[:4000], **known}
            if locked.raw is not None and self.blobs.exists(locked.raw_sha256):
                values["raw"] = None  # a durable copy is in the blob store
            repo.update_message(conn, pk, values)
            return self._event(
                conn, "message_quarantined", message_id=pk, data={"stage": stage, "reason": error}
            )

    def _event(
        self,
        conn: sa.Connection,
        kind: str,
        *,
        conversation_id: int | None = None,
        message_id: int | None = None,
        thread_id: int | None = None,
        data: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        at = self.clock()
        payload = data or {}
        eid = conn.execute(
            repo.INSERT_EVENT,
            {
                "at": at,
                "kind": kind,
                "conversation_id": conversation_id,
                "message_id": message_id,
                "thread_id": thread_id,
                "data": payload,
            },
        ).scalar_one()
        return {
            "id": eid,
            "at": at.isoformat(),
            "kind": kind,
            "conversation_id": conversation_id,
            "message_id": message_id,
            "thread_id": thread_id,
            "data": payload,
        }

    def _publish(self, evs: Sequence[dict[str, Any]]) -> None:
        # Zulip's rule: listeners hear of a change only after it is committed.
        for listener in self.listeners:
            try:
                listener(evs)
            except Exception:
                log.exception("event listener failed")
