"""Indexes that keep routing decisions from scanning every agent or every conversation.

- `FreeAgents`: per queue, the routable agents with free capacity, sorted by
  (more free capacity, idle longest, agent id).
- `WaitingWork`: per queue and requirement profile, waiting conversations sorted
  by the queue's order key, plus per queue the first key of every profile
  ("heads", sorted too), so that a freed agent walks the heads from the front
  and stops at the first profile it covers instead of checking every profile;
  plus per-agent lists for conversations that are restricted to preferred
  agents or that name a last agent. Every key carries its conversation's
  profile as its last item, so that walk reads only the keys.
- `Timers`: one pending wake-up per conversation (a heap with lazy deletion).

Indexes only store and retrieve; they never decide. The engine keeps them in
step with its records (`FreeAgents` at the end of each event and whenever it
reads it, see `Engine._free_stale`).

Sorted sequences are plain lists kept in order with `bisect` while they are
small (almost all of them: a queue has few free agents, most profiles few
waiting conversations), which costs far less time and memory than a
`SortedList` per bucket; a list that grows past `_LARGE` entries becomes a
`SortedList`, so that taking the head of a very long bucket stays cheap.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, insort
from collections.abc import Iterable, MutableMapping
from typing import Any, Protocol, TypeVar

# sortedcontainers ships no type information; SortedList is used as a plain sorted sequence.
from sortedcontainers import SortedList  # type: ignore[import-untyped]

from postroom.routing.policy import ConversationKey, Profile

FreeKey = tuple[int, float, str]
# A sorted sequence of keys: a list (small) or a SortedList (large). Both iterate in
# order, index [0] and test empty the same way.
Sorted = Any
_LARGE = 2048  # past this many entries, deleting the head of a list costs more than it saves
_NEAR_FRONT = 8  # queue heads looked at by identity before searching by key

K = TypeVar("K")


def _insert(table: MutableMapping[K, Sorted], name: K, key: Any) -> None:
    seq = table.get(name)
    if seq is None:
        table[name] = [key]
    elif type(seq) is list:
        insort(seq, key)
        if len(seq) > _LARGE:
            table[name] = SortedList(seq)
    else:
        seq.add(key)


def _delete(table: MutableMapping[K, Sorted], name: K, key: Any) -> None:
    """Remove `key` (which must be there); drop the sequence when it empties."""
    seq = table[name]
    if type(seq) is list:
        del seq[bisect_left(seq, key)]
    else:
        seq.remove(key)
    if not seq:
        del table[name]


class FreeAgents:
    def __init__(self) -> None:
        self._by_queue: dict[str, list[FreeKey]] = {}
        self._placed: dict[str, tuple[FreeKey, frozenset[str]]] = {}

    def update(self, agent_id: str, free: int, idle_since: float, queues: set[str]) -> None:
        old = self._placed.get(agent_id)
        if free <= 0 or not queues:
            if old is not None:
                self.remove(agent_id)
            return
        key: FreeKey = (-free, idle_since, agent_id)
        placed_in: frozenset[str] | None = None
        if old is not None:
            if old[1] == queues:
                if old[0] == key:
                    return  # nothing moved
                placed_in = old[1]  # same memberships: keep the snapshot
            self.remove(agent_id)
        by_queue = self._by_queue
        for queue_id in queues:
            listed = by_queue.get(queue_id)
            if listed is None:
                by_queue[queue_id] = [key]
            else:
                insort(listed, key)
        self._placed[agent_id] = (key, placed_in or frozenset(queues))

    def remove(self, agent_id: str) -> None:
        old = self._placed.pop(agent_id, None)
        if old is None:
            return
        key, queues = old
        by_queue = self._by_queue
        for queue_id in queues:
            listed = by_queue[queue_id]
            del listed[bisect_left(listed, key)]

    def in_queue(self, queue_id: str) -> list[FreeKey]:
        """Free agents of the queue, best first by (free capacity, idle time, id).

        The index's own list: read it, do not keep it across changes.
        """
        return self._by_queue.get(queue_id, _EMPTY)


_EMPTY: list[Any] = []


class Placed(Protocol):
    """What `WaitingWork` reads and writes on a conversation record."""

    conversation_id: str
    queue_id: str
    key: ConversationKey | None  # None: not in the index; its last item is the profile
    listed_preferred: tuple[str, ...]  # non-empty: stored per preferred agent, not in a bucket
    listed_last: str | None  # listed under this last agent too


class QueueWork:
    """The waiting conversations of one queue."""

    __slots__ = ("buckets", "heads", "preferred", "queue_id")

    def __init__(self, queue_id: str) -> None:
        self.queue_id = queue_id
        self.buckets: dict[Profile, Sorted] = {}
        self.heads: list[ConversationKey] = []  # the first key of every bucket, in order
        self.preferred: dict[str, Sorted] = {}  # agent id -> keys of those preferring them

    def add(self, key: ConversationKey) -> None:
        profile = key[3]
        buckets = self.buckets
        bucket = buckets.get(profile)
        if bucket is None:
            buckets[profile] = [key]
            insort(self.heads, key)
            return
        head = bucket[0]
        if key < head:
            heads = self.heads
            at = bisect_left(heads, head)
            del heads[at]
            insort(heads, key, 0, at)  # the new head can only sit at or before the old one
        if type(bucket) is list:
            insort(bucket, key)
            if len(bucket) > _LARGE:
                buckets[profile] = SortedList(bucket)
        else:
            bucket.add(key)

    def remove(self, key: ConversationKey) -> None:
        profile = key[3]
        buckets = self.buckets
        bucket = buckets[profile]
        if bucket[0] is not key:  # (the index stores the record's own key object)
            if type(bucket) is list:
                del bucket[bisect_left(bucket, key)]
            else:
                bucket.remove(key)
            return
        # The bucket's head: usually the conversation just offered, found by a freed
        # agent walking the heads from the front, so it is almost always among the
        # first few. Looking for the object itself there reads only the list, where
        # a binary search would compare (and read from memory) several keys.
        del bucket[0]
        heads = self.heads
        for at in range(min(len(heads), _NEAR_FRONT)):
            if heads[at] is key:
                break
        else:
            at = bisect_left(heads, key)
        if bucket:
            # The bucket's next key is later than the one leaving: it goes at or after `at`.
            nxt = bucket[0]
            if at + 1 == len(heads) or nxt < heads[at + 1]:
                heads[at] = nxt
            else:
                del heads[at]
                insort(heads, nxt, at)
        else:
            del heads[at]
            del buckets[profile]

    def conversation_ids(self) -> set[str]:
        found = {key[2] for bucket in self.buckets.values() for key in bucket}
        found.update(key[2] for keys in self.preferred.values() for key in keys)
        return found


class WaitingWork:
    def __init__(self) -> None:
        # Read by the engine's hottest loop directly; only this class writes it.
        self.by_queue: dict[str, QueueWork] = {}
        # last agent -> queue -> keys; read by the engine (is an agent named at all?)
        self.by_last_agent: dict[str, dict[str, Sorted]] = {}

    def add(
        self,
        c: Placed,
        key: ConversationKey,
        preferred: tuple[str, ...],
        last_agent: str | None,
    ) -> None:
        """Index `c` (removing it first if it was indexed) and note where on the record."""
        if c.key is not None:
            self.remove(c)
        c.key = key
        c.listed_preferred = preferred
        c.listed_last = last_agent
        work = self.work(c.queue_id)
        if preferred:
            for agent_id in preferred:
                _insert(work.preferred, agent_id, key)
        else:
            work.add(key)
        if last_agent is not None:
            per_queue = self.by_last_agent.get(last_agent)
            if per_queue is None:
                per_queue = self.by_last_agent[last_agent] = {}
            _insert(per_queue, c.queue_id, key)

    def remove(self, c: Placed) -> None:
        key = c.key
        if key is None:
            return
        work = self.by_queue[c.queue_id]
        if c.listed_preferred:
            for agent_id in c.listed_preferred:
                _delete(work.preferred, agent_id, key)
        else:
            work.remove(key)
        if c.listed_last is not None:
            self.forget_last_agent(c)
        c.key = None

    def forget_last_agent(self, c: Placed) -> None:
        """Stop listing the conversation under its last agent (e.g. the window closed)."""
        if c.listed_last is None:
            return
        per_queue = self.by_last_agent[c.listed_last]
        _delete(per_queue, c.queue_id, c.key)
        if not per_queue:
            del self.by_last_agent[c.listed_last]
        c.listed_last = None

    def queue(self, queue_id: str) -> QueueWork | None:
        return self.by_queue.get(queue_id)

    def work(self, queue_id: str) -> QueueWork:
        """The queue's waiting work, created empty if nothing waited there yet.

        Never dropped, so a reader may keep it (the engine keeps each agent's).
        """
        work = self.by_queue.get(queue_id)
        if work is None:
            work = self.by_queue[queue_id] = QueueWork(queue_id)
        return work

    def conversation_ids(self, queue_id: str) -> set[str]:
        """Every conversation waiting in the queue (in no particular order)."""
        work = self.by_queue.get(queue_id)
        return set() if work is None else work.conversation_ids()

    def last_agent_queues(self, agent_id: str) -> Iterable[str]:
        return tuple(self.by_last_agent.get(agent_id, ()))

    def naming_last_agent(self, agent_id: str, queue_id: str) -> list[ConversationKey]:
        return list(self.by_last_agent.get(agent_id, {}).get(queue_id, ()))


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
        heap = self._heap
        version = self._version
        while heap:
            _, conversation_id, stamp = heap[0]
            if version.get(conversation_id) == stamp:
                return
            heapq.heappop(heap)

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
