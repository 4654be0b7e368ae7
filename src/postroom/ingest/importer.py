"""Bulk import: read .eml files, mbox files and Maildir folders into the spool.

Only finds messages and hands them to the sink; idempotent on re-run because
each message's source_ref is its content hash. Parsing happens in the pipeline.
"""

from __future__ import annotations

import mailbox
from collections.abc import Iterator
from pathlib import Path

from postroom.domain.errors import PostroomError
from postroom.store.blobs import sha256_hex


class ImportSourceError(PostroomError):
    pass


def _is_maildir(path: Path) -> bool:
    return path.is_dir() and (path / "cur").is_dir() and (path / "new").is_dir()


def _is_mbox(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(5) == b"From "


def iter_messages(path: Path) -> Iterator[bytes]:
    """Yield raw messages found at `path` (a file, an mbox, a Maildir, or a folder of them)."""
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
            if (child.is_dir() and not _is_maildir(child)) or (
                child.is_dir() or child.suffix.lower() in (".eml", ".mbox", "") or _is_mbox(child)
            ):
                yield from iter_messages(child)
        return
    if _is_mbox(path):
        mbox = mailbox.mbox(str(path), factory=None, create=False)
        for key in mbox.iterkeys():
            yield mbox.get_bytes(key)
        return
    yield path.read_bytes()


def count_messages(path: Path) -> int:
    return sum(1 for _ in iter_messages(path))


def source_ref(raw: bytes) -> str:
    return f"import:{sha256_hex(raw)}"
