"""Faces found in gallery images, with the embedding itself (Postgres is the system of
record; Milvus is an index rebuilt from these rows), and the label each face carries.

A label names one face. An image uploaded (or read from an archive) with a label gives it to
its most prominent face (``prominent_face``); its other faces are indexed unlabelled, and any
face can be labelled, relabelled or unlabelled on its own (``PUT``/``DELETE
/v1/faces/{id}/label``). Search matches, label listings and erasure read the face's label.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import (
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, BigIntId, JSONType, created_at, int_pk
from models.image import MAX_LABEL, Image


class FaceBoxMixin:
    """A face box (x, y, width, height in image pixels), landmarks and detector confidence."""

    box_x: Mapped[int] = mapped_column(Integer)
    box_y: Mapped[int] = mapped_column(Integer)
    box_w: Mapped[int] = mapped_column(Integer)
    box_h: Mapped[int] = mapped_column(Integer)
    confidence: Mapped[float] = mapped_column(Float)
    landmarks: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)

    @property
    def box(self) -> dict[str, int]:
        return {"x": self.box_x, "y": self.box_y, "width": self.box_w, "height": self.box_h}


class Face(FaceBoxMixin, Base):
    __tablename__ = "faces"
    __table_args__ = (
        # A redelivered task re-detects the same faces: this makes a duplicate impossible.
        UniqueConstraint("image_id", "model_name", "face_index", name="uq_faces_image_model_index"),
        # The indexer's work queue: faces of a model not yet in Milvus, in id order. Partial,
        # so it holds only the queue, and by id, so the writer's "next batch by id" reads a
        # batch instead of sorting every unindexed face (445 ms a batch at a million faces
        # with an index on (model_name, indexed_at): scripts/bench_index_scale.py).
        Index(
            "ix_faces_unindexed_by_id",
            "model_name",
            "id",
            postgresql_where=text("indexed_at IS NULL"),
            sqlite_where=text("indexed_at IS NULL"),
        ),
    )

    id: Mapped[int_pk]
    image_id: Mapped[int] = mapped_column(BigIntId, ForeignKey("images.id", ondelete="CASCADE"))
    face_index: Mapped[int] = mapped_column(Integer)
    # The embedding version (``models.embedding.version_name``): the model, plus the recipe's
    # options when they are not the original ones. The column keeps its older name.
    model_name: Mapped[str] = mapped_column(String(64))
    dim: Mapped[int] = mapped_column(Integer)
    # float32 little-endian bytes: portable across Postgres and SQLite, exact round trip.
    embedding: Mapped[bytes] = mapped_column(LargeBinary)
    indexed_at: Mapped[datetime | None]
    created_at: Mapped[created_at]
    # The person this face is (None: unlabelled). Indexed: erasing or listing a person
    # finds their faces by it.
    label: Mapped[str | None] = mapped_column(String(MAX_LABEL), index=True)

    image: Mapped[Image] = relationship(back_populates="faces")

    @property
    def vector(self) -> np.ndarray:
        return np.frombuffer(self.embedding, dtype="<f4")


def vector_to_bytes(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


# A face at least this fraction of the largest face's area is prominent enough to be the
# subject; among those, the nearest the image centre is. Measured on LFW, whose subject is
# the face nearest the centre (the deep-funneled images are centred on it): of the 1,556
# images where MTCNN finds several faces, the largest face alone is the subject in 1,504
# (96.7%); with this rule at 0.8, 1,550; at 0.5 (and below), all 1,556. 0.5 keeps a small
# face near the centre (a bystander behind the subject) from taking the label of a large one.
PROMINENT_AREA_RATIO = 0.5


def prominent_face(boxes: Sequence[Sequence[int]], width: int, height: int) -> int | None:
    """Which of an image's faces the image's label names: the position in ``boxes`` (x, y,
    width, height) of the face nearest the image centre among the faces at least
    ``PROMINENT_AREA_RATIO`` of the largest one's area (then the larger, then the first);
    None without faces.

    The evaluation harness picks its face with this same function, so what it measures is
    what the product labels. Migration 0008 carries a frozen copy for its backfill.
    """
    if not boxes:
        return None
    areas = [int(box[2]) * int(box[3]) for box in boxes]
    floor = PROMINENT_AREA_RATIO * max(areas)
    cx, cy = width / 2, height / 2

    def key(position: int) -> tuple[float, int, int]:
        x, y, w, h = boxes[position][:4]
        off_centre = (x + w / 2 - cx) ** 2 + (y + h / 2 - cy) ** 2
        return (off_centre, -areas[position], position)

    return min((i for i in range(len(boxes)) if areas[i] >= floor), key=key)


# A face of one embedding version is the face of another version it overlaps at least this
# much (intersection over union): the same detector on the same pixels finds the same box,
# give or take a few pixels; two different faces of one image never overlap this much.
LABEL_IOU = 0.5


def iou(a: Sequence[int], b: Sequence[int]) -> float:
    """Intersection over union of two (x, y, width, height) boxes."""
    ax, ay, aw, ah = (int(v) for v in a[:4])
    bx, by, bw, bh = (int(v) for v in b[:4])
    w = min(ax + aw, bx + bw) - max(ax, bx)
    h = min(ay + ah, by + bh) - max(ay, by)
    inter = max(w, 0) * max(h, 0)
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0
