"""served_versions: which embedding version searches are served from

Faces are stored by embedding version (``faces.model_name``: the model alone, or with the
recipe's options, e.g. ``facenet-20170512-110547+margin0.1+align+flip``). A worker
configured with a new recipe embeds new faces with it, while searches stay on the version
recorded here until ``facesearch reembed`` has covered every image and switches it.

Every face stored before this revision was embedded with the model's original recipe, named
by the model alone: each model found among the faces is recorded as served by that name.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 18:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "served_versions",
        sa.Column("model_name", sa.String(length=64), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("switched_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("model_name", name=op.f("pk_served_versions")),
    )
    conn = op.get_bind()
    names = conn.execute(sa.text("SELECT DISTINCT model_name FROM faces")).scalars().all()
    rows = [{"model": name, "version": name} for name in names if "+" not in name]
    if rows:
        conn.execute(
            sa.text(
                "INSERT INTO served_versions (model_name, version, switched_at)"
                " VALUES (:model, :version, CURRENT_TIMESTAMP)"
            ),
            rows,
        )


def downgrade() -> None:
    op.drop_table("served_versions")
