"""Routing vocabulary: settings, events in, decisions out.

Frozen dataclasses and literal types only. Validation of settings lives here
(bad settings fail at construction with a message that says what to fix);
no routing logic, no clock, no I/O.

Time is a float of seconds on any monotonic-enough scale the caller chooses
(the service uses Unix time); every event carries it as `now`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from postroom.domain.calendars import BusinessCalendar

Presence = Literal[
    "available", "away", "break", "meal", "meeting", "training", "busy", "offline", "on_queue"
]
PRESENCES: tuple[Presence, ...] = (
    "available",
    "away",
    "break",
    "meal",
    "meeting",
    "training",
    "busy",
    "offline",
    "on_queue",
)
RoutingStatus = Literal["off_queue", "idle", "interacting", "not_responding"]
Evaluation = Literal["all_skills", "best_skills", "any_agent"]
ScoringMethod = Literal["timestamp_and_priority", "priority_only", "deadline"]
WrapupPrompt = Literal["mandatory", "mandatory_timeout", "optional"]
LastAgentRoutingMode = Literal["disabled", "queue_members_only", "any_agent"]
ConversationState = Literal["queued", "alerting", "connected", "wrapup", "parked", "closed"]

MAX_RINGS = 5
MAX_CAPACITY = 25  # email conversations one agent may be offered at once
PRIORITY_SECONDS = 60.0  # one priority point is worth this much waiting time
WRAPUP_TIMEOUT_CODE = "wrapup-timeout"
REQUEUED_WRAPUP_CODE = "requeued-by-supervisor"  # wrap-up ended by `AgentWorkRequeued`


class RoutingConfigError(ValueError):
    """A queue or agent setting is out of range; the message names the setting."""


@dataclass(frozen=True, slots=True)
class SkillRequirement:
    name: str
    min_proficiency: float = 0.0  # 0.0–5.0; the agent must have the skill at or above this

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_proficiency <= 5.0:
            raise RoutingConfigError(
                f"skill {self.name!r}: min_proficiency must be 0.0–5.0, got {self.min_proficiency}"
            )


@dataclass(frozen=True, slots=True)
class Ring:
    """One bullseye ring: how long a conversation stays in it, what it drops on leaving."""

    expansion_timeout_s: float
    skills_to_remove: frozenset[str] = frozenset()
    remove_language: bool = False

    def __post_init__(self) -> None:
        if self.expansion_timeout_s <= 0:
            raise RoutingConfigError("ring expansion_timeout_s must be greater than 0")


@dataclass(frozen=True, slots=True)
class ServiceLevel:
    """Target: `percent` % of conversations accepted within `seconds` of entering the queue,
    counted in calendar time or, with a `calendar`, in its business hours."""

    percent: float = 80.0
    seconds: float = 86_400.0
    calendar: BusinessCalendar | None = None

    def __post_init__(self) -> None:
        if not 0.0 < self.percent <= 100.0:
            raise RoutingConfigError("service_level.percent must be in (0, 100]")
        if self.seconds <= 0:
            raise RoutingConfigError("service_level.seconds must be greater than 0")

    def due(self, entered: float) -> float:
        """When a conversation that entered at `entered` breaches the target."""
        if self.calendar is None:
            return entered + self.seconds
        start = datetime.fromtimestamp(entered, UTC)
        return self.calendar.add_business(start, self.seconds).timestamp()

    def waited(self, entered: float, until: float) -> float:
        """The wait from `entered` to `until` as the target counts it."""
        if self.calendar is None or until <= entered:
            return until - entered
        start = datetime.fromtimestamp(entered, UTC)
        end = start + timedelta(seconds=until - entered)
        return self.calendar.business_seconds(start, end)


@dataclass(frozen=True, slots=True)
class QueueConfig:
    queue_id: str
    alert_timeout_s: float = 60.0
    evaluation: Evaluation = "all_skills"
    scoring_method: ScoringMethod = "timestamp_and_priority"
    service_level: ServiceLevel = field(default_factory=ServiceLevel)
    rings: tuple[Ring, ...] = ()  # empty: no bullseye, requirements never widen
    wrapup_prompt: WrapupPrompt = "optional"
    wrapup_timeout_s: float = 60.0  # used by mandatory_timeout
    auto_answer: bool = False
    last_agent_routing_mode: LastAgentRoutingMode = "disabled"
    last_agent_window_s: float = 72 * 3600.0
    park_timeout_s: float = 24 * 3600.0  # used when a park request names no time

    def __post_init__(self) -> None:
        if not 7.0 <= self.alert_timeout_s <= 3600.0:
            raise RoutingConfigError(
                f"queue {self.queue_id!r}: alert_timeout_s must be 7–3600 s, "
                f"got {self.alert_timeout_s}"
            )
        if len(self.rings) > MAX_RINGS:
            raise RoutingConfigError(
                f"queue {self.queue_id!r}: at most {MAX_RINGS} bullseye rings (plus the final one)"
            )
        if self.wrapup_timeout_s <= 0 or self.park_timeout_s <= 0:
            raise RoutingConfigError(
                f"queue {self.queue_id!r}: wrapup_timeout_s and park_timeout_s must be > 0"
            )
        if self.last_agent_window_s < 0:
            raise RoutingConfigError(f"queue {self.queue_id!r}: last_agent_window_s must be >= 0")


@dataclass(frozen=True, slots=True)
class AgentConfig:
    agent_id: str
    queues: frozenset[str] = frozenset()
    skills: tuple[tuple[str, float], ...] = ()  # (name, proficiency 0.0–5.0)
    languages: frozenset[str] = frozenset()
    capacity: int = 1  # email conversations at once, 1–MAX_CAPACITY
    max_parked: int = 10

    def __post_init__(self) -> None:
        if not 1 <= self.capacity <= MAX_CAPACITY:
            raise RoutingConfigError(
                f"agent {self.agent_id!r}: email capacity must be 1–{MAX_CAPACITY}, "
                f"got {self.capacity}"
            )
        for name, level in self.skills:
            if not 0.0 <= level <= 5.0:
                raise RoutingConfigError(
                    f"agent {self.agent_id!r}: skill {name!r} proficiency must be 0.0–5.0"
                )
        if self.max_parked < 0:
            raise RoutingConfigError(f"agent {self.agent_id!r}: max_parked must be >= 0")


# ---------------------------------------------------------------- events in


@dataclass(frozen=True, slots=True)
class QueueConfigured:
    now: float
    queue: QueueConfig


@dataclass(frozen=True, slots=True)
class AgentConfigured:
    """Adds an agent or replaces its skills, languages, capacity and memberships."""

    now: float
    agent: AgentConfig


@dataclass(frozen=True, slots=True)
class AgentPresenceChanged:
    now: float
    agent_id: str
    presence: Presence  # on_queue also clears not_responding


@dataclass(frozen=True, slots=True)
class AgentCapacityChanged:
    now: float
    agent_id: str
    capacity: int

    def __post_init__(self) -> None:
        if not 1 <= self.capacity <= MAX_CAPACITY:
            raise RoutingConfigError(f"email capacity must be 1–{MAX_CAPACITY}")


@dataclass(frozen=True, slots=True)
class MembershipChanged:
    now: float
    agent_id: str
    queue_id: str
    member: bool


@dataclass(frozen=True, slots=True)
class Enqueued:
    now: float
    conversation_id: str
    queue_id: str
    priority: int = 0
    skills: tuple[SkillRequirement, ...] = ()
    language: str | None = None
    preferred_agents: tuple[str, ...] = ()
    preferred_window_s: float = 0.0  # only preferred agents are offered it during this window
    last_agent_id: str | None = None  # who last handled the thread
    last_agent_at: float | None = None  # when they last handled it
    deadline: float | None = None  # service-level deadline; default enqueue + queue threshold
    # When it really entered the queue, if before `now` (the service rebuilding after a
    # restart, or intake having taken a moment): ordering and service level count from it.
    enqueued_at: float | None = None


@dataclass(frozen=True, slots=True)
class ConversationAssigned:
    """The conversation enters already connected to `agent_id` (work the agent started,
    or work they held before a restart). Nobody is offered anything: it counts toward
    the agent's load at once, even beyond their capacity (free capacity is then 0),
    whatever their presence, status or queue memberships. It never waited, so it
    does not count in the queue's service level. Afterwards it is like an accepted
    conversation (end, wrap-up, park, transfers)."""

    now: float
    conversation_id: str
    queue_id: str
    agent_id: str
    priority: int = 0
    skills: tuple[SkillRequirement, ...] = ()
    language: str | None = None


@dataclass(frozen=True, slots=True)
class OfferRestored:
    """An offer that was alerting `agent_id` when the previous engine stopped (a
    rebuild after a restart or a takeover) alerts the same agent again until the
    same `deadline`. Nobody new is offered anything and no `Offer` decision is made:
    the agent's screen still shows that offer. It counts toward the agent's load at
    once, even beyond their capacity, whatever their presence or status (like a
    `ConversationAssigned`). A deadline already past times out on the next `Tick`.
    Afterwards it is an ordinary alerting offer (accept, decline, time-out)."""

    now: float
    conversation_id: str
    queue_id: str
    agent_id: str
    deadline: float
    priority: int = 0
    skills: tuple[SkillRequirement, ...] = ()
    language: str | None = None
    enqueued_at: float | None = None  # when it entered the queue; default `now`
    rule: OfferRule | None = None  # the rule of the original offer, when known
    direct: bool = False  # a transfer to the agent: falls back to the queue if missed
    last_agent_id: str | None = None
    last_agent_at: float | None = None


@dataclass(frozen=True, slots=True)
class AgentNotResponding:
    """The agent was `not_responding` when the previous engine stopped (a rebuild
    restores it): no routed work until they go on queue again."""

    now: float
    agent_id: str


@dataclass(frozen=True, slots=True)
class Requeued:
    """Transfer to a queue: the enqueue time restarts, earlier declines are forgotten."""

    now: float
    conversation_id: str
    queue_id: str
    priority: int | None = None  # None keeps the current value
    skills: tuple[SkillRequirement, ...] | None = None
    language: str | None = None
    keep_language: bool = True  # when language is None: keep (True) or clear (False)


@dataclass(frozen=True, slots=True)
class QueueReassigned:
    """Held work (connected, wrap-up, parked) gets another queue and keeps its agent
    and timers: its queue was deleted with this one as the target."""

    now: float
    conversation_id: str
    queue_id: str


@dataclass(frozen=True, slots=True)
class TransferredToAgent:
    """Direct offer to one agent; falls back to the queue if not accepted in time."""

    now: float
    conversation_id: str
    agent_id: str
    queue_id: str | None = None  # fallback queue; None keeps the conversation's queue


@dataclass(frozen=True, slots=True)
class OfferAccepted:
    now: float
    conversation_id: str
    agent_id: str


@dataclass(frozen=True, slots=True)
class OfferDeclined:
    now: float
    conversation_id: str
    agent_id: str


@dataclass(frozen=True, slots=True)
class OfferTimedOut:
    """Sent by the caller when it noticed a missed offer; `Tick` finds them too."""

    now: float
    conversation_id: str
    agent_id: str


@dataclass(frozen=True, slots=True)
class ConversationEnded:
    """The agent finished (or a rule/supervisor discarded a waiting conversation)."""

    now: float
    conversation_id: str


@dataclass(frozen=True, slots=True)
class WrapupCompleted:
    now: float
    conversation_id: str
    code: str


@dataclass(frozen=True, slots=True)
class Parked:
    now: float
    conversation_id: str
    until: float | None = None  # None: now + the queue's park_timeout_s


@dataclass(frozen=True, slots=True)
class Unparked:
    """The customer replied to a parked conversation: connected to its agent again
    when they are on queue and responding (even beyond their capacity: it is their
    work), otherwise it goes to its queue."""

    now: float
    conversation_id: str


@dataclass(frozen=True, slots=True)
class TakenBack:
    """The agent resumes a conversation they parked: connected to them again at
    once, whatever their presence or status, even beyond their capacity (free
    capacity is then 0 until they are below it again)."""

    now: float
    conversation_id: str
    agent_id: str


@dataclass(frozen=True, slots=True)
class SupervisorAssigned:
    """A supervisor gives a waiting (queued or alerting) conversation to `agent_id`.
    An offer to someone else is withdrawn first. `mode` "offer" alerts the agent
    with the queue's alert timeout and falls back to the queue if they miss it (the
    agent must be on queue and responding); "connect" connects it to them at once,
    whatever their presence. Either way the agent's capacity is respected unless
    `override_capacity` (then they may hold more than it, as after an assignment)."""

    now: float
    conversation_id: str
    agent_id: str
    mode: Literal["offer", "connect"] = "offer"
    override_capacity: bool = False


@dataclass(frozen=True, slots=True)
class Reprioritized:
    """A supervisor changes a waiting conversation's priority and/or required skills
    (None keeps each). It keeps its place in time: the wait does not restart."""

    now: float
    conversation_id: str
    priority: int | None = None
    skills: tuple[SkillRequirement, ...] | None = None


@dataclass(frozen=True, slots=True)
class SupervisorDiscarded:
    """A supervisor closes a waiting conversation with a reason (spam, duplicate,
    other): its offer, if any, is withdrawn; it does not count as abandoned."""

    now: float
    conversation_id: str
    reason: str
    note: str = ""


@dataclass(frozen=True, slots=True)
class AgentWorkRequeued:
    """A supervisor takes all of an agent's work back: alerting offers are withdrawn
    and wait again in their queue (keeping their wait); connected and parked work is
    queued again as after a transfer to its queue; wrap-up ends with the code
    `REQUEUED_WRAPUP_CODE`. Presence is left as it is."""

    now: float
    agent_id: str


@dataclass(frozen=True, slots=True)
class Tick:
    now: float


Event = (
    QueueConfigured
    | AgentConfigured
    | AgentPresenceChanged
    | AgentCapacityChanged
    | MembershipChanged
    | Enqueued
    | ConversationAssigned
    | OfferRestored
    | AgentNotResponding
    | Requeued
    | QueueReassigned
    | TransferredToAgent
    | OfferAccepted
    | OfferDeclined
    | OfferTimedOut
    | ConversationEnded
    | WrapupCompleted
    | Parked
    | Unparked
    | TakenBack
    | SupervisorAssigned
    | Reprioritized
    | SupervisorDiscarded
    | AgentWorkRequeued
    | Tick
)

# ------------------------------------------------------------- decisions out

OfferRule = Literal[
    "last_agent",
    "only_eligible_agent",
    "more_free_capacity",
    "best_skills",
    "longest_idle",
    "agent_id_tiebreak",
    "direct_transfer",
    "park_return",  # no longer made: a park return connects (kept for stored offers)
    "assigned",  # never on an `Offer`: how a `ConversationAssigned` one came to its agent
    "supervisor",  # a supervisor assigned it to the agent (`SupervisorAssigned`)
]


@dataclass(frozen=True, slots=True)
class Offer:
    """Alert `agent_id` with the conversation until `deadline` (connected at once if auto)."""

    at: float
    conversation_id: str
    agent_id: str
    queue_id: str
    deadline: float
    rule: OfferRule
    preferred: bool = False  # chosen among the preferred agents during their window
    declined_before: bool = False  # only agents who had declined or missed it were left
    auto_answered: bool = False


@dataclass(frozen=True, slots=True)
class OfferExpired:
    """A `Tick` found the offer past its deadline: treated as a time-out."""

    at: float
    conversation_id: str
    agent_id: str


@dataclass(frozen=True, slots=True)
class OfferWithdrawn:
    at: float
    conversation_id: str
    agent_id: str
    # left_queue: the agent was removed from the offer's queue while it alerted;
    # reassigned: a supervisor gave it to someone else, moved or changed it;
    # requeued: a supervisor took all of the agent's work back.
    reason: Literal[
        "conversation_ended",
        "transferred",
        "agent_unknown",
        "left_queue",
        "reassigned",
        "requeued",
        "discarded",
    ]


@dataclass(frozen=True, slots=True)
class Discarded:
    """A supervisor closed the waiting conversation (`SupervisorDiscarded`)."""

    at: float
    conversation_id: str
    reason: str
    note: str = ""


@dataclass(frozen=True, slots=True)
class SupervisorConnected:
    """A supervisor connected the conversation to the agent directly."""

    at: float
    conversation_id: str
    agent_id: str
    over_capacity: bool  # the agent now holds more than their capacity


@dataclass(frozen=True, slots=True)
class FellBackToQueue:
    """A direct offer (a transfer to an agent) was not accepted; the conversation is queued."""

    at: float
    conversation_id: str
    queue_id: str
    agent_id: str | None


@dataclass(frozen=True, slots=True)
class RingExpanded:
    at: float
    conversation_id: str
    queue_id: str
    ring: int  # 0-based; == len(rings) is the final ring (any queue member)


@dataclass(frozen=True, slots=True)
class RoutingStatusChanged:
    at: float
    agent_id: str
    old: RoutingStatus
    new: RoutingStatus


@dataclass(frozen=True, slots=True)
class WrapupRequired:
    at: float
    conversation_id: str
    agent_id: str
    prompt: WrapupPrompt
    deadline: float | None  # set for mandatory_timeout


@dataclass(frozen=True, slots=True)
class WrapupTimedOut:
    at: float
    conversation_id: str
    agent_id: str
    code: str = WRAPUP_TIMEOUT_CODE


@dataclass(frozen=True, slots=True)
class ParkReturned:
    at: float
    conversation_id: str
    agent_id: str
    cause: Literal["reply", "timeout", "taken_back"]
    to_queue: bool  # True when the agent was not there (off queue or not responding)


@dataclass(frozen=True, slots=True)
class Rejected:
    """The event did not fit the current state; nothing changed."""

    at: float
    event: str
    reason: str
    conversation_id: str | None = None
    agent_id: str | None = None


@dataclass(frozen=True, slots=True)
class NextWakeup:
    """Call `Tick` at `at` (None: no timer pending). Emitted whenever it changes."""

    at: float | None


Decision = (
    Offer
    | OfferExpired
    | OfferWithdrawn
    | Discarded
    | SupervisorConnected
    | FellBackToQueue
    | RingExpanded
    | RoutingStatusChanged
    | WrapupRequired
    | WrapupTimedOut
    | ParkReturned
    | Rejected
    | NextWakeup
)
