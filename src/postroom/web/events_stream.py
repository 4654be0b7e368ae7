"""Server-Sent Events per user, fed from the append-only `events` table.

One poller per process reads new rows (one indexed query every `poll_s`,
only while someone listens) and fans them out in memory to every open
stream; each stream keeps the events its user may see
(services/conversations.py decides). Events come from the table, so they are
only ever sent after their transaction committed. A client reconnecting with
`Last-Event-ID` first gets the rows after that id that it may see, then the
live ones; when those are more than BACKLOG_LIMIT it gets `resync` instead.
Open streams also count as the agent's presence heartbeat. It changes no
conversation or agent state; the presence time-out lives in web/presence.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated, Any

import anyio.to_thread
import sqlalchemy as sa
from fastapi import APIRouter, Header, Query, Request
from sse_starlette import EventSourceResponse, ServerSentEvent

from postroom.services import conversations as conv_svc
from postroom.services.users import User
from postroom.store.schema import ID_MAX
from postroom.web.deps import AppContext, Ctx, SignedIn

log = logging.getLogger("postroom.web.events")

router = APIRouter(prefix="/api/v1/events", tags=["events"])

GAP_WAIT_S = 10.0  # how long a missing id may still commit (PostgreSQL) before we give up on it
# A reconnecting client is replayed up to this many of *its own* (visible) events;
# beyond that it gets `resync` and reloads its lists instead.
BACKLOG_LIMIT = 1000
BACKLOG_PAGE = 1000  # events read per query while counting a client's backlog
# Events looked at, system-wide, before giving up on replaying (`resync` then): the
# work one reconnect can cause stays bounded however long the client was away.
BACKLOG_SCAN_LIMIT = 100_000


def visible_backlog(
    db: sa.Engine, user: User, after: int, *, limit: int = BACKLOG_LIMIT
) -> list[dict[str, Any]] | None:
    """The events after `after` that `user` may see, oldest first; None when they
    are more than `limit` (or more than BACKLOG_SCAN_LIMIT events would have to be
    read to know): the client must resync.

    Counted after filtering, as the live stream filters: another agent's offers on
    a busy system do not push this user's own events out of the replay."""
    out: list[dict[str, Any]] = []
    cursor, scanned = after, 0
    while True:
        page = conv_svc.events_after(db, cursor, limit=BACKLOG_PAGE)
        if not page:
            return out
        scanned += len(page)
        cursor = int(page[-1]["id"])
        out.extend(conv_svc.visible_events(db, user, page))
        if len(out) > limit:
            return None
        if len(page) < BACKLOG_PAGE:
            return out
        if scanned >= BACKLOG_SCAN_LIMIT:
            return None


@dataclass(eq=False)
class Subscriber:
    queue: asyncio.Queue[list[dict[str, Any]] | None] = field(
        default_factory=lambda: asyncio.Queue(maxsize=1000)
    )
    overflowed: bool = False


