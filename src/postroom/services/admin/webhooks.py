"""Webhooks: subscriptions of outside systems to events, and their deliveries.

The job: keep the `webhooks` table (create, change, delete — each with its
audit entry in the same transaction; the secret is shown once, at creation or
rotation, never in reads); turn the append-only `events` table into delivery
rows (`WebhookService.dispatch`: every event past the dispatcher's cursor, for
every enabled webhook whose event types match); hand due deliveries to a
deliverer (`claim_due`: at most one in flight per webhook and conversation, the
earliest first, so a conversation's events arrive in order) and record what
the receiver answered (delivered, retry with doubling backoff, or failed after
`MAX_ATTEMPTS`); redeliver and ping on an admin's request.

What it must not do: open sockets, speak HTTP or sign bodies (the deliverer in
``postroom.outbound.webhooks`` does), or write to `events` (a delivery is not a
state change of the contact center, and an event about a delivery would be
dispatched again). All state is in the database: any process with the
``webhooks`` role can dispatch and deliver, across restarts.

On PostgreSQL an event with a lower id can commit after one with a higher id
was read. The cursor remembers such holes (`gaps`): an event after a hole
younger than `SETTLE_S` waits (so order is kept in the usual case of two
transactions committing a moment apart), and a hole is looked for again on
every pass until `GAP_WAIT_S` has passed (then it was a rolled-back insert).
"""

from __future__ import annotations

import json
import random
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa

from postroom.domain.errors import InvalidWebhookError, NotFoundError
from postroom.services.admin.audit import Actor, record
from postroom.services.outbound import retry_delay
from postroom.store.db import as_utc
from postroom.store.schema import events, webhook_cursor, webhook_deliveries, webhooks

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
STATUSES = (PENDING, DELIVERED, FAILED)
PING = "ping"  # the kind of a test delivery (no event behind it)
ALL = "*"

# Delivery schedule: 10 s after the first failure, doubling to one hour, about a
# day in all (9 doublings, then hourly) before a delivery is marked failed.
RETRY_INITIAL_S = 10.0
RETRY_MAX_S = 3600.0
MAX_ATTEMPTS = 32
LEASE_S = 120.0  # a claimed delivery is due again after this (its deliverer died)
SETTLE_S = 2.0  # an event after a hole this young waits for the hole to fill
GAP_WAIT_S = 3600.0  # a hole older than this was a rolled-back insert: forget it
MAX_GAPS = 10_000
DISPATCH_BATCH = 500
ERROR_MAX = 500  # characters of an error or response kept per attempt
KEEP_DAYS = 30  # delivered and failed deliveries are deleted this long after their last attempt

# The event kinds a webhook may subscribe to (docs/intake.md and docs/routing.md
# describe their data). "*" is every kind, including ones added later.
EVENT_KINDS: tuple[str, ...] = (
    "thread_created",
    "conversation_created",
    "conversation_state_changed",
    "conversation_closed",
    "message_received",
    "message_appended",
    "message_duplicate",
    "message_discarded",
    "message_quarantined",
    "message_released",
    "message_queued",
    "message_sent",
    "delivery_deferred",
    "delivery_failed",
    "bounce_received",
    "auto_ack_requested",
    "auto_ack_queued",
    "auto_ack_skipped",
    "offer_created",
    "offer_timed_out",
    "offer_withdrawn",
    "fell_back_to_queue",
    "ring_expanded",
    "routing_status_changed",
    "presence_changed",
    "agent_configured",
    "wrapup_required",
    "wrapup_timed_out",
    "wrapup_notes",
    "wrapup_code_recorded",
    "park_returned",
)

NAME_MAX, URL_MAX, SECRET_MIN, SECRET_MAX, TYPES_MAX = 200, 2000, 16, 200, 50
_SPACE = re.compile(r"\s")


# -- the shared rules (the API's and the admin page's schema call these) ----------


def check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > NAME_MAX:
        raise InvalidWebhookError(f"give the webhook a name of 1 to {NAME_MAX} characters")
    return name


