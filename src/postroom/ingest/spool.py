"""The spool: makes an accepted message durable before anyone says "250".

A single writer thread groups concurrent messages into one transaction (group
commit), so durability costs one commit per batch, not per message. Messages up
to `inline_max` bytes ride inside their pending row; larger ones are written to
the blob store (fsynced) before their row is committed.
The spool does not parse or route; the pipeline picks pending rows up.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime

import sqlalchemy as sa

from postroom.ingest.ports import Accepted
from postroom.store.blobs import BlobStore, sha256_hex
from postroom.store.intake_repo import SpoolRow, insert_spooled

log = logging.getLogger("postroom.spool")

_STOP = object()


class Spool:
    """`IntakeSink` backed by a blob store and a group-committing writer thread."""

    def __init__(
        self,
        engine: sa.Engine,
        blobs: BlobStore,
        clock: Callable[[], datetime],
        *,
        on_committed: Callable[[], None] | None = None,
        max_batch: int = 256,
        blob_threads: int = 8,
        inline_max: int = 256 * 1024,
    ) -> None:
        self.engine = engine
        self.blobs = blobs
        self.clock = clock
        self.on_committed = on_committed
        self.max_batch = max_batch
        self.inline_max = inline_max
        self._queue: queue.Queue[object] = queue.Queue()
        self._blob_pool = ThreadPoolExecutor(blob_threads, thread_name_prefix="spool-blob")
        self._writer = threading.Thread(target=self._write_loop, name="spool-writer", daemon=True)
        self._writer.start()

    # -- public API -------------------------------------------------------

    async def accept(
        self,
        raw: bytes,
        *,
        source: str,
        source_ref: str | None = None,
        envelope_from: str | None = None,
        envelope_to: Sequence[str] = (),
    ) -> Accepted:
        fut = self.submit(
            raw,
            source=source,
            source_ref=source_ref,
            envelope_from=envelope_from,
            envelope_to=envelope_to,
        )
        return await asyncio.wrap_future(fut)

    def accept_sync(
        self,
        raw: bytes,
        *,
        source: str,
        source_ref: str | None = None,
        envelope_from: str | None = None,
        envelope_to: Sequence[str] = (),
    ) -> Accepted:
        return self.submit(
            raw,
            source=source,
            source_ref=source_ref,
            envelope_from=envelope_from,
            envelope_to=envelope_to,
        ).result()

    def submit(
        self,
        raw: bytes,
        *,
        source: str,
        source_ref: str | None = None,
        envelope_from: str | None = None,
        envelope_to: Sequence[str] = (),
    ) -> Future[Accepted]:
        """Start making `raw` durable; the future resolves once the row is committed.

        Small messages travel inside their row, so one group commit makes a whole
        batch durable; larger ones are written and fsynced to the blob store first.
        """
        done: Future[Accepted] = Future()

        def enqueue(sha: str, inline: bytes | None) -> None:
            row = SpoolRow(
                raw_sha256=sha,
                raw_size=len(raw),
                source=source,
                source_ref=source_ref,
                envelope_from=envelope_from,
                envelope_to=tuple(envelope_to),
                received_at=self.clock(),
                raw=inline,
            )
            self._queue.put((row, done))

        if len(raw) <= self.inline_max:
            enqueue(sha256_hex(raw), raw)
            return done

        def blob_written(f: Future[str]) -> None:
            exc = f.exception()
            if exc is not None:
                done.set_exception(exc)
            else:
                enqueue(f.result(), None)

        self._blob_pool.submit(self._put_blob, raw).add_done_callback(blob_written)
        return done

    def close(self) -> None:
        self._blob_pool.shutdown(wait=True)
        self._queue.put(_STOP)
        self._writer.join(timeout=30)

    # -- internals ----------------------------------------------------------

    def _put_blob(self, raw: bytes) -> str:
        return self.blobs.put(raw, sha256=sha256_hex(raw))

    def _write_loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch = [first]
            stop = False
            while len(batch) < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
                batch.append(item)
            self._commit(batch)  # type: ignore[arg-type]
            if stop:
                return

    def _commit(self, batch: list[tuple[SpoolRow, Future[Accepted]]]) -> None:
        rows = [row for row, _ in batch]
        try:
            with self.engine.begin() as conn:
                results = insert_spooled(conn, rows)
        except (sa.exc.IntegrityError, sa.exc.DataError):
            # Another process stored one of these source_refs first, or one row is
            # unstorable: retry one by one so only that sender hears of it.
            results = []
            for row in rows:
                try:
                    with self.engine.begin() as conn:
                        results.extend(insert_spooled(conn, [row]))
                except Exception as exc:
                    results.append((-1, False))
                    log.warning("spool insert failed", extra={"error": str(exc)})
        except Exception as exc:
            log.error("spool commit failed", extra={"error": str(exc), "batch": len(batch)})
            for _, fut in batch:
                fut.set_exception(exc)
            return
        for (_, fut), (pk, created) in zip(batch, results, strict=True):
            if pk < 0:
                fut.set_exception(RuntimeError("could not record the message"))
            else:
                fut.set_result(Accepted(message_pk=pk, created=created))
        if self.on_committed is not None:
            try:
                self.on_committed()
            except Exception:
                log.exception("spool wake-up callback failed")


__all__ = ["Spool"]
