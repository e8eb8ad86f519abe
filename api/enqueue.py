"""Sending tasks: only after the rows they read are committed, and never silently lost."""

from __future__ import annotations

from typing import Any

from api.context import db, services
from api.errors import ApiError
from core.logging import get_logger
from core.queue import DELETE_VECTORS_TASK, queue_deliveries
from models import Job, JobKind, JobStatus
from services.erasure import Erasure, queue_vector_deletions, remove_unused_objects
from services.jobs import close_job

log = get_logger(__name__)

# A broker that is down should fail the request in seconds, not hang it.
SEND_RETRY_POLICY = {"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5}


def finish_job_now(job: Job, status: JobStatus | None = None, *, error: str | None = None) -> None:
    """Close a job in the API itself (``services.jobs.close_job``) and tell the webhook
    subscribers, as a worker would: the event is recorded in the same commit, sent after it."""
    deliveries = close_job(db(), job, status, error=error)
    db().commit()
    queue_deliveries(services().celery, deliveries)


def send_after_commit(job: Job, task_name: str, **kwargs: Any) -> None:
    """Commit the request's session, then send the task; if the broker refuses, answer 503.

    A search is failed then (an answer minutes late is no answer). Other jobs stay queued:
    what they were given is already stored, and the reconciler sends their task again once
    the broker is back (``workers.reconcile``), so no accepted image stays pending."""
    session = db()
    session.commit()
    try:
        services().celery.send_task(
            task_name, kwargs=kwargs, retry=True, retry_policy=SEND_RETRY_POLICY
        )
    except Exception as exc:  # kombu raises several types for "broker unreachable"
        log.exception("could not send task", task=task_name, job_id=job.id)
        if job.kind == JobKind.SEARCH:
            finish_job_now(
                job,
                JobStatus.FAILED,
                error=f"could not queue the search: the broker is unavailable ({exc})",
            )
            message = "the task queue is unavailable; try again shortly"
        else:
            message = (
                "the task queue is unavailable; the job stays queued and is sent again "
                "automatically once it is back (poll it, or retry with the same Idempotency-Key)"
            )
        raise ApiError(503, message, details={"job_id": job.id}) from exc


def commit_erasure(erasure: Erasure) -> int:
    """Finish an erasure the request made: the bytes no row uses any more go before the
    commit (a store that fails rolls everything back, and the answer is 503), the vectors
    after it (owed in the database with the erasure: the reconciler asks again for any the
    broker did not take). Returns how many objects were deleted."""
    session = db()
    objects = remove_unused_objects(session, services().store, erasure.object_keys)
    session.commit()
    celery = services().celery
    queue_vector_deletions(
        lambda model_name, face_ids: celery.send_task(
            DELETE_VECTORS_TASK,
            args=[model_name, face_ids],
            retry=True,
            retry_policy=SEND_RETRY_POLICY,
        ),
        erasure.vectors,
    )
    return objects
