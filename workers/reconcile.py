"""The reconciler: finds work that nothing will finish, and re-queues or fails it.

The invariant it keeps: every accepted image ends ``ready``/``no_face`` (its faces indexed)
or ``failed`` with a reason, and every job ends, a bounded time after its dependencies are
back. Tasks are acknowledged late and retried, but a message can still be lost (a broker
that refused it, a worker and its unacked message gone), so this runs periodically (Celery
beat, RECONCILE_INTERVAL_S) and on demand (``facesearch reconcile``):

- a job queued or running with no update for ``stale_s`` (longer than any task may run) has
  its task sent again; a running one, after ``max_requeues`` such re-sends, fails with the
  reason, and ``services.jobs.close_job`` fails its pending items and images with it (a
  queued one is only ever sent again: it may be waiting behind a backlog);
- an image still pending that no live job will process (its job ended first) fails with the
  reason; uploading its bytes again queues it again;
- faces not indexed ``stale_s`` after they were made get an index task for their model;
- vector deletions still owed ``stale_s`` after an erasure asked for them are asked again.

Each run handles at most ``batch`` of each, and a second run right after finds nothing new
to do: a re-queued job counts as updated.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import exists, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from core.logging import get_logger
from core.queue import (
    ARCHIVE_TASK,
    DELETE_VECTORS_TASK,
    ERASE_GALLERY_TASK,
    INDEX_TASK,
    INGEST_TASK,
    REEMBED_TASK,
    REINDEX_TASK,
    SEARCH_TASK,
)
from models import (
    Face,
    Image,
    ImageStatus,
    ItemStatus,
    Job,
    JobItem,
    JobKind,
    JobStatus,
    VectorDeletion,
    utcnow,
)
from models.db import session_scope
from services.jobs import LIVE_STATUSES, close_job, image_reason, search_of

log = get_logger(__name__)

# (task name, positional args, keyword args): sends one task; raises if the broker refuses.
SendTask = Callable[[str, list[Any], dict[str, Any]], None]
SendDeliveries = Callable[[list[str]], None]

TASK_OF_KIND = {
    JobKind.INGEST: INGEST_TASK,
    JobKind.ARCHIVE: ARCHIVE_TASK,
    JobKind.SEARCH: SEARCH_TASK,
    JobKind.REINDEX: REINDEX_TASK,
    JobKind.ERASE_GALLERY: ERASE_GALLERY_TASK,
    JobKind.REEMBED: REEMBED_TASK,
}
ORPHAN_REASON = "no job was left to process it (its job ended before it did)"


def stranded_reason(stale_s: int, requeues: int) -> str:
    return (
        f"stranded: no progress for {stale_s} s after its task was sent again {requeues} "
        "time(s) (a worker or the task queue kept losing it)"
    )


def _job_task(session: Session, job: Job) -> tuple[str, dict[str, Any]]:
    kwargs: dict[str, Any] = {"job_id": job.id}
    search = search_of(session, job)
    if search is not None:
        kwargs["search_id"] = search.id
    return TASK_OF_KIND[job.kind], kwargs


def _stale_jobs(
    sessions: sessionmaker[Session],
    send_task: SendTask,
    send_deliveries: SendDeliveries,
    *,
    stale_s: int,
    max_requeues: int,
    batch: int,
) -> tuple[int, int]:
    cutoff = utcnow() - timedelta(seconds=stale_s)
    with session_scope(sessions) as session:
        job_ids = list(
            session.scalars(
                select(Job.id)
                .where(Job.status.in_(LIVE_STATUSES), Job.updated_at < cutoff)
                .order_by(Job.updated_at)
                .limit(batch)
            )
        )
    requeued = failed = 0
    for job_id in job_ids:
        with session_scope(sessions) as session:
            job = session.get(Job, job_id, with_for_update=True)
            if job is None or job.status.finished or job.updated_at >= cutoff:
                continue  # it moved on meanwhile
            requeues = int(job.params.get("requeues", 0))
            # Only a job that started is given up on: a queued one may simply be waiting
            # behind a backlog (its task is sent again, harmlessly: tasks are idempotent, and
            # work that kills its workers is dead-lettered by its delivery count instead).
            if requeues >= max_requeues and job.status == JobStatus.RUNNING:
                deliveries = close_job(
                    session, job, JobStatus.FAILED, error=stranded_reason(stale_s, requeues)
                )
                failed += 1
            else:
                name, kwargs = _job_task(session, job)
                # Sent before the count is committed: a refused send (the broker still away)
                # costs the job none of its re-queues, and ends this pass.
                try:
                    send_task(name, [], kwargs)
                except Exception:  # kombu raises several types for "broker unreachable"
                    log.exception("reconcile: could not send a task", job_id=job_id)
                    return requeued, failed
                job.params = {**job.params, "requeues": requeues + 1}
                deliveries = []
                requeued += 1
        send_deliveries(deliveries)
        log.warning("reconcile: stranded job", job_id=job_id, requeued=not deliveries)
    return requeued, failed


def _orphan_images(sessions: sessionmaker[Session], *, stale_s: int, batch: int) -> int:
    cutoff = utcnow() - timedelta(seconds=stale_s)
    live_item = (
        select(JobItem.id)
        .join(Job, JobItem.job_id == Job.id)
        .where(
            JobItem.image_id == Image.id,
            JobItem.status == ItemStatus.PENDING,
            Job.status.in_(LIVE_STATUSES),
        )
    )
    with session_scope(sessions) as session:
        image_ids = list(
            session.scalars(
                select(Image.id)
                .where(
                    Image.status == ImageStatus.PENDING,
                    Image.created_at < cutoff,
                    ~exists(live_item),
                )
                .order_by(Image.id)
                .limit(batch)
                .with_for_update(skip_locked=True)
            )
        )
        if image_ids:
            session.execute(
                update(Image)
                .where(Image.id.in_(image_ids), Image.status == ImageStatus.PENDING)
                .values(status=ImageStatus.FAILED, error=image_reason(ORPHAN_REASON))
            )
    if image_ids:
        log.warning("reconcile: images no job will process", images=len(image_ids))
    return len(image_ids)


def _unindexed_faces(sessions: sessionmaker[Session], send_task: SendTask, *, stale_s: int) -> int:
    cutoff = utcnow() - timedelta(seconds=stale_s)
    with session_scope(sessions) as session:
        rows = session.execute(
            select(Face.model_name, func.count())
            .where(Face.indexed_at.is_(None), Face.created_at < cutoff)
            .group_by(Face.model_name)
        ).all()
    for model_name, faces in rows:
        send_task(INDEX_TASK, [model_name], {"job_id": None})
        log.warning("reconcile: faces not indexed", model=model_name, faces=faces)
    return sum(int(faces) for _, faces in rows)


def _owed_vector_deletions(
    sessions: sessionmaker[Session], send_task: SendTask, *, stale_s: int, batch: int
) -> int:
    """Ask the index writer again for vector deletions still owed ``stale_s`` after they
    were asked for (the message was lost, or the writer failed); each counts as asked anew."""
    cutoff = utcnow() - timedelta(seconds=stale_s)
    with session_scope(sessions) as session:
        rows = session.execute(
            select(VectorDeletion.id, VectorDeletion.model_name, VectorDeletion.face_id)
            .where(VectorDeletion.created_at < cutoff)
            .order_by(VectorDeletion.id)
            .limit(batch)
        ).all()
        by_model: dict[str, list[int]] = defaultdict(list)
        for _, model_name, face_id in rows:
            by_model[model_name].append(int(face_id))
        for model_name, face_ids in sorted(by_model.items()):
            send_task(DELETE_VECTORS_TASK, [model_name, face_ids], {})
        session.execute(
            update(VectorDeletion)
            .where(VectorDeletion.id.in_([row.id for row in rows]))
            .values(created_at=utcnow())
        )
    if rows:
        log.warning("reconcile: vector deletions asked again", vectors=len(rows))
    return len(rows)


def reconcile(
    *,
    sessions: sessionmaker[Session],
    send_task: SendTask,
    send_deliveries: SendDeliveries,
    stale_s: int,
    max_requeues: int,
    batch: int,
) -> dict[str, int]:
    """One pass; returns what it found and did: jobs re-queued and failed, images failed,
    faces sent to the index, vector deletions asked again."""
    requeued, failed = _stale_jobs(
        sessions,
        send_task,
        send_deliveries,
        stale_s=stale_s,
        max_requeues=max_requeues,
        batch=batch,
    )
    report = {
        "jobs_requeued": requeued,
        "jobs_failed": failed,
        "images_failed": _orphan_images(sessions, stale_s=stale_s, batch=batch),
        "faces_to_index": _unindexed_faces(sessions, send_task, stale_s=stale_s),
        "vector_deletions": _owed_vector_deletions(
            sessions, send_task, stale_s=stale_s, batch=batch
        ),
    }
    log.info("reconcile: done", **report)
    return report
