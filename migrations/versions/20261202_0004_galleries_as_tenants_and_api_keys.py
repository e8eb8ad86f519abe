"""galleries as tenants and api keys

Jobs and webhooks gain a gallery; everything made before galleries had keys moves into the
gallery named `default` (id 1, made by the first migration).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 07:30:46.551478
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGINT_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
DEFAULT_GALLERY_ID = "1"


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=True),
        sa.Column(
            "scope",
            sa.Enum("search", "write", "admin", name="scope", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("gallery_id", BIGINT_ID, nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["gallery_id"],
            ["galleries.id"],
            name=op.f("fk_api_keys_gallery_id_galleries"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("prefix", name=op.f("uq_api_keys_prefix")),
    )
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_keys_gallery_id"), ["gallery_id"], unique=False)

    with op.batch_alter_table("galleries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("erasing_since", sa.DateTime(timezone=True), nullable=True))

    # Existing rows move into the default gallery: the server default fills them in.
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("gallery_id", BIGINT_ID, nullable=True))
        batch_op.drop_constraint(batch_op.f("uq_jobs_idempotency_key"), type_="unique")
        batch_op.create_index(batch_op.f("ix_jobs_gallery_id"), ["gallery_id"], unique=False)
        batch_op.create_unique_constraint(
            "uq_jobs_gallery_idempotency_key", ["gallery_id", "idempotency_key"]
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_jobs_gallery_id_galleries"),
            "galleries",
            ["gallery_id"],
            ["id"],
            ondelete="SET NULL",
        )
    op.execute(sa.text("UPDATE jobs SET gallery_id = :id").bindparams(id=int(DEFAULT_GALLERY_ID)))

    for table in ("webhook_events", "webhook_subscriptions"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(
                sa.Column(
                    "gallery_id", BIGINT_ID, nullable=False, server_default=DEFAULT_GALLERY_ID
                )
            )
            batch_op.create_index(batch_op.f(f"ix_{table}_gallery_id"), ["gallery_id"])
            batch_op.create_foreign_key(
                batch_op.f(f"fk_{table}_gallery_id_galleries"),
                "galleries",
                ["gallery_id"],
                ["id"],
                ondelete="CASCADE",
            )
        # The default only moved the existing rows; new ones always name their gallery.
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column("gallery_id", server_default=None)


def downgrade() -> None:
    for table in ("webhook_subscriptions", "webhook_events"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(
                batch_op.f(f"fk_{table}_gallery_id_galleries"), type_="foreignkey"
            )
            batch_op.drop_index(batch_op.f(f"ix_{table}_gallery_id"))
            batch_op.drop_column("gallery_id")

    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_jobs_gallery_id_galleries"), type_="foreignkey")
        batch_op.drop_constraint("uq_jobs_gallery_idempotency_key", type_="unique")
        batch_op.drop_index(batch_op.f("ix_jobs_gallery_id"))
        batch_op.create_unique_constraint(
            batch_op.f("uq_jobs_idempotency_key"), ["idempotency_key"]
        )
        batch_op.drop_column("gallery_id")

    with op.batch_alter_table("galleries", schema=None) as batch_op:
        batch_op.drop_column("erasing_since")

    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_keys_gallery_id"))

    op.drop_table("api_keys")
