"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-25 16:43:25.157953
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "galleries",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_galleries")),
        sa.UniqueConstraint("name", name=op.f("uq_galleries_name")),
    )
    # Every image belongs to a gallery; the default one exists from the start.
    galleries = sa.table("galleries", sa.column("id", sa.Integer), sa.column("name", sa.String))
    op.bulk_insert(galleries, [{"id": 1, "name": "default"}])
    if op.get_bind().dialect.name == "postgresql":
        # The explicit id left the sequence behind; the next gallery must not collide.
        op.execute("SELECT setval(pg_get_serial_sequence('galleries', 'id'), 1)")
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column(
            "kind",
            sa.Enum("ingest", "search", "reindex", name="jobkind", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column(
            "status",
            sa.Enum(
                "queued",
                "running",
                "succeeded",
                "partial",
                "failed",
                "cancelled",
                name="jobstatus",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("idempotency_key", sa.String(length=200), nullable=True),
        sa.Column(
            "result",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_jobs_idempotency_key")),
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_jobs_kind"), ["kind"], unique=False)
        batch_op.create_index(batch_op.f("ix_jobs_status"), ["status"], unique=False)

    op.create_table(
        "images",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "gallery_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("object_key", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=True),
        sa.Column("label", sa.String(length=200), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "ready",
                "no_face",
                "failed",
                name="imagestatus",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["gallery_id"], ["galleries.id"], name=op.f("fk_images_gallery_id_galleries")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_images")),
        sa.UniqueConstraint("gallery_id", "sha256", name="uq_images_gallery_sha256"),
    )
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_images_gallery_id"), ["gallery_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_images_label"), ["label"], unique=False)
        batch_op.create_index(batch_op.f("ix_images_status"), ["status"], unique=False)

    op.create_table(
        "searches",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("job_id", sa.String(length=36), nullable=False),
        sa.Column(
            "gallery_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("top_k", sa.Integer(), nullable=False),
        sa.Column("query_sha256", sa.String(length=64), nullable=False),
        sa.Column("query_object_key", sa.String(length=255), nullable=False),
        sa.Column("query_content_type", sa.String(length=64), nullable=False),
        sa.Column("query_width", sa.Integer(), nullable=False),
        sa.Column("query_height", sa.Integer(), nullable=False),
        sa.Column("query_size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("model_name", sa.String(length=64), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "queued",
                "running",
                "succeeded",
                "partial",
                "failed",
                "cancelled",
                name="jobstatus",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["gallery_id"], ["galleries.id"], name=op.f("fk_searches_gallery_id_galleries")
        ),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_searches_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_searches")),
    )
    with op.batch_alter_table("searches", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_searches_job_id"), ["job_id"], unique=False)

    op.create_table(
        "faces",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("image_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("face_index", sa.Integer(), nullable=False),
        sa.Column("model_name", sa.String(length=64), nullable=False),
        sa.Column("dim", sa.Integer(), nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=False),
        sa.Column("indexed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("box_x", sa.Integer(), nullable=False),
        sa.Column("box_y", sa.Integer(), nullable=False),
        sa.Column("box_w", sa.Integer(), nullable=False),
        sa.Column("box_h", sa.Integer(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column(
            "landmarks",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["image_id"], ["images.id"], name=op.f("fk_faces_image_id_images"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_faces")),
        sa.UniqueConstraint(
            "image_id", "model_name", "face_index", name="uq_faces_image_model_index"
        ),
    )
    with op.batch_alter_table("faces", schema=None) as batch_op:
        batch_op.create_index(
            "ix_faces_model_unindexed", ["model_name", "indexed_at"], unique=False
        )

    op.create_table(
        "job_items",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("job_id", sa.String(length=36), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("image_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "succeeded",
                "failed",
                "skipped",
                name="itemstatus",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["image_id"],
            ["images.id"],
            name=op.f("fk_job_items_image_id_images"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_job_items_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_items")),
        sa.UniqueConstraint("job_id", "position", name="uq_job_items_job_position"),
    )
    with op.batch_alter_table("job_items", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_job_items_image_id"), ["image_id"], unique=False)

    op.create_table(
        "search_faces",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("search_id", sa.String(length=36), nullable=False),
        sa.Column("face_index", sa.Integer(), nullable=False),
        sa.Column("box_x", sa.Integer(), nullable=False),
        sa.Column("box_y", sa.Integer(), nullable=False),
        sa.Column("box_w", sa.Integer(), nullable=False),
        sa.Column("box_h", sa.Integer(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column(
            "landmarks",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["search_id"],
            ["searches.id"],
            name=op.f("fk_search_faces_search_id_searches"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_search_faces")),
    )
    with op.batch_alter_table("search_faces", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_search_faces_search_id"), ["search_id"], unique=False)

    op.create_table(
        "search_matches",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "search_face_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("face_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("image_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("label", sa.String(length=200), nullable=True),
        sa.Column("box_x", sa.Integer(), nullable=False),
        sa.Column("box_y", sa.Integer(), nullable=False),
        sa.Column("box_w", sa.Integer(), nullable=False),
        sa.Column("box_h", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["face_id"],
            ["faces.id"],
            name=op.f("fk_search_matches_face_id_faces"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["image_id"],
            ["images.id"],
            name=op.f("fk_search_matches_image_id_images"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["search_face_id"],
            ["search_faces.id"],
            name=op.f("fk_search_matches_search_face_id_search_faces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_search_matches")),
    )
    with op.batch_alter_table("search_matches", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_search_matches_face_id"), ["face_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_search_matches_image_id"), ["image_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_search_matches_search_face_id"), ["search_face_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("search_matches", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_search_matches_search_face_id"))
        batch_op.drop_index(batch_op.f("ix_search_matches_image_id"))
        batch_op.drop_index(batch_op.f("ix_search_matches_face_id"))

    op.drop_table("search_matches")
    with op.batch_alter_table("search_faces", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_search_faces_search_id"))

    op.drop_table("search_faces")
    with op.batch_alter_table("job_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_job_items_image_id"))

    op.drop_table("job_items")
    with op.batch_alter_table("faces", schema=None) as batch_op:
        batch_op.drop_index("ix_faces_model_unindexed")

    op.drop_table("faces")
    with op.batch_alter_table("searches", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_searches_job_id"))

    op.drop_table("searches")
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_images_status"))
        batch_op.drop_index(batch_op.f("ix_images_label"))
        batch_op.drop_index(batch_op.f("ix_images_gallery_id"))

    op.drop_table("images")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_jobs_status"))
        batch_op.drop_index(batch_op.f("ix_jobs_kind"))

    op.drop_table("jobs")
    op.drop_table("galleries")
