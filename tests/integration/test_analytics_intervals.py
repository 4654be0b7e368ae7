"""The interval rows on SQLite and PostgreSQL: projected batch by batch (with restarts
and a late commit) they equal the rollup of the stored facts and a rebuild's, and the
aggregates query answers from them as it does from the facts. And the details query's
count stops at its cap and says so."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from postroom.analytics import metrics as am
from postroom.analytics import rollup
from postroom.analytics.details import EventRecord
from postroom.runtime.settings import Settings
from postroom.runtime.wiring import open_store
from postroom.services.analytics import (
    AnalyticsProjector,
    Filter,
    Predicate,
    ProjectorConfig,
    intervals,
)
from postroom.services.analytics import queries as q
from postroom.store.db import as_utc
from postroom.store.schema import analytics_intervals, analytics_observations, events
from tests.unit.analytics.generator import history

START = datetime(2026, 3, 28, tzinfo=UTC)
END = datetime(2026, 3, 31, tzinfo=UTC)
TARGETS = {
    "support": am.ServiceTarget("default", 80.0, 600.0),
    "billing": am.ServiceTarget("default", 90.0, 900.0),
}
# not whole seconds: service level is counted from the facts by the database
ODD = {
    "support": am.ServiceTarget("default", 80.0, 600.5),
    "billing": am.ServiceTarget("default", 80.0, 299.9),
}
# several targets per queue (names shared and not), each queue its own short abandons
SEVERAL = {
    "support": (
        am.ServiceTarget("fast", 80.0, 300.0, short_abandon_s=20.0),
        am.ServiceTarget("day", 95.0, 86400.0, short_abandon_s=20.0),
    ),
    "billing": (
        am.ServiceTarget("day", 90.0, 7200.0, short_abandon_s=5.0),
        am.ServiceTarget("slow", 99.0, 172800.0, short_abandon_s=5.0),
        am.ServiceTarget("fast", 70.0, 600.0, short_abandon_s=5.0),
    ),
}
SEVERAL_ODD = {
    q: tuple(am.ServiceTarget(t.name, t.percent, t.seconds + 0.5, None, 7.5) for t in ts)
    for q, ts in SEVERAL.items()
}


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def db(any_settings: Settings) -> Iterator[sa.Engine]:
    engine = open_store(any_settings, seed=False)
    yield engine
    engine.dispose()


def _insert(db: sa.Engine, evs: Sequence[EventRecord]) -> None:
    if evs:
        with db.begin() as conn:
            conn.execute(events.insert(), [
                {"id": e.id, "at": e.at, "kind": e.kind, "conversation_id": e.conversation_id,
                 "message_id": e.message_id, "data": dict(e.data)} for e in evs
            ])  # fmt: skip


def _stored(db: sa.Engine) -> list[tuple[Any, ...]]:
    t = analytics_intervals.c
    with db.connect() as conn:
        rows = conn.execute(sa.select(
            t.level, t.start, t.metric, t.queue, t.agent, t.route, t.wrapup_code, t.direction,
            t.count, t.sum_us, t.min, t.max, t.sketch,
        )).all()  # fmt: skip
    return sorted(((r[0], as_utc(r[1]), *r[2:12], json.loads(r[12])) for r in rows), key=repr)


def _of_facts(db: sa.Engine) -> list[tuple[Any, ...]]:
    o = analytics_observations.c
    with db.connect() as conn:
        rows = conn.execute(sa.select(
            o.metric, o.at, o.value, o.queue, o.agent, o.route, o.wrapup_code, o.direction
        )).all()  # fmt: skip
    obs = [am.Observation(r[0], as_utc(r[1]), *r[2:]) for r in rows]  # type: ignore[arg-type]
    return sorted(
        (
            (name, *k, c.count, c.sum_us, c.min, c.max, json.loads(c.encoded_sketch()))
            for name, cells in rollup.roll(obs).items()
            for k, c in cells.items()
        ),
        key=repr,
    )


def test_intervals_equal_the_facts_batch_by_batch_and_after_a_rebuild(db: sa.Engine) -> None:
    evs = history(seed=21, conversations=50, span_h=50.0)
    late = evs[len(evs) // 2]
    rnd = random.Random(5)
    clock = FakeClock()
    projector = AnalyticsProjector(db, clock, ProjectorConfig(batch=17, settle_s=0.0))
    i = 0
    rest = [e for e in evs if e.id != late.id]
    while i < len(rest):
        n = rnd.randint(1, 30)
        _insert(db, rest[i : i + n])
        i += n
        projector.step(settle_s=0.0)
        if rnd.random() < 0.2:
            projector = AnalyticsProjector(db, clock, ProjectorConfig(batch=17))
    projector.run_until_caught_up(settle_s=0.0)
    _insert(db, [late])  # commits after higher ids: its conversation is replayed
    projector.run_until_caught_up(settle_s=0.0)
    incremental = _stored(db)
    assert incremental and incremental == _of_facts(db)
    AnalyticsProjector(db, clock).rebuild()
    assert _stored(db) == incremental


def test_a_rebuild_in_small_batches_with_codes_given_after_the_close_equals_the_facts(
    db: sa.Engine,
) -> None:
    # A rebuild rolls a conversation's facts into the interval cells once it has closed;
    # a wrap-up code given later (a later batch) replaces those facts: their hours are
    # built from the stored facts instead.
    evs = list(history(seed=31, conversations=40, span_h=40.0))
    closed = [e for e in evs if e.kind == "conversation_closed"]
    next_id = max(e.id for e in evs) + 1
    for i, e in enumerate(closed[::3]):
        evs.append(EventRecord(next_id + i, e.at, "wrapup_code_recorded", e.conversation_id,
                               {"code": "late-code", "agent": "ann"}))  # fmt: skip
    _insert(db, evs)
    clock = FakeClock()
    AnalyticsProjector(db, clock, ProjectorConfig(rebuild_batch=13)).rebuild()
    rebuilt = _stored(db)
    assert any(r[6] == "late-code" for r in rebuilt)
    assert rebuilt == _of_facts(db)


def test_a_rebuild_that_stops_early_is_finished_by_the_projector(
    db: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    evs = history(seed=12, conversations=40, span_h=40.0)
    _insert(db, evs)
    clock = FakeClock()
    AnalyticsProjector(db, clock).rebuild()
    done = _stored(db)

    def stop(*_: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(intervals, "build", stop)
    monkeypatch.setattr(intervals, "build_from", stop)
    with pytest.raises(KeyboardInterrupt):
        AnalyticsProjector(db, clock).rebuild()
    monkeypatch.undo()
    assert _stored(db) != done
    AnalyticsProjector(db, clock).run_until_caught_up(settle_s=0.0)
    assert _stored(db) == done


@pytest.mark.parametrize(
    ("gran", "tz", "group", "flt", "targets"),
    [
        ("PT1H", "UTC", ["queueId"], None, TARGETS),
        ("PT1H", "UTC", ["queueId"], None, ODD),
        ("PT1H", "UTC", ["queueId"], None, SEVERAL),
        ("P1D", "Europe/Paris", [], None, SEVERAL),
        ("PT1H", "UTC", ["queueId"], None, SEVERAL_ODD),
        ("P1D", "Europe/Paris", [], None, TARGETS),
        ("P1D", "Asia/Kolkata", ["userId"], None, TARGETS),
        ("PT30M", "Europe/Paris", [], Filter("or", (Predicate("queueId", "billing"),
                                                    Predicate("userId", "ann"))), TARGETS),
        ("PT1H", "UTC", [], Filter("and", (Predicate("queueId", "support"),)), TARGETS),
    ],
)
def test_aggregates_from_intervals_equal_those_from_the_facts(
    db: sa.Engine,
    gran: str,
    tz: str,
    group: list[str],
    flt: Filter | None,
    targets: am.Targets,
) -> None:
    _insert(db, history(seed=4, conversations=80, span_h=60.0))
    AnalyticsProjector(db, FakeClock()).rebuild()
    zone = ZoneInfo(tz)
    metrics = ["oServiceLevel", *rollup.rolled_metrics(am.METRICS), "nOverSla", "oServiceTarget"]
    kw: dict[str, Any] = dict(metrics=metrics, granularity=gran, tz=zone, group_by=group,
                              filter=flt, targets=targets)  # fmt: skip
    fast = q.aggregates(db, START, END, **kw)
    slow = q._from_facts(db, START, END, short_abandon_s=am.SHORT_ABANDON_S, **kw)
    assert fast and len(fast) == len(slow)
    for a, b in zip(fast, slow, strict=True):
        assert a["group"] == b["group"]
        assert [d["interval"] for d in a["data"]] == [d["interval"] for d in b["data"]]
        for da, db_ in zip(a["data"], b["data"], strict=True):
            assert [m["metric"] for m in da["metrics"]] == [m["metric"] for m in db_["metrics"]]
            for ma, mb in zip(da["metrics"], db_["metrics"], strict=True):
                assert ma.get("qualifier") == mb.get("qualifier")
                sa_, sb = ma["stats"], mb["stats"]
                assert sa_.keys() == sb.keys()
                for k in sa_:
                    if k in ("p50", "p90"):
                        assert abs(sa_[k] - sb[k]) <= rollup.ALPHA * sb[k] + 1e-3
                    else:
                        assert sa_[k] == pytest.approx(sb[k], rel=1e-9, abs=1e-3)


def test_the_details_count_stops_at_the_cap_and_says_so(db: sa.Engine) -> None:
    evs = history(seed=8, conversations=40, span_h=40.0)
    _insert(db, evs)
    AnalyticsProjector(db, FakeClock()).rebuild()
    flt = Filter("and", (Predicate("queueId", "support"),))
    full, capped, page = q.details(db, START, END, filter=flt, page_size=5, page_number=1)
    assert not capped and full > 6 and len(page) == 5
    total, capped, again = q.details(
        db, START, END, filter=flt, page_size=5, page_number=1, max_hits=6
    )
    assert (total, capped, again) == (6, True, page)
    assert q.details(db, START, END, filter=flt, page_size=5, page_number=1,
                     max_hits=full) == (full, False, page)  # fmt: skip
