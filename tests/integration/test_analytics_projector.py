"""The analytics projector on SQLite and PostgreSQL: projecting the log batch by batch
gives what a rebuild gives, events that commit after higher ids are not skipped, and
`postroom analytics rebuild` rebuilds from `events`."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from postroom.analytics.details import EventRecord, replay
from postroom.analytics.users import segments as user_segments
from postroom.runtime import cli
from postroom.runtime.analytics_worker import AnalyticsWorker
from postroom.runtime.settings import Settings
from postroom.runtime.wiring import open_store
from postroom.services.analytics import AnalyticsProjector, ProjectorConfig, standard_sinks
from postroom.services.analytics.tags import tags_of
from postroom.store.schema import (
    analytics_conversation_tags,
    analytics_conversations,
    analytics_observations,
    analytics_segments,
    analytics_user_segments,
    events,
)
from tests.unit.analytics.generator import history
from tests.waiting import eventually


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def db(any_settings: Settings) -> Iterator[sa.Engine]:
    engine = open_store(any_settings, seed=False)
    yield engine
    engine.dispose()


def _insert(db: sa.Engine, evs: Sequence[EventRecord]) -> None:
    if not evs:
        return
    with db.begin() as conn:
        conn.execute(
            events.insert(),
            [
                {
                    "id": e.id,
                    "at": e.at,
                    "kind": e.kind,
                    "conversation_id": e.conversation_id,
                    "message_id": e.message_id,
                    "data": dict(e.data),
                }
                for e in evs
            ],
        )


def _snapshot(db: sa.Engine) -> dict[str, Any]:
    with db.connect() as conn:
        convs = {
            r.key: r.detail
            for r in conn.execute(
                sa.select(analytics_conversations.c.key, analytics_conversations.c.detail)
            )
        }
        segs = sorted(
            (r.conversation_key, r.seq, r.kind, r.queue, r.agent, r.outcome)
            for r in conn.execute(sa.select(analytics_segments))
        )
        o = analytics_observations.c
        obs = sorted(
            (r.conversation_key, r.metric, r.at.isoformat(), r.value, r.queue, r.agent)
            for r in conn.execute(
                sa.select(o.conversation_key, o.metric, o.at, o.value, o.queue, o.agent)
            )
        )
        u = analytics_user_segments.c
        users = sorted(
            (r.agent, r.presence, r.routing_status, _iso(r.started_at), _iso(r.ended_at), r.event_id)
            for r in conn.execute(sa.select(u.agent, u.presence, u.routing_status, u.started_at,
                                            u.ended_at, u.event_id))
        )  # fmt: skip
        tags = sorted(
            (r.conversation_key, r.tag) for r in conn.execute(sa.select(analytics_conversation_tags))
        )
    return {"conversations": convs, "segments": segs, "observations": obs, "users": users,
            "tags": tags}  # fmt: skip


def _iso(t: datetime | None) -> str | None:
    return None if t is None else (t if t.tzinfo else t.replace(tzinfo=UTC)).isoformat()


def _expected_users(evs: Sequence[EventRecord]) -> list[tuple[Any, ...]]:
    return sorted(
        (s.agent, s.presence, s.routing_status, s.start.isoformat(),
         s.end.isoformat() if s.end else None, s.event_id)
        for s in user_segments(evs)
    )  # fmt: skip


def _expected_tags(evs: Sequence[EventRecord]) -> list[tuple[str, str]]:
    return sorted((k, t) for e in evs if (got := tags_of(e)) for k, t in [(got[0], t) for t in got[1]])


def _projector(db: sa.Engine, clock: Any, config: ProjectorConfig | None = None) -> AnalyticsProjector:
    return AnalyticsProjector(db, clock, config, sinks=standard_sinks())


def test_batch_by_batch_equals_rebuild_and_the_pure_replay(db: sa.Engine) -> None:
    evs = history(seed=7, conversations=60)
    rnd = random.Random(3)
    clock = FakeClock()
    projector = _projector(db, clock, ProjectorConfig(batch=rnd.randint(3, 40)))
    i = 0
    while i < len(evs):
        n = rnd.randint(1, 25)
        _insert(db, evs[i : i + n])
        i += n
        projector.step()
        if rnd.random() < 0.2:  # a restart: the new projector holds nothing in memory
            projector = _projector(db, clock, ProjectorConfig(batch=rnd.randint(3, 40)))
    projector.run_until_caught_up()
    assert projector.checkpoint() == (len(evs), [])
    incremental = _snapshot(db)
    assert {k: d for k, d in incremental["conversations"].items()} == {
        d.key: json.loads(json.dumps(d.as_dict())) for d in replay(evs)
    }
    assert incremental["users"] == _expected_users(evs) and incremental["users"]
    assert incremental["tags"] == _expected_tags(evs) and incremental["tags"]
    assert _projector(db, clock).rebuild() == len(evs)
    assert _snapshot(db) == incremental


def test_an_event_committed_after_a_higher_id_is_not_skipped(db: sa.Engine) -> None:
    evs = history(seed=11, conversations=8)
    clock = FakeClock()
    projector = _projector(db, clock, ProjectorConfig(settle_s=2.0, gap_wait_s=600.0))
    late = next(e for e in evs[5:] if e.conversation_id is not None)
    _insert(db, [e for e in evs if e.id != late.id])  # `late` is still being written
    projector.step()
    assert projector.checkpoint() == (late.id, [late.id])  # waits for the young hole
    clock.advance(2.5)
    projector.run_until_caught_up()  # the hole is old enough: go on without it
    assert projector.checkpoint() == (len(evs), [late.id])
    _insert(db, [late])  # the late commit: its conversation is replayed with it
    clock.advance(10)
    projector.run_until_caught_up()
    assert projector.checkpoint() == (len(evs), [])
    incremental = _snapshot(db)
    _projector(db, clock).rebuild()
    assert _snapshot(db) == incremental


def test_a_presence_change_committed_late_replays_that_agent(db: sa.Engine) -> None:
    evs = history(seed=13, conversations=12)
    clock = FakeClock()
    projector = _projector(db, clock, ProjectorConfig(settle_s=0.0, gap_wait_s=600.0))
    changes = [e for e in evs if e.kind == "presence_changed"]
    late = changes[len(changes) // 2]
    _insert(db, [e for e in evs if e.id != late.id])
    projector.run_until_caught_up()
    _insert(db, [late])
    projector.run_until_caught_up()
    assert _snapshot(db)["users"] == _expected_users(evs)


def test_the_rebuild_command(
    db: sa.Engine, any_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    evs = history(seed=5, conversations=10)
    _insert(db, evs)
    args = ["--data-dir", str(any_settings.data_dir)]
    args += ["--database-url", any_settings.effective_database_url, "--json"]
    assert cli.main(["analytics", "rebuild", *args]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out == {"events": len(evs), "last_event_id": len(evs), "gaps": 0}
    with db.connect() as conn:
        n = conn.execute(sa.select(sa.func.count()).select_from(analytics_conversations)).scalar()
    assert n == len(replay(evs))


def test_the_worker_keeps_the_tables_up_to_date(db: sa.Engine) -> None:
    evs = history(seed=9, conversations=5)
    worker = AnalyticsWorker(AnalyticsProjector(db, FakeClock()), poll_s=0.05)
    worker.start()
    try:
        _insert(db, evs[:10])
        worker.wake()
        eventually(lambda: worker.projector.checkpoint()[0] == 10)
        _insert(db, evs[10:])
        eventually(lambda: worker.projector.checkpoint()[0] == len(evs))  # by polling
    finally:
        worker.stop()
    with db.connect() as conn:
        n = conn.execute(sa.select(sa.func.count()).select_from(analytics_conversations)).scalar()
    assert n == len(replay(evs))
