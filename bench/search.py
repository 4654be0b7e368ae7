"""Search benchmark: two-word full-text queries over N messages, beside the LIKE scan.

Writes N synthetic messages (three per conversation, one thread each) into a fresh
database: subjects of 3-8 words and texts of 20-120 words drawn from a Zipf
vocabulary (50,000 words, exponent 1.0, like word frequencies in mail). The index
is built in bulk with the same field layout as services/search/ (bulk SQL, not
intake). Then it measures, as a supervisor through services/conversations/browse.py
(the API's path: the search port, grouping by conversation, relevance order, a page
of 50 with snippets):

* `p50_ms`, `p95_ms`: two-word queries; each word drawn by frequency from the
  vocabulary without its 50 most frequent words (those are stop words nobody
  searches for), 200 queries after 10 warm-up ones;
* `like_p50_ms`, `like_p95_ms`: the scan the API used before the index
  (`lower(subject|sender|text) LIKE '%two words%'`), on 10 of the same queries;
* `hits_median`: conversations found per query (median).

    .venv/bin/python bench/search.py --messages 100000 [--postgres URL] [--no-sqlite]
        [--json]

The default is 1,000,000 messages. With --postgres, a throw-away database is created
on that server and dropped at the end. The last line with --json is
{"sqlite": {...}, "postgresql": {...}}.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

import sqlalchemy as sa  # noqa: E402

from postroom.services.conversations.browse import BrowseFilter, browse  # noqa: E402
from postroom.services.users import User  # noqa: E402
from postroom.store import db as store_db  # noqa: E402

VOCABULARY = 50_000
STOP = 50  # the most frequent words, never searched for
PER_CONVERSATION = 3
CHUNK = 20_000
QUERIES = 200
WARMUP = 10
LIKE_QUERIES = 10
T0 = datetime(2025, 1, 1, tzinfo=UTC)
SUPERVISOR = User(id="sue", name="Sue", email=None, role="supervisor")

_SYLLABLES = [a + b for a in "bcdfghklmnprstvz" for b in ("a", "e", "i", "o", "u", "ai", "ou")]


def vocabulary(rng: random.Random) -> list[str]:
    words: dict[str, None] = {}
    while len(words) < VOCABULARY:
        n = rng.choice((1, 2, 2, 3, 3, 4))
        words.setdefault("".join(rng.choice(_SYLLABLES) for _ in range(n)), None)
    return list(words)


class Zipf:
    def __init__(self, words: list[str], start: int = 0) -> None:
        self.words = words[start:]
        self.cum = list(accumulate(1.0 / (r + 1) for r in range(start, len(words))))

    def draw(self, rng: random.Random, k: int) -> list[str]:
        return rng.choices(self.words, cum_weights=self.cum, k=k)


def _rows(
    rng: random.Random, zipf: Zipf, first: int, count: int
) -> tuple[list[dict[str, Any]], ...]:
    thread_rows, conv_rows, msg_rows = [], [], []
    for mid in range(first, first + count):
        cid = (mid - 1) // PER_CONVERSATION + 1
        at = T0 + timedelta(seconds=mid * 30)
        subject = " ".join(zipf.draw(rng, rng.randint(3, 8)))
        if (mid - 1) % PER_CONVERSATION == 0:
            thread_rows.append(
                {"id": cid, "subject": subject, "created_at": at, "last_activity_at": at}
            )
            conv_rows.append(
                {
                    "id": cid, "thread_id": cid, "state": "closed", "queue": "support",
                    "priority": 0, "skills": "[]", "tags": "[]", "created_at": at,
                    "enqueued_at": at,
                }
            )  # fmt: skip
        sender = f"c{cid % 50_000}@{'firm' if cid % 3 else 'shop'}{cid % 997}.example"
        msg_rows.append(
            {
                "id": mid, "direction": "in", "source": "import", "raw_sha256": "0" * 64,
                "raw_size": 0, "envelope_to": "[]", "received_at": at, "status": "processed",
                "sender": sender, "subject": subject, "thread_id": cid, "conversation_id": cid,
                "text": " ".join(zipf.draw(rng, rng.randint(20, 120))),
            }
        )  # fmt: skip
    return thread_rows, conv_rows, msg_rows


def _copy(conn: sa.Connection, table: str, rows: list[dict[str, Any]]) -> None:
    cols = list(rows[0])
    raw = conn.connection.driver_connection
    with raw.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as copy:  # type: ignore[union-attr]
        for r in rows:
            copy.write_row([r[c] for c in cols])


def fill(engine: sa.Engine, n: int, rng: random.Random, zipf: Zipf) -> float:
    """Write n messages and index them; the seconds it took."""
    start = time.perf_counter()
    pg = engine.dialect.name == "postgresql"
    if pg:
        with engine.begin() as conn:
            conn.execute(sa.text("DROP INDEX IF EXISTS ix_messages_search_document"))
    for first in range(1, n + 1, CHUNK):
        threads, convs, msgs = _rows(rng, zipf, first, min(CHUNK, n - first + 1))
        with engine.begin() as conn:
            if pg:
                _copy(conn, "threads", threads)
                _copy(conn, "conversations", convs)
                _copy(conn, "messages", msgs)
            else:
                cols = {"threads": threads, "conversations": convs, "messages": msgs}
                for table, rows in cols.items():
                    names = list(rows[0])
                    conn.exec_driver_sql(
                        f"INSERT INTO {table} ({', '.join(names)}) VALUES "
                        f"({', '.join('?' for _ in names)})",
                        [tuple(r[c] for c in names) for r in rows],
                    )
        print(f"  {min(first + CHUNK - 1, n)} messages written", file=sys.stderr)
    # The index, in bulk, with the layout of services/search/ (texts are tokens already).
    with engine.begin() as conn:
        if pg:
            conn.execute(
                sa.text(
                    "UPDATE messages SET search_document = "
                    "setweight(to_tsvector('simple', subject), 'A') || "
                    "setweight(to_tsvector('simple', translate(sender, '@.', '  ')"
                    " || ' pr ' || thread_id), 'B') || "
                    "setweight(to_tsvector('simple', text), 'D')"
                )
            )
            conn.execute(
                sa.text(
                    "CREATE INDEX ix_messages_search_document ON messages "
                    "USING gin (search_document)"
                )
            )
        else:
            conn.exec_driver_sql(
                "INSERT INTO message_fts (rowid, subject, sender, recipients, reference,"
                " attachments, body) SELECT id, subject,"
                " replace(replace(sender, '@', ' '), '.', ' '), '', 'pr ' || thread_id, '',"
                " text FROM messages"
            )
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    return time.perf_counter() - start


def _like(engine: sa.Engine, term: str) -> int:
    like = f"%{term.lower()}%"
    sql = sa.text(
        "SELECT c.id FROM conversations c JOIN threads t ON t.id = c.thread_id"
        " WHERE lower(t.subject) LIKE :like OR c.id IN (SELECT conversation_id FROM messages"
        " WHERE lower(subject) LIKE :like OR lower(sender) LIKE :like OR lower(text) LIKE :like)"
        " ORDER BY c.id DESC LIMIT 50"
    )
    with engine.connect() as conn:
        return len(conn.execute(sql, {"like": like}).all())


def measure(engine: sa.Engine, queries: list[str]) -> dict[str, Any]:
    times, hits = [], []
    for i, q in enumerate(queries):
        t = time.perf_counter()
        page = browse(engine, SUPERVISOR, BrowseFilter(q=q, limit=50))
        elapsed = (time.perf_counter() - t) * 1000
        if i >= WARMUP:
            times.append(elapsed)
            hits.append(len(page.conversations))
    like_times = []
    for q in queries[WARMUP : WARMUP + LIKE_QUERIES]:
        t = time.perf_counter()
        _like(engine, q)
        like_times.append((time.perf_counter() - t) * 1000)
    q95 = statistics.quantiles(times, n=20)[18]
    like95 = max(like_times) if len(like_times) < 20 else statistics.quantiles(like_times, n=20)[18]
    return {
        "p50_ms": round(statistics.median(times), 2),
        "p95_ms": round(q95, 2),
        "like_p50_ms": round(statistics.median(like_times), 2),
        "like_p95_ms": round(like95, 2),
        "queries": len(times),
        "like_queries": len(like_times),
        "hits_median": statistics.median(hits),
    }


def run(url: str, n: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    words = vocabulary(rng)
    zipf = Zipf(words)
    engine = store_db.create_engine(url)
    store_db.migrate(engine)
    seconds = fill(engine, n, rng, zipf)
    searched = Zipf(words, STOP)
    qrng = random.Random(seed + 1)
    queries = [" ".join(searched.draw(qrng, 2)) for _ in range(QUERIES + WARMUP)]
    out = {"messages": n, "index_build_s": round(seconds, 1)} | measure(engine, queries)
    engine.dispose()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--postgres", help="a PostgreSQL server URL (a throw-away database)")
    ap.add_argument("--no-sqlite", action="store_true")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args()
    results: dict[str, Any] = {}
    if not args.no_sqlite:
        with tempfile.TemporaryDirectory() as tmp:
            print("sqlite: writing", args.messages, "messages", file=sys.stderr)
            results["sqlite"] = run(f"sqlite:///{Path(tmp) / 'bench.db'}", args.messages, args.seed)
            print("sqlite", results["sqlite"])
    if args.postgres:
        name = f"postroom_bench_{uuid.uuid4().hex[:8]}"
        admin = sa.create_engine(args.postgres, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        url = sa.make_url(args.postgres).set(database=name).render_as_string(hide_password=False)
        try:
            print("postgresql: writing", args.messages, "messages", file=sys.stderr)
            results["postgresql"] = run(url, args.messages, args.seed)
            print("postgresql", results["postgresql"])
        finally:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
    if args.json:
        print(json.dumps(results, separators=(",", ":")))


if __name__ == "__main__":
    main()