def check_url(url: str) -> str:
    """An absolute http:// or https:// URL with a host; the URL as given (trimmed)."""
    url = url.strip()
    if not url:
        raise InvalidWebhookError(
            "give the URL the events are posted to, e.g. https://crm.example.com/hooks/postroom"
        )
    if len(url) > URL_MAX:
        raise InvalidWebhookError(f"the URL is longer than {URL_MAX} characters")
    if _SPACE.search(url) or any(ord(c) < 32 or ord(c) == 127 for c in url):
        raise InvalidWebhookError("the URL may not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidWebhookError(
            f"the URL cannot be read ({exc}); write it as https://host/path"
        ) from exc
    if parts.scheme.lower() not in ("http", "https"):
        raise InvalidWebhookError(
            f"the URL must start with https:// or http:// (not {parts.scheme or 'nothing'}:)"
        )
    if not parts.hostname:
        raise InvalidWebhookError("the URL names no host; write it as https://host/path")
    if port == 0:
        raise InvalidWebhookError("the URL's port must be 1 to 65535")
    if parts.fragment:
        raise InvalidWebhookError("the URL may not have a #fragment (it is never sent)")
    return url


def check_event_types(kinds: Sequence[str]) -> list[str]:
    """Known event kinds, or ["*"]; duplicates dropped, order kept."""
    found: list[str] = []
    for raw in kinds:
        kind = raw.strip()
        if not kind:
            continue
        if kind != ALL and kind not in EVENT_KINDS:
            shown = kind if len(kind) <= 60 else kind[:60] + "..."
            raise InvalidWebhookError(
                f"{shown!r} is not an event kind; use * for every event or some of: "
                + ", ".join(EVENT_KINDS)
            )
        if kind not in found:
            found.append(kind)
    if not found:
        raise InvalidWebhookError("choose at least one event type (or * for every event)")
    if len(found) > TYPES_MAX:
        raise InvalidWebhookError(f"at most {TYPES_MAX} event types; use * for every event")
    return [ALL] if ALL in found else found


def check_secret(secret: str) -> str:
    if not SECRET_MIN <= len(secret) <= SECRET_MAX or _SPACE.search(secret):
        raise InvalidWebhookError(
            f"a secret is {SECRET_MIN} to {SECRET_MAX} characters without spaces; "
            "leave it empty to have one generated"
        )
    return secret


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def matches(event_types: Sequence[str], kind: str) -> bool:
    return ALL in event_types or kind in event_types


# -- the admin's use cases ----------------------------------------------------------


def _public(row: sa.Row[Any]) -> dict[str, Any]:
    """A webhook as reads show it: never the secret."""
    return {
        "id": row.id,
        "name": row.name,
        "url": row.url,
        "event_types": list(row.event_types or []),
        "enabled": bool(row.enabled),
        "created_at": _iso(row.created_at),
        "updated_at": _iso(row.updated_at),
    }


def _audited(row: sa.Row[Any]) -> dict[str, Any]:
    return {k: v for k, v in _public(row).items() if k not in ("created_at", "updated_at")}


def _load(conn: sa.Connection, webhook_id: int, *, lock: bool = False) -> sa.Row[Any]:
    query = sa.select(webhooks).where(webhooks.c.id == webhook_id)
    if lock:
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None:
        raise NotFoundError(f"webhook {webhook_id} does not exist; GET /api/v1/webhooks lists them")
    return row


def list_webhooks(db: sa.Engine) -> list[dict[str, Any]]:
    """Every webhook with its delivery counts per status."""
    with db.connect() as conn:
        rows = conn.execute(sa.select(webhooks).order_by(webhooks.c.id)).all()
        counts: dict[int, dict[str, int]] = {}
        for wid, status, n in conn.execute(
            sa.select(
                webhook_deliveries.c.webhook_id, webhook_deliveries.c.status, sa.func.count()
            ).group_by(webhook_deliveries.c.webhook_id, webhook_deliveries.c.status)
        ):
            counts.setdefault(int(wid), {})[str(status)] = int(n)
    return [
        {**_public(r), "deliveries": {s: counts.get(r.id, {}).get(s, 0) for s in STATUSES}}
        for r in rows
    ]


def get_webhook(db: sa.Engine, webhook_id: int) -> dict[str, Any]:
    with db.connect() as conn:
        return _public(_load(conn, webhook_id))


