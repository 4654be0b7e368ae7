"""The events of a supervisor's split and merge in the details: a waiting conversation
merged into another flows out of its queue (it is not abandoned), the target and a
split's new conversation are counted as usual, and projecting at any cut equals a
rebuild."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from postroom.analytics.details import ConversationTracker, EventRecord, Projection, key_of, replay
from postroom.analytics.metrics import observations

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def _history() -> list[EventRecord]:
    rows: list[tuple[int, str, int, dict[str, Any]]] = [
        (0, "conversation_created", 1, {"state": "queued", "queue": "support"}),
        (1, "conversation_created", 2, {"state": "queued", "queue": "support"}),
        (2, "offer_created", 2, {"agent": "ann", "queue": "support"}),
        (5, "conversation_split", 1, {"message": 7, "new_conversation": 3}),
        (5, "conversation_created", 3, {"state": "queued", "queue": "support", "split_from": 1}),
        (9, "conversation_merged", 2, {"source": 2, "target": 1}),
        (9, "conversation_merged", 1, {"source": 2, "target": 1}),
        (9, "offer_withdrawn", 2, {"agent": "ann"}),
        (9, "conversation_closed", 2, {"agent": None, "code": None, "from": "alerting"}),
        (12, "conversation_state_changed", 1, {"from": "queued", "to": "connected", "agent": "bob"}),
    ]
    return [
        EventRecord(i + 1, T0 + timedelta(minutes=m), kind, cid, data)
        for i, (m, kind, cid, data) in enumerate(rows)
    ]


def test_a_waiting_source_merged_away_flows_out_and_is_not_abandoned() -> None:
    details = {d.key: d for d in replay(_history())}
    merged = details["c2"]
    assert merged.outcome == "flowed_out"
    assert [s.outcome for s in merged.segments if s.kind == "wait"] == ["flowed_out"]
    assert not [o for o in observations(merged) if o.metric == "tAbandon"]
    assert details["c1"].outcome == "open"
    assert [s.outcome for s in details["c1"].segments if s.kind == "wait"] == ["answered"]
    assert details["c3"].outcome == "open" and details["c3"].segments[0].kind == "wait"


def test_the_target_of_a_merge_closing_while_waiting_is_still_abandoned() -> None:
    events = [*_history()[:9], EventRecord(20, T0 + timedelta(minutes=30), "conversation_closed", 1, {"from": "queued"})]
    assert {d.key: d for d in replay(events)}["c1"].outcome == "abandoned"


@pytest.mark.parametrize("cut", range(11))
def test_projecting_across_a_cut_equals_the_rebuild(cut: int) -> None:
    events = _history()
    rebuilt = {d.key: d.as_dict() for d in replay(events)}
    before = Projection()
    for e in events[:cut]:
        before.apply(e)
    after: dict[str, ConversationTracker] = {}
    for e in events[cut:]:
        key = key_of(e)
        assert key is not None
        if key not in after:
            earlier = [x for x in events[:cut] if key_of(x) == key]
            after[key] = ConversationTracker(key, (earlier or [e])[0])
            for x in earlier:
                after[key].apply(x)
        after[key].apply(e)
    incremental = {k: t.detail.as_dict() for k, t in before.trackers.items()}
    incremental.update({k: t.detail.as_dict() for k, t in after.items()})
    assert incremental == rebuilt
