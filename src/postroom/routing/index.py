"""Indexes that keep routing decisions from scanning every agent or every conversation.

- `FreeAgents`: per queue, the routable agents with free capacity, sorted by
  (more free capacity, idle longest, agent id).
- `WaitingWork`: per queue and requirement profile, waiting conversations sorted
  by the queue's order key; plus per-agent lists for conversations that are
  restricted to preferred agents or that name a last agent.
- `Timers`: one pending wake-up per conversation (a heap with lazy deletion).

Indexes only store and retrieve; they never decide. The engine keeps them in
step with its records.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from typing import NamedTuple

# sortedcontainers ships no type information; SortedList is used as a plain sorted sequence.
from sortedcontainers import SortedList  # type: ignore[import-untyped]

from postroom.routing.policy import ConversationKey, Profile

FreeKey = tuple[int, float, str]


class FreeAgents:
    def __init__(self) -> None:
        self._by_queue: dict[str, SortedList] = {}
        self._placed: dict[str, tuple[FreeKey, tuple[str, ...]]] = {}

    def update(self, agent_id: str, free: int, idle_since: float, queues: set[str]) -> None:
        key: FreeKey = (-free, idle_since, agent_id)
        old = self._placed.get(agent_id)
        if (
            old is not None
            and old[0] == key
            and len(old[1]) == len(queues)
            and all(q in queues for q in old[1])
        ):
            return  # nothing moved
        self.remove(agent_id)
        if free <= 0 or not queues:
            return
        placed = tuple(queues)
        for queue_id in placed:
            self._by_queue.setdefault(queue_id, SortedList()).add(key)
        self._placed[agent_id] = (key, placed)

    def remove(self, agent_id: str) -> None:
        old = self._placed.pop(agent_id, None)
        if old is None:
            return
        key, queues = old
        for queue_id in queues:
            self._by_queue[queue_id].remove(key)

    def in_queue(self, queue_id: str) -> Iterator[FreeKey]:
        """Free agents of the queue, best first by (free capacity, idle time, id)."""
        yield from self._by_queue.get(queue_id, ())


class Placement(NamedTuple):
    # A named tuple rather than a frozen dataclass: one is built per enqueue and
    # tuple construction is several times cheaper.
    queue_id: str
    key: ConversationKey
    profile: Profile
    preferred: tuple[str, ...]  # non-empty: stored per preferred agent, not in a bucket
    last_agent: str | None


class WaitingWork:
    def __init__(self) -> None:
        self._buckets: dict[str, dict[Profile, SortedList]] = {}
        self._preferred: dict[tuple[str, str], SortedList] = {}
        self._last: dict[str, dict[str, SortedList]] = {}
        self._placed: dict[str, Placement] = {}

    def __contains__(self, conversation_id: str) -> bool:
        return conversation_id in self._placed

    def placement(self, conversation_id: str) -> Placement:
        return self._placed[conversation_id]

    def add(self, conversation_id: str, placement: Placement) -> None:
        self.remove(conversation_id)
        self._placed[conversation_id] = placement
        if placement.preferred:
            for agent_id in placement.preferred:
                self._preferred.setdefault((agent_id, placement.queue_id), SortedList()).add(
                    placement.key
                )
        else:
            buckets = self._buckets.setdefault(placement.queue_id, {})
            buckets.setdefault(placement.profile, SortedList()).add(placement.key)
        if placement.last_agent is not None:
            per_queue = self._last.setdefault(placement.last_agent, {})
            per_queue.setdefault(placement.queue_id, SortedList()).add(placement.key)

    def remove(self, conversation_id: str) -> None:
        placement = self._placed.pop(conversation_id, None)
        if placement is None:
            return
        if placement.preferred:
            for agent_id in placement.preferred:
                pkey = (agent_id, placement.queue_id)
                self._preferred[pkey].remove(placement.key)
                if not self._preferred[pkey]:
                    del self._preferred[pkey]
        else:
            buckets = self._buckets[placement.queue_id]
            buckets[placement.profile].remove(placement.key)
            if not buckets[placement.profile]:
                del buckets[placement.profile]
        if placement.last_agent is not None:
            self.forget_last_agent(conversation_id, placement)

    def forget_last_agent(self, conversation_id: str, placement: Placement) -> None:
        """Stop listing the conversation under its last agent (e.g. the window closed)."""
        if placement.last_agent is None:
            return
        per_queue = self._last[placement.last_agent]
        per_queue[placement.queue_id].remove(placement.key)
        if not per_queue[placement.queue_id]:
            del per_queue[placement.queue_id]
        if not per_queue:
            del self._last[placement.last_agent]
        if conversation_id in self._placed:
            self._placed[conversation_id] = Placement(
                placement.queue_id, placement.key, placement.profile, placement.preferred, None
            )

    def bucket_heads(self, queue_id: str) -> Iterator[tuple[Profile, ConversationKey]]:
        """The first conversation of every requirement profile waiting in the queue."""
        for profile, keys in self._buckets.get(queue_id, {}).items():
            yield profile, keys[0]

    def preferring(self, agent_id: str, queue_id: str) -> Iterator[ConversationKey]:
        yield from self._preferred.get((agent_id, queue_id), ())

    def last_agent_queues(self, agent_id: str) -> list[str]:
        return sorted(self._last.get(agent_id, {}))

    def naming_last_agent(self, agent_id: str, queue_id: str) -> list[ConversationKey]:
        return list(self._last.get(agent_id, {}).get(queue_id, ()))


class Timers:
    """Earliest-first wake-ups; rescheduling a conversation supersedes its old entry."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, str, int]] = []
        self._version: dict[str, int] = {}
        self._counter = 0  # global, so a reused conversation id never revives an old entry

    def set(self, conversation_id: str, due: float | None) -> None:
        if due is None:
            self.clear(conversation_id)
            return
        self._counter += 1
        self._version[conversation_id] = self._counter
        heapq.heappush(self._heap, (due, conversation_id, self._counter))

    def clear(self, conversation_id: str) -> None:
        self._version.pop(conversation_id, None)

    def _drop_stale(self) -> None:
        while self._heap:
            _, conversation_id, version = self._heap[0]
            if self._version.get(conversation_id) == version:
                return
            heapq.heappop(self._heap)

    def peek(self) -> float | None:
        self._drop_stale()
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: float) -> list[str]:
        """Conversations whose wake-up is at or before `now`, earliest first."""
        due: list[str] = []
        while True:
            self._drop_stale()
            if not self._heap or self._heap[0][0] > now:
                return due
            _, conversation_id, _ = heapq.heappop(self._heap)
            del self._version[conversation_id]
            due.append(conversation_id)
