"""Searches: a query image, the faces found in it, and each face's ranked matches."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import BigInteger, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, BigIntId, created_at, int_pk, sha256_hex, str_enum
from models.face import FaceBoxMixin
from models.gallery import DEFAULT_GALLERY_ID
from models.job import JobStatus, new_uuid

if TYPE_CHECKING:
    from models.job import Job


class Search(Base):
    __tablename__ = "searches"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    job_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("jobs.id", ondelete="CASCADE"), index=True
    )
    gallery_id: Mapped[int] = mapped_column(
        BigIntId, ForeignKey("galleries.id"), default=DEFAULT_GALLERY_ID
    )
    top_k: Mapped[int] = mapped_column(Integer)
    # The query is stored (content-addressed) but never joins the gallery.
    query_sha256: Mapped[sha256_hex]
    query_object_key: Mapped[str] = mapped_column(String(255))
    query_content_type: Mapped[str] = mapped_column(String(64))
    query_width: Mapped[int] = mapped_column(Integer)
    query_height: Mapped[int] = mapped_column(Integer)
    query_size_bytes: Mapped[int] = mapped_column(BigInteger)
    model_name: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[JobStatus] = mapped_column(str_enum(JobStatus), default=JobStatus.QUEUED)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[created_at]
    finished_at: Mapped[datetime | None]

    job: Mapped[Job] = relationship()
    faces: Mapped[list[SearchFace]] = relationship(
        back_populates="search", cascade="all, delete-orphan", order_by="SearchFace.face_index"
    )


class SearchFace(FaceBoxMixin, Base):
    __tablename__ = "search_faces"

    id: Mapped[int_pk]
    search_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("searches.id", ondelete="CASCADE"), index=True
    )
    face_index: Mapped[int] = mapped_column(Integer)

    search: Mapped[Search] = relationship(back_populates="faces")
    matches: Mapped[list[SearchMatch]] = relationship(
        back_populates="search_face", cascade="all, delete-orphan", order_by="SearchMatch.rank"
    )


class SearchMatch(Base):
    """A ranked match. Label and box are copied so a result stays readable after the
    matched image is deleted (its ids then become null)."""

    __tablename__ = "search_matches"

    id: Mapped[int_pk]
    search_face_id: Mapped[int] = mapped_column(
        BigIntId, ForeignKey("search_faces.id", ondelete="CASCADE"), index=True
    )
    rank: Mapped[int] = mapped_column(Integer)
    score: Mapped[float] = mapped_column(Float)
    face_id: Mapped[int | None] = mapped_column(
        BigIntId, ForeignKey("faces.id", ondelete="SET NULL"), index=True
    )
    image_id: Mapped[int | None] = mapped_column(
        BigIntId, ForeignKey("images.id", ondelete="SET NULL"), index=True
    )
    label: Mapped[str | None] = mapped_column(String(200))
    box_x: Mapped[int] = mapped_column(Integer)
    box_y: Mapped[int] = mapped_column(Integer)
    box_w: Mapped[int] = mapped_column(Integer)
    box_h: Mapped[int] = mapped_column(Integer)

    search_face: Mapped[SearchFace] = relationship(back_populates="matches")

    @property
    def box(self) -> dict[str, int]:
        return {"x": self.box_x, "y": self.box_y, "width": self.box_w, "height": self.box_h}