class EventHub:
    """Polls the events table for all streams of this process and fans out."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.subscribers: set[Subscriber] = set()
        self.high = 0  # highest id seen
        self.gaps: dict[int, float] = {}  # ids below `high` not seen yet -> first noticed
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._nudge: asyncio.Event | None = None

    def wake(self, *_: object) -> None:
        """Read the table now rather than at the next poll (thread-safe).

        The router in this process calls it right after committing, which takes
        the poll interval out of the offer-to-browser latency."""
        loop, nudge = self._loop, self._nudge
        if loop is not None and nudge is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(nudge.set)

    async def subscribe(self) -> tuple[Subscriber, int]:
        """A new subscriber and the id from which live events start (exclusive)."""
        sub = Subscriber()
        self.subscribers.add(sub)
        now_high = await anyio.to_thread.run_sync(conv_svc.last_event_id, self.ctx.db)
        if self._task is None or self._task.done():
            self.high = now_high
            self.gaps.clear()
            self._task = asyncio.create_task(self._run(), name="event-hub")
        return sub, now_high

    def unsubscribe(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)

    def close(self) -> None:
        """End every stream (server shutdown)."""
        self._closed = True
        for sub in list(self.subscribers):
            with contextlib.suppress(asyncio.QueueFull):
                sub.queue.put_nowait(None)
        if self._task is not None:
            self._task.cancel()

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._nudge = asyncio.Event()
        while self.subscribers and not self._closed:
            self._nudge.clear()
            try:
                batch = await anyio.to_thread.run_sync(self._poll_once)
            except Exception:
                log.exception("reading events failed; retrying")
                batch = []
            if batch:
                for sub in list(self.subscribers):
                    try:
                        sub.queue.put_nowait(batch)
                    except asyncio.QueueFull:
                        sub.overflowed = True
                        with contextlib.suppress(asyncio.QueueFull):
                            sub.queue.put_nowait(None)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._nudge.wait(), self.ctx.config.poll_s)
        self._task = None

    def _poll_once(self) -> list[dict[str, Any]]:
        now = time.monotonic()
        for gid, since in list(self.gaps.items()):
            if now - since > GAP_WAIT_S:
                del self.gaps[gid]  # a rolled-back insert: that id will never exist
        rows = conv_svc.events_after(self.ctx.db, self.high, extra_ids=sorted(self.gaps))
        for r in rows:
            eid = int(r["id"])
            self.gaps.pop(eid, None)
            if eid > self.high:
                # On PostgreSQL a lower id can commit after a higher one: remember holes.
                for missing in range(self.high + 1, eid):
                    self.gaps.setdefault(missing, now)
                self.high = eid
        batch = [r for r in rows if r["kind"] in conv_svc.STREAM_KINDS]
        # Who may see what is worked out once per batch here, not once per stream.
        who = conv_svc.audiences(
            self.ctx.db, (int(r["conversation_id"]) for r in batch if r.get("conversation_id"))
        )
        for r in batch:
            cid = r.get("conversation_id")
            r[AUDIENCE] = who.get(int(cid), frozenset()) if cid else frozenset()
        return batch


AUDIENCE = "_audience"  # added by the hub; never sent
SHUTDOWN_GRACE_S = 1.0  # under the server's 5 s graceful-shutdown limit


def _sse(event: dict[str, Any]) -> ServerSentEvent:
    public = {k: v for k, v in event.items() if k != AUDIENCE}
    return ServerSentEvent(data=json.dumps(public), event=event["kind"], id=str(event["id"]))


@router.get("/stream")
async def stream(
    request: Request,
    ctx: Ctx,
    principal: SignedIn,
    last_event_id: str | None = Header(default=None, alias="Last-Event-ID"),
    after: Annotated[int | None, Query(ge=0, le=ID_MAX)] = None,
) -> EventSourceResponse:
    """Your events as Server-Sent Events (offers, messages, status and state changes).

    Reconnect with the Last-Event-ID header (or ?after=ID) to resume without loss.
    """
    hub: EventHub = request.app.state.hub
    resume: int | None = after
    if last_event_id and last_event_id.strip().isdigit():
        digits = last_event_id.strip().lstrip("0") or "0"
        resume = min(int(digits), ID_MAX) if len(digits) <= 10 else ID_MAX  # no id is larger
    user = principal.user

    # Set by sse-starlette when the server shuts down: the stream then ends the way
    # it ends on hub.close(), so the response completes instead of being cut off.
    shutdown = anyio.Event()

    async def events() -> AsyncIterator[ServerSentEvent]:
        sub, live_from = await hub.subscribe()
        sent: set[int] = set()
        last_touch = time.monotonic()

        async def end_on_shutdown() -> None:
            await shutdown.wait()
            with contextlib.suppress(asyncio.QueueFull):
                sub.queue.put_nowait(None)

        watcher = asyncio.create_task(end_on_shutdown())
        try:
            await anyio.to_thread.run_sync(principal.touch, ctx)
            yield ServerSentEvent(comment="connected", retry=2000)
            if resume is not None and resume < live_from:
                backlog = await anyio.to_thread.run_sync(
                    lambda: visible_backlog(ctx.db, user, resume)
                )
                if backlog is None:
                    # Too much to replay: the client reloads its lists; the id moves it
                    # past the backlog, so a later reconnect does not ask for it again.
                    yield ServerSentEvent(data="{}", event="resync", id=str(live_from))
                else:
                    for e in backlog:
                        sent.add(int(e["id"]))
                        yield _sse(e)
            while True:
                try:
                    batch = await asyncio.wait_for(sub.queue.get(), ctx.config.heartbeat_s)
                except TimeoutError:
                    batch = []
                if batch is None:
                    if sub.overflowed:
                        yield ServerSentEvent(data="{}", event="resync")
                    return
                # Rows up to `live_from` were committed before this stream began:
                # they are history (sent from the backlog when resuming), not news.
                fresh = [e for e in batch if int(e["id"]) > live_from and int(e["id"]) not in sent]
                for e in fresh:
                    if conv_svc.event_visible_to(user, e, e.get(AUDIENCE, frozenset())):
                        yield _sse(e)
                if time.monotonic() - last_touch >= ctx.config.heartbeat_s:
                    last_touch = time.monotonic()
                    if not await anyio.to_thread.run_sync(principal.touch, ctx):
                        return  # signed out, revoked or disabled: the stream ends too
                    yield ServerSentEvent(comment="heartbeat")
        finally:
            watcher.cancel()
            hub.unsubscribe(sub)

    return EventSourceResponse(
        events(),
        headers={"Cache-Control": "no-store"},
        shutdown_event=shutdown,
        shutdown_grace_period=SHUTDOWN_GRACE_S,
    )
