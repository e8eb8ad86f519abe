"""object_deletions: a counter that erasures move after deleting stored bytes

An archive's reader stores a batch of members' bytes, then records their rows under the
objects' locks. An erasure that deleted the same bytes in between would leave a row whose
bytes are gone, so the reader used to ask the store whether each new member's bytes were
still there: a round trip per member, in the one thread that records rows. The reader now
reads this counter before storing a batch and again under the locks: only when an erasure
deleted bytes in between (the counter moved) does it ask the store.

A sequence, because it moves outside transactions: an erasure's ``nextval`` is seen at once
by every reader, whether or not the erasure then commits (a rollback costs a few checks).
Postgres only: on SQLite the reader always asks (the embedded mode has no object locks).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 13:30:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE SEQUENCE object_deletions")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP SEQUENCE object_deletions")
