"""Gallery images: the bytes live in the object store under a content-addressed key."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import BigInteger, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, BigIntId, created_at, int_pk, sha256_hex, str_enum, utcnow
from models.gallery import DEFAULT_GALLERY_ID

if TYPE_CHECKING:
    from models.face import Face


# A label's length: the width of the label columns (images and faces), and what the API
# and the archive reader accept.
MAX_LABEL = 200


class ImageStatus(enum.StrEnum):
    PENDING = "pending"  # stored, waiting for the pipeline
    READY = "ready"  # faces detected and embedded (see Face.indexed_at for the index)
    NO_FACE = "no_face"  # processed, no face found: kept, but nothing to search
    FAILED = "failed"  # could not be processed; ``error`` says why


class Image(Base):
    __tablename__ = "images"
    # The same bytes are one image per gallery; a repeated upload is a skip, not a copy.
    __table_args__ = (UniqueConstraint("gallery_id", "sha256", name="uq_images_gallery_sha256"),)

    id: Mapped[int_pk]
    gallery_id: Mapped[int] = mapped_column(
        BigIntId, ForeignKey("galleries.id"), default=DEFAULT_GALLERY_ID, index=True
    )
    sha256: Mapped[sha256_hex]
    object_key: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    filename: Mapped[str | None] = mapped_column(String(255))
    label: Mapped[str | None] = mapped_column(String(MAX_LABEL), index=True)
    status: Mapped[ImageStatus] = mapped_column(
        str_enum(ImageStatus), default=ImageStatus.PENDING, index=True
    )
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[created_at]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    faces: Mapped[list[Face]] = relationship(
        back_populates="image",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="Face.face_index",
    )