def create_webhook(
    db: sa.Engine,
    clock: Callable[[], datetime],
    actor: Actor,
    *,
    name: str,
    url: str,
    event_types: Sequence[str],
    secret: str | None = None,
    enabled: bool = True,
) -> dict[str, Any]:
    """A new webhook; the answer carries its secret (the only time it is shown)."""
    values = {
        "name": check_name(name),
        "url": check_url(url),
        "event_types": check_event_types(event_types),
        "secret": check_secret(secret) if secret else new_secret(),
        "enabled": enabled,
    }
    now = clock()
    with db.begin() as conn:
        wid = conn.execute(
            webhooks.insert()
            .values(created_at=now, updated_at=now, **values)
            .returning(webhooks.c.id)
        ).scalar_one()
        row = _load(conn, wid)
        record(conn, now, actor, "webhook.create", "webhook", str(wid), None, _audited(row))
    return {**_public(row), "secret": values["secret"]}


def update_webhook(
    db: sa.Engine,
    clock: Callable[[], datetime],
    actor: Actor,
    webhook_id: int,
    *,
    name: str | None = None,
    url: str | None = None,
    event_types: Sequence[str] | None = None,
    enabled: bool | None = None,
    secret: str | None = None,
    rotate_secret: bool = False,
) -> dict[str, Any]:
    """Change the fields given. A new secret (given, or generated with
    `rotate_secret`) is in the answer as `secret`; otherwise there is none."""
    changes: dict[str, Any] = {}
    if name is not None:
        changes["name"] = check_name(name)
    if url is not None:
        changes["url"] = check_url(url)
    if event_types is not None:
        changes["event_types"] = check_event_types(event_types)
    if enabled is not None:
        changes["enabled"] = enabled
    if secret:
        changes["secret"] = check_secret(secret)
    elif rotate_secret:
        changes["secret"] = new_secret()
    now = clock()
    with db.begin() as conn:
        before = _load(conn, webhook_id, lock=True)
        if changes:
            conn.execute(
                webhooks.update()
                .where(webhooks.c.id == webhook_id)
                .values(updated_at=now, **changes)
            )
        after = _load(conn, webhook_id)
        if changes:
            audit_after = _audited(after) | ({"secret": "new"} if "secret" in changes else {})
            record(
                conn,
                now,
                actor,
                "webhook.update",
                "webhook",
                str(webhook_id),
                _audited(before),
                audit_after,
            )
    out = _public(after)
    if "secret" in changes:
        out["secret"] = changes["secret"]
    return out


def delete_webhook(
    db: sa.Engine, clock: Callable[[], datetime], actor: Actor, webhook_id: int
) -> None:
    """Remove a webhook and its delivery history; pending deliveries are dropped."""
    now = clock()
    with db.begin() as conn:
        before = _load(conn, webhook_id, lock=True)
        conn.execute(
            webhook_deliveries.delete().where(webhook_deliveries.c.webhook_id == webhook_id)
        )
        conn.execute(webhooks.delete().where(webhooks.c.id == webhook_id))
        record(conn, now, actor, "webhook.delete", "webhook", str(webhook_id), _audited(before))


def _delivery_json(row: sa.Row[Any]) -> dict[str, Any]:
    return {
        "id": row.id,
        "webhook_id": row.webhook_id,
        "event_id": row.event_id,
        "conversation_id": row.conversation_id,
        "kind": row.kind,
        "status": row.status,
        "attempts": row.attempts,
        "next_attempt_at": _iso(row.next_attempt_at) if row.status == PENDING else None,
        "last_status_code": row.last_status_code,
        "last_error": row.last_error,
        "last_attempt_at": _iso(row.last_attempt_at),
        "delivered_at": _iso(row.delivered_at),
        "created_at": _iso(row.created_at),
    }


