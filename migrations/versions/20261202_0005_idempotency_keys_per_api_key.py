"""idempotency keys per api key

An Idempotency-Key belongs to the API key that sent it (within the gallery it acted in)
and is bound to a hash of the request it came with. Keys sent before this revision keep
their jobs but match no retry: they were never bound to an API key.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("idempotency_key_id", sa.String(length=36), nullable=True))
        batch_op.add_column(
            sa.Column("idempotency_request_hash", sa.String(length=64), nullable=True)
        )
        batch_op.drop_constraint("uq_jobs_gallery_idempotency_key", type_="unique")
        batch_op.create_unique_constraint(
            "uq_jobs_idempotency_scope", ["gallery_id", "idempotency_key_id", "idempotency_key"]
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_jobs_idempotency_key_id_api_keys"),
            "api_keys",
            ["idempotency_key_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    # Keys without an API key of their own were only ever unique per gallery: the older
    # constraint holds again once the later keys are dropped.
    op.execute(
        sa.text("UPDATE jobs SET idempotency_key = NULL WHERE idempotency_key_id IS NOT NULL")
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_jobs_idempotency_key_id_api_keys"), type_="foreignkey"
        )
        batch_op.drop_constraint("uq_jobs_idempotency_scope", type_="unique")
        batch_op.create_unique_constraint(
            "uq_jobs_gallery_idempotency_key", ["gallery_id", "idempotency_key"]
        )
        batch_op.drop_column("idempotency_request_hash")
        batch_op.drop_column("idempotency_key_id")
