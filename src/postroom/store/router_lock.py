"""The router lock: at most one process routes against a database at a time.

Two routers would both act on every routing request and offer one conversation
to two agents, so the `router` role first takes this lock and keeps it while it
runs. On PostgreSQL it is a session-level advisory lock held on a connection of
its own (released by the server when the process or its connection dies); on
SQLite, whose processes share one machine, it is an exclusive `flock` on a file
beside the database. A process that cannot take it stands by and retries.

This module only takes, checks and releases the lock; when to route is the
router worker's business.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Protocol

import sqlalchemy as sa

# Any fixed 64-bit number names the lock; this one spells "postroom" in ASCII.
ADVISORY_KEY = 0x706F7374726F6F6D
KEEPALIVES = (
    ("tcp_keepalives_idle", 10),
    ("tcp_keepalives_interval", 5),
    ("tcp_keepalives_count", 3),
    ("tcp_user_timeout", 30000),
)


class RouterLock(Protocol):
    def try_acquire(self) -> bool:
        """Take the lock if nobody holds it; True when this process holds it now."""

    def held(self) -> bool:
        """Whether this process still holds it (a dropped connection loses it)."""

    def release(self) -> None: ...

    def fence(self, conn: sa.Connection) -> None:
        """Raise LockLost unless the lock is still this process's, checked on
        `conn` inside the transaction about to commit routing decisions."""


class LockLost(RuntimeError):
    """This process no longer holds the router lock; its decisions must not commit."""


class FileRouterLock:
    """An exclusive `flock` on a file: the kernel drops it when the process dies."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._fd = fd
        with contextlib.suppress(OSError):  # who holds it, for operators; optional
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        return True

    def held(self) -> bool:
        if self._fd is None:
            return False
        # A lock file deleted (or replaced) under us no longer excludes anyone.
        try:
            same = os.fstat(self._fd).st_ino == os.stat(self.path).st_ino
        except OSError:
            same = False
        if not same:
            self.release()
        return same

    def fence(self, conn: sa.Connection) -> None:
        if not self.held():
            raise LockLost("the router lock file is gone")

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


class PgAdvisoryLock:
    """`pg_try_advisory_lock` on a dedicated autocommit connection."""

    def __init__(self, engine: sa.Engine, key: int = ADVISORY_KEY) -> None:
        self.engine = engine
        self.key = key
        self._conn: sa.Connection | None = None
        self._pid: int | None = None

    def try_acquire(self) -> bool:
        if self._conn is not None:
            return True
        conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            # Server-side keepalives for this session: if this host vanishes, the
            # server ends the session (and frees the lock) in about 30 s rather
            # than after the kernel's two-hour default.
            for name, value in KEEPALIVES:
                conn.execute(sa.text(f"SET {name} = {value}"))
            got = bool(
                conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key}).scalar()
            )
            pid = int(conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one())
        except Exception:
            conn.close()
            raise
        if not got:
            conn.close()
            return False
        self._conn, self._pid = conn, pid
        return True

    def held(self) -> bool:
        if self._conn is None:
            return False
        try:
            self._conn.execute(sa.text("SELECT 1"))
        except sa.exc.DBAPIError:
            # The server ended the session, and with it the lock.
            self._drop()
            return False
        return True

    def release(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(sa.exc.DBAPIError):
                self._conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
            self._drop()

    def fence(self, conn: sa.Connection) -> None:
        # Checked in the committing transaction: the lock session may have died
        # since the step began, and a standby may already be routing.
        alive = self._pid is not None and conn.execute(
            sa.text(
                "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND classid = :hi AND objid = :lo AND objsubid = 1 AND pid = :pid"
            ),
            {"hi": self.key >> 32, "lo": self.key & 0xFFFFFFFF, "pid": self._pid},
        ).first()
        if not alive:
            self._drop()
            raise LockLost("the router lock's database session has ended")

    def _drop(self) -> None:
        conn, self._conn, self._pid = self._conn, None, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.invalidate()  # never back into the pool with a lock on it
            with contextlib.suppress(Exception):
                conn.close()


def router_lock(engine: sa.Engine, data_dir: Path) -> RouterLock:
    """The lock that fits `engine`'s database."""
    if engine.dialect.name == "postgresql":
        return PgAdvisoryLock(engine)
    database = engine.url.database
    if database and database != ":memory:":
        return FileRouterLock(Path(database).with_name(Path(database).name + ".router-lock"))
    return FileRouterLock(data_dir / "router.lock")


__all__ = [
    "ADVISORY_KEY",
    "FileRouterLock",
    "LockLost",
    "PgAdvisoryLock",
    "RouterLock",
    "router_lock",
]