def list_deliveries(
    db: sa.Engine,
    webhook_id: int,
    *,
    status: str | None = None,
    before_id: int | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """A webhook's deliveries, newest first; page with `before_id` (the last id seen)."""
    query = (
        sa.select(webhook_deliveries)
        .where(webhook_deliveries.c.webhook_id == webhook_id)
        .order_by(webhook_deliveries.c.id.desc())
        .limit(limit)
    )
    if status is not None:
        query = query.where(webhook_deliveries.c.status == status)
    if before_id is not None:
        query = query.where(webhook_deliveries.c.id < before_id)
    with db.connect() as conn:
        _load(conn, webhook_id)
        return [_delivery_json(r) for r in conn.execute(query)]


def redeliver(
    db: sa.Engine, clock: Callable[[], datetime], webhook_id: int, delivery_id: int
) -> dict[str, Any]:
    """Send a delivery again: it is pending from now with a fresh set of attempts
    (a failed one, or a delivered one the receiver lost)."""
    now = clock()
    with db.begin() as conn:
        _load(conn, webhook_id)
        done = conn.execute(
            webhook_deliveries.update()
            .where(
                webhook_deliveries.c.id == delivery_id,
                webhook_deliveries.c.webhook_id == webhook_id,
            )
            .values(status=PENDING, attempts=0, next_attempt_at=now, delivered_at=None)
        ).rowcount
        if not done:
            raise NotFoundError(
                f"webhook {webhook_id} has no delivery {delivery_id}; "
                f"GET /api/v1/webhooks/{webhook_id}/deliveries lists them"
            )
        row = conn.execute(
            sa.select(webhook_deliveries).where(webhook_deliveries.c.id == delivery_id)
        ).one()
    return _delivery_json(row)


def ping(db: sa.Engine, clock: Callable[[], datetime], webhook_id: int) -> dict[str, Any]:
    """Queue a test delivery (kind "ping"); sent even while the webhook is disabled."""
    now = clock()
    with db.begin() as conn:
        _load(conn, webhook_id)
        did = conn.execute(
            webhook_deliveries.insert()
            .values(
                webhook_id=webhook_id,
                event_id=None,
                conversation_id=None,
                kind=PING,
                status=PENDING,
                attempts=0,
                next_attempt_at=now,
                created_at=now,
            )
            .returning(webhook_deliveries.c.id)
        ).scalar_one()
        row = conn.execute(
            sa.select(webhook_deliveries).where(webhook_deliveries.c.id == did)
        ).one()
    return _delivery_json(row)


# -- dispatch and delivery ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    retry_initial_s: float = RETRY_INITIAL_S
    retry_max_s: float = RETRY_MAX_S
    max_attempts: int = MAX_ATTEMPTS
    lease_s: float = LEASE_S
    settle_s: float = SETTLE_S
    gap_wait_s: float = GAP_WAIT_S
    max_gaps: int = MAX_GAPS
    dispatch_batch: int = DISPATCH_BATCH
    keep_days: float = KEEP_DAYS


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A claimed delivery: what the deliverer posts, and where."""

    delivery_id: int
    webhook_id: int
    url: str
    secret: str = ""
    kind: str = ""
    body: bytes = b""
    attempts: int = 0  # attempts made before this one

    def __repr__(self) -> str:  # never the secret in logs
        return (
            f"Outgoing(delivery_id={self.delivery_id}, webhook_id={self.webhook_id}, "
            f"kind={self.kind!r})"
        )


@dataclass(frozen=True, slots=True)
class Answer:
    """What the receiver said: `status_code` None when no answer came (refused,
    timed out); `ok` for a 2xx."""

    ok: bool
    status_code: int | None = None
    error: str = ""


def body_for(
    *,
    delivery_id: int,
    webhook_id: int,
    kind: str,
    event_id: int | None,
    at: datetime | None,
    conversation_id: int | None,
    data: Mapping[str, Any] | None,
) -> bytes:
    """The JSON body of one delivery (the same bytes on every attempt)."""
    doc = {
        "id": event_id,
        "type": kind,
        "at": _iso(at),
        "conversation_id": conversation_id,
        "data": dict(data or {}),
        "webhook_id": webhook_id,
        "delivery_id": delivery_id,
    }
    return json.dumps(doc, separators=(",", ":"), sort_keys=True, default=str).encode()


class WebhookService:
    """Dispatch events to deliveries, claim due deliveries, record answers."""

    def __init__(
        self,
        engine: sa.Engine,
        clock: Callable[[], datetime],
        config: WebhookConfig | None = None,
        *,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.config = config or WebhookConfig()
        self.rand = rand

    def dispatch(self) -> int:
        """One batch of new events into deliveries; returns how many events were looked at
        (0 when there was nothing new)."""
        try:
            return self._dispatch()
        except sa.exc.IntegrityError:
            # Another process dispatched the same events at the same time (SQLite, where
            # the cursor row cannot be locked): its rows stand, this pass is void.
            return 0

    def _dispatch(self) -> int:
        now = self.clock()
        cfg = self.config
        with self.engine.begin() as conn:
            cur = conn.execute(
                sa.select(webhook_cursor).where(webhook_cursor.c.id == 1).with_for_update()
            ).first()
            if cur is None:
                # The first start: webhooks hear of events from now on, not the history.
                top = conn.execute(sa.select(sa.func.max(events.c.id))).scalar()
                conn.execute(
                    webhook_cursor.insert().values(
                        id=1, last_event_id=int(top or 0), gaps={}, updated_at=now
                    )
                )
                return 0
            high = int(cur.last_event_id)
            gaps: dict[int, datetime] = {}
            for key, seen in dict(cur.gaps or {}).items():
                when = datetime.fromisoformat(str(seen))
                if (now - when).total_seconds() < cfg.gap_wait_s:
                    gaps[int(key)] = when
            cond = events.c.id > high
            if gaps:
                cond = sa.or_(cond, events.c.id.in_(sorted(gaps)))
            rows = conn.execute(
                sa.select(events).where(cond).order_by(events.c.id).limit(cfg.dispatch_batch)
            ).all()
            hooks = [
                (int(h.id), list(h.event_types or []), as_utc(h.created_at))
                for h in conn.execute(
                    sa.select(webhooks.c.id, webhooks.c.event_types, webhooks.c.created_at).where(
                        webhooks.c.enabled
                    )
                )
            ]
            # Holes young enough that the events after them wait for them.
            young = {g for g, seen in gaps.items() if (now - seen).total_seconds() < cfg.settle_s}
            taken: list[sa.Row[Any]] = []
            for r in rows:
                eid = int(r.id)
                if eid in gaps:  # a late commit: take it now
                    del gaps[eid]
                    young.discard(eid)
                    taken.append(r)
                    continue
                if eid <= high:
                    continue
                missing = range(max(high + 1, eid - cfg.max_gaps), eid)
                for gid in missing:
                    gaps.setdefault(gid, now)
                if cfg.settle_s > 0:
                    young.update(missing)
                if young and min(young) < eid:
                    high = eid - 1  # wait for the hole to fill (or to grow old)
                    break
                taken.append(r)
                high = eid
            if len(gaps) > cfg.max_gaps:
                gaps = dict(sorted(gaps.items())[-cfg.max_gaps :])
            for r in taken:
                at = as_utc(r.at)
                for hook_id, kinds, created in hooks:
                    # A webhook gets the events from its creation on, even when the
                    # dispatcher catches up on older ones after it was created.
                    if created is not None and at is not None and at < created:
                        continue
                    if matches(kinds, str(r.kind)):
                        conn.execute(
                            webhook_deliveries.insert().values(
                                webhook_id=hook_id,
                                event_id=r.id,
                                conversation_id=r.conversation_id,
                                kind=r.kind,
                                status=PENDING,
                                attempts=0,
                                next_attempt_at=now,
                                created_at=now,
                            )
                        )
            if high != cur.last_event_id or gaps.keys() != {int(k) for k in (cur.gaps or {})}:
                conn.execute(
                    webhook_cursor.update()
                    .where(webhook_cursor.c.id == 1)
                    .values(
                        last_event_id=high,
                        gaps={str(g): seen.isoformat() for g, seen in sorted(gaps.items())},
                        updated_at=now,
                    )
                )
        return len(taken)

    def cursor(self) -> tuple[int, list[int]]:
        """The dispatcher's place: the highest id looked at and the holes below it."""
        with self.engine.connect() as conn:
            cur = conn.execute(sa.select(webhook_cursor).where(webhook_cursor.c.id == 1)).first()
        if cur is None:
            return 0, []
        return int(cur.last_event_id), sorted(int(g) for g in (cur.gaps or {}))

    def claim_due(self, limit: int) -> list[Outgoing]:
        """Take up to `limit` due deliveries (leased for `lease_s`): for each webhook and
        conversation only the earliest pending one, so none overtakes another."""
        now = self.clock()
        d, e = webhook_deliveries, webhook_deliveries.alias("earlier")
        earlier_pending = (
            sa.select(e.c.id)
            .where(
                e.c.webhook_id == d.c.webhook_id,
                e.c.conversation_id == d.c.conversation_id,
                e.c.status == PENDING,
                e.c.event_id < d.c.event_id,
            )
            .exists()
        )
        with self.engine.begin() as conn:
            rows = conn.execute(
                sa.select(d.c.id)
                .where(
                    d.c.status == PENDING,
                    d.c.next_attempt_at <= now,
                    d.c.webhook_id.in_(
                        sa.select(webhooks.c.id).where(webhooks.c.enabled).scalar_subquery()
                    )
                    | (d.c.kind == PING),
                    ~earlier_pending,
                )
                .order_by(d.c.next_attempt_at, d.c.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            ).all()
            if not rows:
                return []
            ids = [r.id for r in rows]
            conn.execute(
                d.update()
                .where(d.c.id.in_(ids))
                .values(next_attempt_at=now + timedelta(seconds=self.config.lease_s))
            )
            found = conn.execute(
                sa.select(
                    d.c.id,
                    d.c.webhook_id,
                    d.c.event_id,
                    d.c.conversation_id,
                    d.c.kind,
                    d.c.attempts,
                    d.c.created_at,
                    webhooks.c.url,
                    webhooks.c.secret,
                    events.c.at,
                    events.c.data,
                )
                .join(webhooks, webhooks.c.id == d.c.webhook_id)
                .outerjoin(events, events.c.id == d.c.event_id)
                .where(d.c.id.in_(ids))
                .order_by(d.c.id)
            ).all()
        return [
            Outgoing(
                delivery_id=r.id,
                webhook_id=r.webhook_id,
                url=r.url,
                secret=r.secret,
                kind=r.kind,
                attempts=r.attempts,
                body=body_for(
                    delivery_id=r.id,
                    webhook_id=r.webhook_id,
                    kind=r.kind,
                    event_id=r.event_id,
                    at=r.at if r.event_id is not None else r.created_at,
                    conversation_id=r.conversation_id,
                    data=r.data if r.event_id is not None else {"message": "a test from Postroom"},
                ),
            )
            for r in found
        ]

    def record(self, results: Sequence[tuple[Outgoing, Answer]]) -> None:
        """Store what the receivers answered, in one transaction."""
        if not results:
            return
        now = self.clock()
        cfg = self.config
        with self.engine.begin() as conn:
            for o, a in results:
                attempts = o.attempts + 1
                values: dict[str, Any] = {
                    "attempts": attempts,
                    "last_status_code": a.status_code,
                    "last_error": (a.error or None) and a.error[:ERROR_MAX],
                    "last_attempt_at": now,
                }
                if a.ok:
                    values |= {"status": DELIVERED, "delivered_at": now, "next_attempt_at": None}
                elif attempts >= cfg.max_attempts:
                    values |= {"status": FAILED, "next_attempt_at": None}
                else:
                    delay = retry_delay(attempts, cfg.retry_initial_s, cfg.retry_max_s, self.rand)
                    values["next_attempt_at"] = now + timedelta(seconds=delay)
                conn.execute(
                    webhook_deliveries.update()
                    .where(
                        webhook_deliveries.c.id == o.delivery_id,
                        webhook_deliveries.c.status == PENDING,
                        webhook_deliveries.c.attempts == o.attempts,
                    )
                    .values(**values)
                )

    def release(self, claimed: Sequence[Outgoing]) -> None:
        """Give back claimed deliveries that were not tried (the deliverer is stopping)."""
        if not claimed:
            return
        with self.engine.begin() as conn:
            conn.execute(
                webhook_deliveries.update()
                .where(
                    webhook_deliveries.c.id.in_([o.delivery_id for o in claimed]),
                    webhook_deliveries.c.status == PENDING,
                )
                .values(next_attempt_at=self.clock())
            )

    def prune(self, limit: int = 1000) -> int:
        """Delete up to `limit` delivered or failed deliveries whose last attempt is older
        than `keep_days`; returns how many. Pending ones are never deleted."""
        before = self.clock() - timedelta(days=self.config.keep_days)
        d = webhook_deliveries
        with self.engine.begin() as conn:
            ids = (
                conn.execute(
                    sa.select(d.c.id)
                    .where(d.c.status.in_((DELIVERED, FAILED)), d.c.last_attempt_at < before)
                    .order_by(d.c.id)
                    .limit(limit)
                )
                .scalars()
                .all()
            )
            if ids:
                conn.execute(d.delete().where(d.c.id.in_(ids)))
        return len(ids)

    def next_due(self) -> datetime | None:
        with self.engine.connect() as conn:
            value = conn.execute(
                sa.select(sa.func.min(webhook_deliveries.c.next_attempt_at)).where(
                    webhook_deliveries.c.status == PENDING
                )
            ).scalar()
        return as_utc(value)


def _iso(value: datetime | None) -> str | None:
    at = as_utc(value)
    return at.isoformat() if at is not None else None
