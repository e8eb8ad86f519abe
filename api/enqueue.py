"""Sending tasks: only after the rows they read are committed, and never silently lost."""

from __future__ import annotations

from typing import Any

from api.context import db, services
from api.errors import ApiError
from core.logging import get_logger
from core.queue import queue_deliveries
from models import Job, JobStatus
from services.events import record_job_event

log = get_logger(__name__)

# A broker that is down should fail the request in seconds, not hang it.
SEND_RETRY_POLICY = {"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5}


def finish_job_now(job: Job, status: JobStatus | None = None, *, error: str | None = None) -> None:
    """Close a job in the API itself (nothing left for a worker to do) and tell the webhook
    subscribers, as a worker would: the event is recorded in the same commit, sent after it."""
    session = db()
    job.finish(status, error=error)
    deliveries = record_job_event(session, job)
    session.commit()
    queue_deliveries(services().celery, deliveries)


def send_after_commit(job: Job, task_name: str, **kwargs: Any) -> None:
    """Commit the request's session, then send the task. If the broker refuses, the job is
    marked failed (so no client polls a job that will never run) and the client gets 503."""
    session = db()
    session.commit()
    try:
        services().celery.send_task(
            task_name, kwargs=kwargs, retry=True, retry_policy=SEND_RETRY_POLICY
        )
    except Exception as exc:  # kombu raises several types for "broker unreachable"
        log.exception("could not send task", task=task_name, job_id=job.id)
        job.finish(
            JobStatus.FAILED, error=f"could not queue the job: the broker is unavailable ({exc})"
        )
        session.commit()
        raise ApiError(
            503, "the task queue is unavailable; try again shortly", details={"job_id": job.id}
        ) from exc
