"""A job's lifecycle, for the API and the workers alike: how it starts and how it ends.

:func:`close_job` is the only way a job ends. It sets the final status, ends the work the
job leaves undone (its pending items, and the images no other live job will process, so an
accepted image never stays pending), keeps a search job's search in step, and records the
job.completed event (and a search's own event) in the same transaction. It returns the
webhook deliveries to send after the commit (``core.queue.queue_deliveries``), and has the
job's id published once that commit is done, to wake the requests that wait on it
(``core.notify``).
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core.notify import job_finished_after_commit
from models import (
    Image,
    ImageStatus,
    ItemStatus,
    Job,
    JobItem,
    JobKind,
    JobStatus,
    Search,
    refresh_progress,
)
from services.events import record_job_event, record_search_events

# Jobs whose progress is counted from their items (the others keep their own counters).
ITEM_JOBS = (JobKind.INGEST, JobKind.ARCHIVE)
LIVE_STATUSES = (JobStatus.QUEUED, JobStatus.RUNNING)
DEFAULT_REASONS = {
    JobStatus.FAILED: "the job failed before this item was processed",
    JobStatus.CANCELLED: "the job was cancelled before this item was processed",
}


def search_of(session: Session, job: Job) -> Search | None:
    if job.kind != JobKind.SEARCH:
        return None
    return session.scalars(select(Search).where(Search.job_id == job.id)).one_or_none()


def start_job(session: Session, job: Job) -> None:
    """A worker begins the job (a no-op unless it is queued); a search follows its job."""
    job.start()
    search = search_of(session, job)
    if search is not None and not search.status.finished:
        search.status = job.status


def image_reason(reason: str) -> str:
    return f"not processed: {reason}; upload it again to retry"


def _end_pending_work(session: Session, job: Job, status: JobStatus, reason: str) -> None:
    """A job that ends failed or cancelled leaves nothing pending: its pending items fail (or
    are skipped, when cancelled) with ``reason``, and its images that no other live job will
    process fail with it, so that a re-upload of their bytes queues them again."""
    session.execute(
        update(JobItem)
        .where(JobItem.job_id == job.id, JobItem.status == ItemStatus.PENDING)
        .values(
            status=ItemStatus.SKIPPED if status == JobStatus.CANCELLED else ItemStatus.FAILED,
            error=reason,
        )
        .execution_options(synchronize_session=False)
    )
    live_elsewhere = (
        select(JobItem.image_id)
        .join(Job, JobItem.job_id == Job.id)
        .where(
            JobItem.image_id.is_not(None),
            JobItem.status == ItemStatus.PENDING,
            Job.id != job.id,
            Job.status.in_(LIVE_STATUSES),
        )
    )
    session.execute(
        update(Image)
        .where(
            Image.id.in_(
                select(JobItem.image_id).where(
                    JobItem.job_id == job.id, JobItem.image_id.is_not(None)
                )
            ),
            Image.status == ImageStatus.PENDING,
            Image.id.not_in(live_elsewhere),
        )
        .values(status=ImageStatus.FAILED, error=image_reason(reason))
        .execution_options(synchronize_session=False)
    )
    for row in list(session.identity_map.values()):
        if isinstance(row, JobItem | Image):
            session.expire(row)  # they were changed in the database, not through the ORM


def close_job(
    session: Session, job: Job, status: JobStatus | None = None, *, error: str | None = None
) -> list[str]:
    """End ``job`` with ``status`` (None: from its item counters) unless it already ended, and
    record its events; returns the webhook deliveries to send after the commit.

    A failed or cancelled job's pending work ends with ``error`` as its reason. A search job
    counts its search as its one item, and its search takes the job's final status.
    """
    if job.status.finished:
        return []
    if status in DEFAULT_REASONS:
        assert status is not None
        _end_pending_work(session, job, status, error or DEFAULT_REASONS[status])
    if job.kind in ITEM_JOBS:
        refresh_progress(session, job)
    search = search_of(session, job)
    if search is not None:
        succeeded = status in (None, JobStatus.SUCCEEDED)
        job.total, job.done, job.failed = 1, int(succeeded), int(not succeeded)
        job.result = {**(job.result or {}), "search_id": search.id}
    job.finish(status, error=error)
    # Published after the commit, never before: a woken waiter must find the row ended.
    job_finished_after_commit(session, job.id)
    if search is None:
        return record_job_event(session, job)
    search.status = job.status
    search.error = job.error
    search.finished_at = job.finished_at
    return record_search_events(session, search)
