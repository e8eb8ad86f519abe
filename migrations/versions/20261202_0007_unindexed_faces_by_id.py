"""the index writer's queue: a partial index of unindexed faces by id

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 13:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNINDEXED = sa.text("indexed_at IS NULL")


def upgrade() -> None:
    with op.batch_alter_table("faces", schema=None) as batch_op:
        batch_op.drop_index("ix_faces_model_unindexed")
        batch_op.create_index(
            "ix_faces_unindexed_by_id",
            ["model_name", "id"],
            unique=False,
            postgresql_where=UNINDEXED,
            sqlite_where=UNINDEXED,
        )


def downgrade() -> None:
    with op.batch_alter_table("faces", schema=None) as batch_op:
        batch_op.drop_index("ix_faces_unindexed_by_id")
        batch_op.create_index("ix_faces_model_unindexed", ["model_name", "indexed_at"])
