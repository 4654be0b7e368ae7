"""Bulk import: read .eml/.msg files, mbox files and Maildir folders into the spool.

Only finds messages and hands them to the spool, in file order: each message
gets its id (and so its place in the pipeline) after every message before it,
so a reply is never processed before the message it answers when the file has
them in that order. Idempotent on re-run because each message's source_ref is
its content hash. Parsing happens in the pipeline. Outlook's binary .msg files
(OLE compound documents) are not mail in RFC 5322 form: they are skipped and
reported, never spooled as garbage.
"""

from __future__ import annotations

import mailbox
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from pathlib import Path

from postroom.domain.errors import PostroomError
from postroom.ingest.ports import Accepted
from postroom.ingest.spool import Spool
from postroom.store.blobs import sha256_hex

# Files read in a folder (besides mbox files, recognised by their "From " line).
MAIL_SUFFIXES = (".eml", ".msg", ".mbox", "")
# The signature of an OLE2 compound document: Outlook's own .msg format.
OLE_MAGIC = bytes.fromhex("d0cf11e0a1b11ae1")
# Small messages are handed over this many at a time before waiting.
BATCH = 256


class ImportSourceError(PostroomError):
    pass


def _is_maildir(path: Path) -> bool:
    return path.is_dir() and (path / "cur").is_dir() and (path / "new").is_dir()


def _starts_with(path: Path, magic: bytes) -> bool:
    with path.open("rb") as fh:
        return fh.read(len(magic)) == magic


def _is_mbox(path: Path) -> bool:
    return _starts_with(path, b"From ")


def iter_messages(path: Path, skipped: list[Path] | None = None) -> Iterator[bytes]:
    """Yield raw messages found at `path` (a file, an mbox, a Maildir, or a folder of them).

    Outlook OLE .msg files are not yielded; they are appended to `skipped`.
    """
    if not path.exists():
        raise ImportSourceError(
            f"{path} does not exist; give an .eml file, an mbox file or a Maildir"
        )
    if _is_maildir(path):
        box = mailbox.Maildir(str(path), factory=None, create=False)
        for key in sorted(box.keys()):
            yield box.get_bytes(key)
        return
    if path.is_dir():
        for child in sorted(path.iterdir()):
            if child.name.startswith("."):
                continue
            if child.is_dir() or child.suffix.lower() in MAIL_SUFFIXES or _is_mbox(child):
                yield from iter_messages(child, skipped)
        return
    if _is_mbox(path):
        mbox = mailbox.mbox(str(path), factory=None, create=False)
        for key in mbox.iterkeys():
            yield mbox.get_bytes(key)
        return
    if _starts_with(path, OLE_MAGIC):
        if skipped is not None:
            skipped.append(path)
        return
    yield path.read_bytes()


def count_messages(path: Path) -> int:
    return sum(1 for _ in iter_messages(path))


def source_ref(raw: bytes) -> str:
    return f"import:{sha256_hex(raw)}"


def spool_in_order(
    spool: Spool,
    messages: Iterator[bytes],
    *,
    envelope_to: Sequence[str] = (),
    progress: Callable[[int], None] = lambda n: None,
) -> int:
    """Spool `messages` so that their ids follow their order; return how many were new.

    Small messages are queued many at a time: the spool's writer commits them in
    the order they were queued. A message above the spool's inline size goes
    through the blob store first and would get its id after the small ones
    queued behind it, so the import waits for everything before it, then for it.
    """
    created = 0
    pending: list[Future[Accepted]] = []

    def flush() -> None:
        nonlocal created
        created += sum(f.result().created for f in pending)
        progress(len(pending))
        pending.clear()

    for raw in messages:
        large = len(raw) > spool.inline_max
        if large:
            flush()
        pending.append(
            spool.submit(raw, source="import", source_ref=source_ref(raw), envelope_to=envelope_to)
        )
        if large or len(pending) >= BATCH:
            flush()
    flush()
    return created
