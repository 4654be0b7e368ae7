"""Content-addressed blob store for raw messages and attachments.

`BlobStore` is the port; `FileBlobStore` keeps blobs as files named by their
sha256 under the data folder. A blob is durable (fsynced, and its directory
entry too) before `put` returns. No database access here.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Protocol


class BlobNotFoundError(KeyError):
    pass


class BlobStore(Protocol):
    def put(self, data: bytes, *, sha256: str | None = None) -> str:
        """Store `data` durably; return its sha256 hex key. Idempotent."""
        ...

    def get(self, key: str) -> bytes: ...

    def exists(self, key: str) -> bool: ...


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class FileBlobStore:
    """Blobs as ``<root>/ab/cd/<sha256>`` files, written via temp file + rename."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._known_dirs: set[Path] = set()

    def _path(self, key: str) -> Path:
        if len(key) != 64 or any(c not in "0123456789abcdef" for c in key):
            raise ValueError(f"not a sha256 key: {key!r}")
        return self.root / key[:2] / key[2:4] / key

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError as exc:
            raise BlobNotFoundError(key) from exc

    def put(self, data: bytes, *, sha256: str | None = None) -> str:
        key = sha256 or sha256_hex(data)
        path = self._path(key)
        try:
            if path.stat().st_size == len(data):
                return key  # already stored; a short file is a torn write and is replaced
        except FileNotFoundError:
            pass
        directory = path.parent
        if directory not in self._known_dirs:
            directory.mkdir(parents=True, exist_ok=True)
            self._fsync_dir(directory.parent)
            self._known_dirs.add(directory)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        # The rename is only durable once the directory entry is on disk.
        self._fsync_dir(directory)
        return key

    @staticmethod
    def _fsync_dir(directory: Path) -> None:
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
