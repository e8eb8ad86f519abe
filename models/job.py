"""Jobs: every long operation, its progress and its per-item outcome.

The Celery result backend is never the record of a job: this table is.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from models.base import Base, BigIntId, JSONType, created_at, int_pk, str_enum, utcnow


class JobKind(enum.StrEnum):
    INGEST = "ingest"  # add uploaded images to the gallery
    SEARCH = "search"  # find the faces of one query image
    REINDEX = "reindex"  # rebuild the vector index from Postgres
    ARCHIVE = "archive"  # add the images of an uploaded archive to the gallery
    ERASE_GALLERY = "erase_gallery"  # remove a gallery and everything in it
    REEMBED = "reembed"  # embed every image with the configured recipe, then switch to it


class JobStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    PARTIAL = "partial"  # finished, some items failed
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in FINISHED_STATUSES


FINISHED_STATUSES = frozenset(
    {JobStatus.SUCCEEDED, JobStatus.PARTIAL, JobStatus.FAILED, JobStatus.CANCELLED}
)


class ItemStatus(enum.StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"  # e.g. the same bytes are already in the gallery


def new_uuid() -> str:
    return str(uuid.uuid4())


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        # An Idempotency-Key is the client's: unique for the API key that sent it, within the
        # gallery it acted in; never shared across keys or tenants.
        UniqueConstraint(
            "gallery_id",
            "idempotency_key_id",
            "idempotency_key",
            name="uq_jobs_idempotency_scope",
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    # Null only for a gallery's erasure once the gallery is gone (administrators still see it).
    gallery_id: Mapped[int | None] = mapped_column(
        BigIntId, ForeignKey("galleries.id", ondelete="SET NULL"), index=True
    )
    kind: Mapped[JobKind] = mapped_column(str_enum(JobKind, length=16), index=True)
    status: Mapped[JobStatus] = mapped_column(
        str_enum(JobStatus), default=JobStatus.QUEUED, index=True
    )
    total: Mapped[int] = mapped_column(Integer, default=0)
    done: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    # A client may retry a creation request safely by sending the same Idempotency-Key.
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    # The API key that sent it, and a hash of the request it came with: a retry must be the
    # same request. Cleared with the key when the key expires (IDEMPOTENCY_KEY_TTL_S).
    idempotency_key_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("api_keys.id", ondelete="SET NULL")
    )
    idempotency_request_hash: Mapped[str | None] = mapped_column(String(64))
    # What the job was asked to do, beyond its items (e.g. an archive's object key, options).
    params: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict, server_default="{}")
    result: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[created_at]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    items: Mapped[list[JobItem]] = relationship(
        back_populates="job", cascade="all, delete-orphan", order_by="JobItem.position"
    )

    def start(self) -> None:
        if self.status == JobStatus.QUEUED:
            self.status = JobStatus.RUNNING
            self.started_at = utcnow()

    def finish(self, status: JobStatus | None = None, *, error: str | None = None) -> None:
        """Close the job; without an explicit status it follows from the item counters."""
        if status is None:
            if self.failed and self.failed >= self.total - self.skipped:
                status = JobStatus.FAILED
            elif self.failed:
                status = JobStatus.PARTIAL
            else:
                status = JobStatus.SUCCEEDED
        self.status = status
        if error is not None:
            self.error = error
        self.finished_at = utcnow()


class JobItem(Base):
    """One input of a job (an uploaded file) and what became of it."""

    __tablename__ = "job_items"
    __table_args__ = (
        UniqueConstraint("job_id", "position", name="uq_job_items_job_position"),
        # Listing a job's items by status (e.g. its failures), and finding its pending work.
        Index("ix_job_items_job_status", "job_id", "status"),
    )

    id: Mapped[int_pk]
    job_id: Mapped[str] = mapped_column(String(36), ForeignKey("jobs.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(255))
    image_id: Mapped[int | None] = mapped_column(
        BigIntId, ForeignKey("images.id", ondelete="SET NULL"), index=True
    )
    status: Mapped[ItemStatus] = mapped_column(str_enum(ItemStatus), default=ItemStatus.PENDING)
    error: Mapped[str | None] = mapped_column(Text)

    job: Mapped[Job] = relationship(back_populates="items")


def refresh_progress(session: Session, job: Job) -> None:
    """Recompute the counters from the items: idempotent under redelivery, unlike += 1."""
    # Lock the job row before counting: two transactions refreshing at once (an archive's
    # reader and its pipeline) then count one after the other, and the later one sees what
    # the earlier committed instead of overwriting it with an older count.
    session.execute(select(Job.id).where(Job.id == job.id).with_for_update())
    rows = session.execute(
        select(JobItem.status, func.count())
        .where(JobItem.job_id == job.id)
        .group_by(JobItem.status)
    ).all()
    counts = dict(rows)
    job.total = sum(counts.values())
    job.done = counts.get(ItemStatus.SUCCEEDED, 0)
    job.failed = counts.get(ItemStatus.FAILED, 0)
    job.skipped = counts.get(ItemStatus.SKIPPED, 0)


def skip_pending_items(session: Session, job_id: str, reason: str) -> int:
    """Mark the job's pending items skipped with ``reason`` (a cancelled job); return how many.

    Items that a worker holds locked are waited for, then left as the worker recorded them:
    what was done is kept.
    """
    result = session.execute(
        update(JobItem)
        .where(JobItem.job_id == job_id, JobItem.status == ItemStatus.PENDING)
        .values(status=ItemStatus.SKIPPED, error=reason)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)
