"""Content-addressed bytes that rows share: who may store them and who may delete them.

The same bytes are one object, which images of several galleries and search queries may
share. An erasure deletes an object once no row uses it; an upload of the same bytes at that
very moment must not end with a row whose object is gone (the check "is it still used?" and
the upload's "it exists, no need to store it" would otherwise both pass). So both sides take
a lock on the object's key for the rest of their transaction: the eraser checks for users and
deletes while holding it; the uploader stores the bytes (again, if they were just deleted)
and inserts its row while holding it. Whichever comes second sees what the first committed.

On Postgres the lock is an advisory transaction lock. SQLite (the embedded mode) serialises
writers itself and its API and worker are one machine's processes; the lock is a no-op there.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from sqlalchemy import text
from sqlalchemy.orm import Session


def lock_id(object_key: str) -> int:
    """A stable signed 64-bit number for a key (what pg_advisory_xact_lock takes)."""
    digest = hashlib.sha256(object_key.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def lock_objects(session: Session, object_keys: Iterable[str]) -> None:
    """Hold these objects until the session's transaction ends. Keys are locked in one order
    (sorted), so two transactions locking several never wait on each other in a circle."""
    if session.get_bind().dialect.name != "postgresql":
        return
    ids = [lock_id(key) for key in sorted(set(object_keys))]
    if not ids:
        return
    # One round trip for the whole set (an archive's scan batch locks hundreds): unnest
    # yields the array's elements in order, and the locks are taken row by row as it does.
    session.execute(
        text("SELECT count(pg_advisory_xact_lock(id)) FROM unnest(CAST(:ids AS bigint[])) AS id"),
        {"ids": ids},
    )


# --- deletions --------------------------------------------------------------------------------
# A counter (a sequence, migration 0010) that moves after any erasure deletes stored bytes.
# Whoever stored bytes before taking their locks reads it before storing and again under the
# locks: unchanged, no bytes were deleted in between, and there is no need to ask the store
# whether they are still there.


def deletions_mark(session: Session) -> int | None:
    """Where the deletion counter stands; None where there is none (SQLite): ask the store."""
    if session.get_bind().dialect.name != "postgresql":
        return None
    row = session.execute(text("SELECT last_value, is_called FROM object_deletions")).one()
    # A new sequence reads (1, false) before its first nextval and (1, true) after it.
    return int(row.last_value) + int(bool(row.is_called))


def note_deletions(session: Session) -> None:
    """Move the counter: call it after deleting objects, before the transaction ends (the
    move is seen at once, whatever the transaction then does)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT nextval('object_deletions')"))
