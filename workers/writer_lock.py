"""One index writer across every process and host: a Postgres advisory lock held for the
life of the process that consumes the index queue.

A second index worker (a mistaken replica, a second host) waits for the lock, then refuses to
start; a redeploy's overlap is covered by the wait. Postgres frees a session lock when its
connection ends, so a killed writer never leaves it held. With SQLite (the embedded mode) the
milvus-lite path's own lock already admits a single process.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, text

from core.logging import get_logger

log = get_logger(__name__)

# An arbitrary 64-bit key, the same in every process of a deployment (one database each).
INDEX_WRITER_LOCK_KEY = 0x66_73_69_6E_64_65_78  # "fsindex"


class IndexWriterTakenError(RuntimeError):
    """Another process holds the index writer lock."""


@dataclass
class WriterLock:
    """The held lock: keep a reference for the process's life (its connection holds it)."""

    connection: Connection | None

    def release(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


def _holder(connection: Connection) -> str:
    row = connection.execute(
        text(
            "SELECT a.client_addr, a.pid, a.application_name FROM pg_locks l "
            "JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted "
            "AND (l.classid::bigint << 32 | l.objid::bigint) = :key LIMIT 1"
        ),
        {"key": INDEX_WRITER_LOCK_KEY},
    ).first()
    if row is None:
        return "another process"
    return f"backend pid {row.pid} from {row.client_addr or 'a local socket'}"


def acquire_writer_lock(engine: Engine, *, wait_s: float, poll_s: float = 1.0) -> WriterLock:
    """Take the lock, waiting up to ``wait_s``; raise IndexWriterTakenError after that."""
    if engine.dialect.name != "postgresql":
        return WriterLock(None)
    connection = engine.connect()
    # Out of the pool: closing it must end the session (and so the lock), not keep it for
    # the next borrower.
    connection.detach()
    deadline = time.monotonic() + wait_s
    said = False
    try:
        while True:
            got = connection.execute(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": INDEX_WRITER_LOCK_KEY}
            ).scalar_one()
            connection.commit()  # the lock is the session's; end the read's transaction
            if got:
                return WriterLock(connection)
            holder = _holder(connection)
            connection.commit()
            if time.monotonic() >= deadline:
                raise IndexWriterTakenError(
                    f"another index writer is running ({holder}): the index takes exactly "
                    "one; stop it, or run this worker without the index queue"
                )
            if not said:
                log.warning("worker: waiting for the index writer lock", holder=holder)
                said = True
            time.sleep(poll_s)
    except BaseException:
        connection.close()
        raise
