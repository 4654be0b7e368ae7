"""Conversation details from the event log: segments, messages, transfers, outcome.

The job: take the records of the `events` table one by one, in id order
(`ConversationTracker.apply`, or `Projection.apply` for many conversations),
and keep for each conversation what an analyst asks about — its queue waits
(one segment per queue: a transfer starts a new one), its offers to agents
(alert segments with their outcome), the time agents worked on it (interact),
parked it and wrapped it up, the messages in and out, the transfers, the
wrap-up code and the outcome. The projector (services/analytics/projector.py) and a
rebuild share this code, so what they store is the same.

What it must not do: read a clock, a database or anything but the records it is
given. Unknown event kinds are ignored (so new kinds do not break old
projections); events that do not fit the state (the router mirrors only the
final state of a batch, so a state change may skip a step) are absorbed: the
tracker closes what is open and opens what the new state says.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

SegmentKind = Literal["wait", "alert", "interact", "park", "wrapup"]
AlertOutcome = Literal["accepted", "declined", "timed_out", "withdrawn"]
# discarded: a supervisor closed it while it waited (not the customer abandoning).
WaitOutcome = Literal["answered", "abandoned", "flowed_out", "discarded"]
Outcome = Literal["open", "answered", "abandoned", "discarded", "flowed_out", "closed"]
Direction = Literal["inbound", "outbound"]

WAITING = ("queued", "alerting")
NOTES_MAX = 2000  # wrap-up notes kept in the details (the event holds them whole)


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One row of `events`, as the projector reads it."""

    id: int
    at: datetime
    kind: str
    conversation_id: int | None
    data: Mapping[str, Any]
    message_id: int | None = None


@dataclass(slots=True)
class Segment:
    """A span of the conversation with one queue or one agent.

    `outcome`: for a wait, how it ended (answered, abandoned, flowed_out); for an
    alert, accepted, declined, timed_out or withdrawn; None while open and for
    the other kinds. `participation` numbers an agent's stretch of work (connect
    to leaving), so handle time adds its interact and wrap-up segments.
    """

    kind: SegmentKind
    start: datetime
    end: datetime | None = None
    queue: str | None = None
    agent: str | None = None
    outcome: str | None = None
    participation: int | None = None
    connect: bool = False  # an interact segment that began with a connect (not a resume)
    answered_by: str | None = None  # a wait: the agent who answered it

    @property
    def seconds(self) -> float | None:
        return None if self.end is None else max(0.0, (self.end - self.start).total_seconds())

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "start": self.start.isoformat(),
            "end": self.end.isoformat() if self.end is not None else None,
            "queue": self.queue,
            "agent": self.agent,
            "outcome": self.outcome,
            "participation": self.participation,
            "connect": self.connect,
            "answered_by": self.answered_by,
        }


@dataclass(frozen=True, slots=True)
class Transfer:
    at: datetime
    from_queue: str | None
    from_agent: str | None
    to_queue: str | None
    to_agent: str | None  # a transfer to an agent (a direct offer)


@dataclass(frozen=True, slots=True)
class Response:
    """An agent's reply and the customer message it answered (the oldest one unanswered)."""

    at: datetime
    seconds: float
    agent: str | None
    queue: str | None
    first: bool  # the conversation's first agent reply


@dataclass(slots=True)
class ConversationDetail:
    key: str  # "c<conversation id>", or "m<message id>" for a message a rule discarded
    conversation_id: int | None
    message_id: int | None
    started_at: datetime
    direction: Direction = "inbound"
    route: str | None = None
    ended_at: datetime | None = None
    outcome: Outcome = "open"
    wrapup_code: str | None = None
    wrapup_notes: str | None = None
    segments: list[Segment] = field(default_factory=list)
    transfers: list[Transfer] = field(default_factory=list)
    responses: list[Response] = field(default_factory=list)
    messages_in: list[datetime] = field(default_factory=list)
    messages_out: list[datetime] = field(default_factory=list)  # agents' replies
    auto_replies: int = 0
    last_event_id: int = 0

    @property
    def queues(self) -> list[str]:
        seen: list[str] = []
        for s in self.segments:
            if s.queue is not None and s.queue not in seen:
                seen.append(s.queue)
        return seen

    @property
    def agents(self) -> list[str]:
        seen: list[str] = []
        for s in self.segments:
            if s.agent is not None and s.kind != "alert" and s.agent not in seen:
                seen.append(s.agent)
        return seen

    def as_dict(self) -> dict[str, Any]:
        return {
            "conversationId": self.conversation_id,
            "messageId": self.message_id,
            "start": self.started_at.isoformat(),
            "end": self.ended_at.isoformat() if self.ended_at else None,
            "direction": self.direction,
            "addressTo": self.route,
            "outcome": self.outcome,
            "wrapUpCode": self.wrapup_code,
            "wrapUpNotes": self.wrapup_notes,
            "queues": self.queues,
            "agents": self.agents,
            "messagesIn": len(self.messages_in),
            "messagesOut": len(self.messages_out),
            "autoReplies": self.auto_replies,
            "transfers": len(self.transfers),
            "segments": [s.as_dict() for s in self.segments],
        }


