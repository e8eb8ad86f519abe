"""vector deletions outbox

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 08:59:59.265434
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGINT_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "vector_deletions",
        sa.Column("id", BIGINT_ID, autoincrement=True, nullable=False),
        sa.Column("model_name", sa.String(length=64), nullable=False),
        sa.Column("face_id", BIGINT_ID, nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vector_deletions")),
    )
    with op.batch_alter_table("vector_deletions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_vector_deletions_created_at"), ["created_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("vector_deletions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_vector_deletions_created_at"))
    op.drop_table("vector_deletions")
