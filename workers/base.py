"""What every task shares: which errors are worth a retry, and how a job is failed."""

from __future__ import annotations

from typing import Any

import sqlalchemy.exc
from celery import Task

from core.index import VectorIndexError
from core.logging import get_logger
from core.queue import queue_deliveries
from core.storage import StorageError
from models import Job, JobStatus, Search
from models.db import session_scope
from services.events import record_job_event, record_search_events
from workers import runtime

log = get_logger(__name__)

# Errors that a later attempt may not meet: a database, store or index that is briefly away.
# Everything else is a fact about the input and is recorded on the job instead of retried.
# (ObjectNotFound is a StorageError, but tasks catch it themselves before it gets here.)
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    StorageError,
    VectorIndexError,
    ConnectionError,
    TimeoutError,
)


def fail_job(job_id: str, message: str) -> list[str]:
    """Mark a job (and its search, if any) failed, unless it already finished. Returns the
    webhook deliveries (search.failed, job.completed) to send after this commit."""
    with session_scope(runtime.get_session_factory()) as session:
        job = session.get(Job, job_id)
        if job is None or job.status.finished:
            return []
        job.finish(JobStatus.FAILED, error=message)
        search = session.query(Search).filter_by(job_id=job_id).one_or_none()
        if search is not None and not search.status.finished:
            search.status = JobStatus.FAILED
            search.error = message
            search.finished_at = job.finished_at
            return record_search_events(session, search)
        return record_job_event(session, job)


class JobTask(Task):
    """Task defaults: acknowledged late, retried with backoff on transient errors only, and
    a job that cannot be finished is marked failed with a readable reason."""

    acks_late = True
    autoretry_for = TRANSIENT_ERRORS
    retry_backoff = 2
    retry_backoff_max = 120
    retry_jitter = True
    max_retries = 5

    def job_id_of(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
        """The job a call works for; tasks that have one pass it as ``job_id``."""
        return kwargs.get("job_id")

    def on_failure(
        self,
        exc: BaseException,
        task_id: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        einfo: Any,
    ) -> None:
        job_id = self.job_id_of(tuple(args), dict(kwargs))
        log.error("task failed", task=self.name, job_id=job_id, error=repr(exc))
        if job_id:
            try:
                deliveries = fail_job(job_id, f"internal error: {type(exc).__name__}: {exc}")
                queue_deliveries(self.app, deliveries)
            except Exception:  # the database itself may be what failed; the log has it
                log.exception("could not record the failure on the job", job_id=job_id)