def key_of(event: EventRecord) -> str | None:
    """The detail an event belongs to (None: no conversation's, e.g. a presence change)."""
    if event.conversation_id is not None:
        return f"c{event.conversation_id}"
    if (
        event.kind == "message_discarded"
        and event.message_id is not None
        and (event.data or {}).get("stage") == "rules"
    ):
        return f"m{event.message_id}"
    return None


def _parse_time(value: Any, fallback: datetime) -> datetime:
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return fallback
        if parsed.tzinfo is None:
            return fallback
        return min(parsed, fallback)  # never after the event that reports it
    return fallback


def _text(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


class ConversationTracker:
    """The details of one conversation, kept up to date event by event."""

    def __init__(self, key: str, first: EventRecord) -> None:
        cid = first.conversation_id
        self.detail = ConversationDetail(
            key=key,
            conversation_id=cid,
            message_id=first.message_id if cid is None else None,
            started_at=first.at,
        )
        self.state: str | None = None
        self.queue: str | None = None
        self.agent: str | None = None
        self._wait: Segment | None = None
        self._alert: Segment | None = None
        self._work: Segment | None = None  # the open interact, park or wrap-up
        self._participation = 0
        self._unanswered: datetime | None = None  # oldest customer message not replied to
        self._park_return = False
        self._started = False
        self._merged_away = False  # merged into another conversation while waiting
        self._discard: str | None = None  # a supervisor's close reason, before the close

    @property
    def last_event_id(self) -> int:
        return self.detail.last_event_id

    @property
    def closed(self) -> bool:
        return self.detail.outcome not in ("open",)

    # -- the events ------------------------------------------------------------------

    def apply(self, e: EventRecord) -> None:
        d = self.detail
        d.last_event_id = max(d.last_event_id, e.id)
        data = e.data or {}
        handler = _HANDLERS.get(e.kind)
        if handler is not None:
            handler(self, e, data)

    def _created(self, e: EventRecord, data: Mapping[str, Any]) -> None:
        d = self.detail
        if self._started:
            return
        self._started = True
        self.queue = _text(data.get("queue"))
        d.route = _text(data.get("route") or data.get("route_address"))
        if data.get("state") == "connected":
            d.direction = "outbound" if data.get("origin") == "agent" else "inbound"
            d.started_at = e.at
            self._connect(e.at, _text(data.get("agent")), from_alert=False)
            self.state = "connected"
            return
        start = _parse_time(data.get("enqueued_at"), e.at)
        d.started_at = start
        self.state = "queued"
        self._open_wait(start)
        self._unanswered = start

    def _discarded(self, e: EventRecord, data: Mapping[str, Any]) -> None:
        d = self.detail
        d.outcome = "discarded"
        d.ended_at = e.at
        d.route = _text(data.get("route")) or d.route

    def _offer(self, e: EventRecord, data: Mapping[str, Any]) -> None:
        agent = _text(data.get("agent"))
        queue = _text(data.get("queue")) or self.queue
        if self._alert is not None and self._alert.agent == agent and self._work is None:
            return  # offered again to the same agent (the router restarted): the same alert
        self._end_alert(e.at, "declined")
        direct = data.get("rule") == "direct_transfer"
        if self._work is not None:
            # The router writes the offers of a batch before the state change that
            # follows them: an offer while an agent holds the conversation means it
            # left them — back to the queue from park, or a transfer (to this agent
            # when direct, else to the queue whose agent is offered it at once).
            if self._park_return:
                self._leave(e.at)
            else:
                self._transfer(e.at, queue, agent if direct else None)
        if not direct:
            self._ensure_wait(e.at, queue)
        self.queue = queue
        self._alert = Segment("alert", e.at, queue=queue, agent=agent)
        self.detail.segments.append(self._alert)
        self.state = "alerting"
        if data.get("auto_answered"):
            self._connected(e.at, agent)

    def _timed_out(self, e: EventRecord, data: Mapping[str, Any]) -> None:
        if self._alert is not None and self._alert.agent == _text(data.get("agent")):
            self._end_alert(e.at, "timed_out")

    def _withdrawn(self, e: EventRecord, data: Mapping[str, Any]) -> None:
        if self._alert is not None and self._alert.agent == _text(data.get("agent")):
            self._end_alert(e.at, "withdrawn")

    def _fell_back(self, e: EventRecord, data: Mapping[str, Any]) -> None:
        self._end_alert(e.at, "declined")
        queue = _text(data.get("queue")) or self.queue
        self._ensure_wait(e.at, queue)
        self.queue = queue
        self.state = "queued"

    def _state_changed(self, e: EventRecord, data: Mapping[str, Any]) -> None:
        to = str(data.get("to") or "")
        agent = _text(data.get("agent"))
        queue = _text(data.get("queue")) or self.queue
        if to in WAITING:
            if to == "queued":
                self._end_alert(e.at, "declined")
            if self._work is not None:
                if self._park_return:
                    self._leave(e.at)  # back to the queue because its agent was away
                else:
                    self._transfer(e.at, queue, None)
            self._ensure_wait(e.at, queue)
        elif to == "connected":
            if self._work is not None and self._work.kind == "park" and self._work.agent == agent:
                self._end_work(e.at)
                self._work = Segment(
                    "interact", e.at, queue=queue, agent=agent, participation=self._participation
                )
                self.detail.segments.append(self._work)
            elif self._work is None or self._work.agent != agent:
                if self._work is not None:
                    self._leave(e.at)
                self._connected(e.at, agent)
        elif to == "parked":
            self._answer_if_waiting(e.at, agent)
            self._end_work(e.at)
            self._work = Segment(
                "park", e.at, queue=queue, agent=agent or self.agent,
                participation=self._participation,
            )  # fmt: skip
            self.detail.segments.append(self._work)
        elif to == "wrapup":
            self._answer_if_waiting(e.at, agent)
            self._end_work(e.at)
            self._work = Segment(
                "wrapup", e.at, queue=queue, agent=agent or self.agent,
                participation=self._participation,
            )  # fmt: skip
            self.detail.segments.append(self._work)
        self._park_return = False
        self.queue = queue
        self.agent = agent
        self.state = to

    def _park_returned(self, e: EventRecord, data: Mapping[str, Any]) -> None:
        self._park_return = bool(data.get("to_queue"))

    def _closed(self, e: EventRecord, data: Mapping[str, Any]) -> None:
        d = self.detail
        code = _text(data.get("code"))
        if code is not None:
            d.wrapup_code = code
        if self.state in WAITING or (self._wait is not None and self._work is None):
            # A supervisor's merge moved its messages elsewhere: not the customer leaving.
            # A supervisor's close (spam, duplicate) is a discard, not an abandon either.
            outcome: WaitOutcome = "abandoned"
            if self._merged_away:
                outcome = "flowed_out"
            elif self._discard is not None:
                outcome = "discarded"
            self._end_alert(e.at, "withdrawn")
            if self._wait is not None:
                self._wait.end, self._wait.outcome = e.at, outcome
                self._wait = None
            d.outcome = outcome
        else:
            self._end_alert(e.at, "withdrawn")
            self._end_work(e.at)
            d.outcome = "answered" if any(s.connect for s in d.segments) else "closed"
        d.ended_at = e.at
        self.state = "closed"

    def _merged(self, e: EventRecord, data: Mapping[str, Any]) -> None:
        # Written on both conversations of a merge; only the source's matters here.
        if data.get("source") == e.conversation_id and self.state in WAITING:
            self._merged_away = True

    def _supervisor_discarded(self, e: EventRecord, data: Mapping[str, Any]) -> None:
        self._discard = _text(data.get("reason")) or "other"

    def _wrapup_code(self, e: EventRecord, data: Mapping[str, Any]) -> None:
        code = _text(data.get("code"))
        if code is not None:
            self.detail.wrapup_code = code
        notes = data.get("notes")
        if isinstance(notes, str) and notes:
            self.detail.wrapup_notes = notes[:NOTES_MAX]

    def _message_in(self, e: EventRecord, data: Mapping[str, Any]) -> None:
        if data.get("auto_kind"):
            return  # an auto-reply or bounce from the other side is not a customer message
        self.detail.messages_in.append(e.at)
        if self._unanswered is None:
            self._unanswered = e.at

    def _message_out(self, e: EventRecord, data: Mapping[str, Any]) -> None:
        d = self.detail
        if data.get("source") != "agent":
            d.auto_replies += 1
            return
        d.messages_out.append(e.at)
        if self._unanswered is not None and d.direction == "inbound":
            first = not d.responses
            seconds = max(0.0, (e.at - self._unanswered).total_seconds())
            if first:
                seconds = max(0.0, (e.at - d.started_at).total_seconds())
            d.responses.append(Response(e.at, seconds, self.agent, self.queue, first))
        self._unanswered = None

    # -- segment bookkeeping ---------------------------------------------------------

    def _open_wait(self, at: datetime) -> None:
        self._wait = Segment("wait", at, queue=self.queue)
        self.detail.segments.append(self._wait)

    def _ensure_wait(self, at: datetime, queue: str | None) -> None:
        if self._wait is None:
            self.queue = queue
            self._open_wait(at)
        elif self._wait.queue != queue:
            # Moved to another queue while waiting: the old queue's wait flows out.
            self.detail.transfers.append(Transfer(at, self._wait.queue, None, queue, None))
            self._wait.end, self._wait.outcome = at, "flowed_out"
            self.queue = queue
            self._open_wait(at)

    def _end_alert(self, at: datetime, outcome: AlertOutcome) -> None:
        if self._alert is not None:
            self._alert.end, self._alert.outcome = at, outcome
            self._alert = None

    def _end_work(self, at: datetime) -> None:
        if self._work is not None:
            self._work.end = at
            self._work = None

    def _answer_if_waiting(self, at: datetime, agent: str | None) -> None:
        if self._wait is not None or self._alert is not None:
            self._connected(at, agent)

    def _connected(self, at: datetime, agent: str | None) -> None:
        if self._alert is not None and self._alert.agent == agent:
            self._end_alert(at, "accepted")
        else:
            self._end_alert(at, "withdrawn")
        self._connect(at, agent, from_alert=True)

    def _connect(self, at: datetime, agent: str | None, *, from_alert: bool) -> None:
        if self._wait is not None:
            self._wait.end, self._wait.outcome, self._wait.answered_by = at, "answered", agent
            self._wait = None
        self._participation += 1
        self._work = Segment(
            "interact", at, queue=self.queue, agent=agent,
            participation=self._participation, connect=True,
        )  # fmt: skip
        self.detail.segments.append(self._work)
        self.agent = agent

    def _leave(self, at: datetime) -> None:
        self._end_work(at)

    def _transfer(self, at: datetime, to_queue: str | None, to_agent: str | None) -> None:
        from_agent = self._work.agent if self._work is not None else None
        from_queue = self._work.queue if self._work is not None else self.queue
        if self._work is None and self._wait is not None:
            from_queue = self._wait.queue
        self.detail.transfers.append(Transfer(at, from_queue, from_agent, to_queue, to_agent))
        self._end_work(at)
        if to_agent is not None and self._wait is not None:
            self._wait.end, self._wait.outcome = at, "flowed_out"
            self._wait = None


_HANDLERS: dict[str, Any] = {
    "conversation_created": ConversationTracker._created,
    "message_discarded": ConversationTracker._discarded,
    "offer_created": ConversationTracker._offer,
    "offer_timed_out": ConversationTracker._timed_out,
    "offer_withdrawn": ConversationTracker._withdrawn,
    "fell_back_to_queue": ConversationTracker._fell_back,
    "conversation_state_changed": ConversationTracker._state_changed,
    "park_returned": ConversationTracker._park_returned,
    "conversation_discarded": ConversationTracker._supervisor_discarded,
    "conversation_closed": ConversationTracker._closed,
    "conversation_merged": ConversationTracker._merged,  # a waiting source flows out
    "wrapup_timed_out": ConversationTracker._wrapup_code,
    "wrapup_notes": ConversationTracker._wrapup_code,
    "wrapup_code_recorded": ConversationTracker._wrapup_code,  # given after it closed
    "message_received": ConversationTracker._message_in,
    "message_queued": ConversationTracker._message_out,
}


class Projection:
    """Trackers for many conversations; `apply` returns the key of the detail it changed."""

    def __init__(self) -> None:
        self.trackers: dict[str, ConversationTracker] = {}

    def apply(self, event: EventRecord) -> str | None:
        key = key_of(event)
        if key is None:
            return None
        tracker = self.trackers.get(key)
        if tracker is None:
            tracker = self.trackers[key] = ConversationTracker(key, event)
        tracker.apply(event)
        return key

    def details(self) -> list[ConversationDetail]:
        return [t.detail for t in self.trackers.values()]


def replay(events: Iterable[EventRecord]) -> list[ConversationDetail]:
    """The details of every conversation in `events` (in id order), from scratch."""
    p = Projection()
    for e in events:
        p.apply(e)
    return p.details()
