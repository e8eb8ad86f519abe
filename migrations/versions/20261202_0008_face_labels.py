"""a label on each face: an image's label names its most prominent face

Faces gain a ``label``. Existing labelled images give their label to one face, chosen by the
rule of ``models.face.prominent_face`` (copied here, frozen: a migration must do tomorrow what
it did today, whatever the model code becomes): among the faces at least half the area of
the largest, the one whose centre is nearest the image centre (then the larger, then the
lowest face index). Their other faces stay unlabelled. ``images.label`` stays: it records the label asked at upload.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 16:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Images read per round of the backfill: bounded memory on a gallery of millions.
BATCH = 5_000
# models.face.PROMINENT_AREA_RATIO as of this migration.
PROMINENT_AREA_RATIO = 0.5


def _prominent(faces: list[tuple[int, int, int, int, int, int]], width: int, height: int) -> int:
    """The face id of the most prominent face; rows are (id, face_index, x, y, w, h)."""
    cx, cy = width / 2, height / 2
    floor = PROMINENT_AREA_RATIO * max(f[4] * f[5] for f in faces)
    return min(
        (f for f in faces if f[4] * f[5] >= floor),
        key=lambda f: (
            (f[2] + f[4] / 2 - cx) ** 2 + (f[3] + f[5] / 2 - cy) ** 2,
            -(f[4] * f[5]),
            f[1],
        ),
    )[0]


def _backfill() -> None:
    conn = op.get_bind()
    after = 0
    while True:
        images = conn.execute(
            sa.text(
                "SELECT id, label, width, height FROM images"
                " WHERE label IS NOT NULL AND id > :after ORDER BY id LIMIT :n"
            ),
            {"after": after, "n": BATCH},
        ).all()
        if not images:
            return
        after = images[-1][0]
        faces: dict[tuple[int, str], list[tuple[int, int, int, int, int, int]]] = {}
        # Every model's faces: each model's rows of an image are its own detections, and
        # each model's index must answer the same label.
        rows = conn.execute(
            sa.text(
                "SELECT image_id, model_name, id, face_index, box_x, box_y, box_w, box_h"
                " FROM faces WHERE image_id IN :ids"
            ).bindparams(sa.bindparam("ids", expanding=True)),
            {"ids": [image[0] for image in images]},
        ).all()
        for image_id, model_name, face_id, face_index, x, y, w, h in rows:
            faces.setdefault((image_id, model_name), []).append((face_id, face_index, x, y, w, h))
        by_id = {image[0]: image for image in images}
        updates = [
            {
                "face_id": _prominent(found, by_id[image_id][2], by_id[image_id][3]),
                "label": by_id[image_id][1],
            }
            for (image_id, _), found in faces.items()
        ]
        if updates:
            conn.execute(sa.text("UPDATE faces SET label = :label WHERE id = :face_id"), updates)


def upgrade() -> None:
    with op.batch_alter_table("faces", schema=None) as batch_op:
        batch_op.add_column(sa.Column("label", sa.String(length=200), nullable=True))
        batch_op.create_index(batch_op.f("ix_faces_label"), ["label"], unique=False)
    _backfill()


def downgrade() -> None:
    # The labels given to faces one by one are lost; images keep the label they were
    # uploaded with.
    with op.batch_alter_table("faces", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_faces_label"))
        batch_op.drop_column("label")
