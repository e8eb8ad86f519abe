"""What every task shares: which errors are worth a retry and for how long, how often one
message may be delivered, and how a job is failed."""

from __future__ import annotations

from typing import Any

import sqlalchemy.exc
from celery import Task
from sqlalchemy.orm import Session, sessionmaker

from core.index import VectorIndexError
from core.logging import get_logger
from core.queue import queue_deliveries
from core.settings import get_settings
from core.storage import StorageError
from models import Job, JobStatus
from models.db import session_scope
from services.jobs import close_job
from workers import runtime
from workers.archive_reader import ReaderExitedError

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
    # An archive's reader process killed (out of memory, say): the rerun resumes after what
    # it recorded.
    ReaderExitedError,
)

# The wait before retry n (from 0) is RETRY_BACKOFF_S * 2**n, at most RETRY_MAX_DELAY_S:
# 2, 4, 8, 16, 32, then 60 s. No jitter, so that the total is what TASK_RETRY_FOR_S says.
RETRY_BACKOFF_S = 2
RETRY_MAX_DELAY_S = 60
# Delivery counts kept per job: its latest messages (an archive's continuations are new ones).
TRACKED_MESSAGES = 16


def retries_for(total_s: float, *, backoff_s: int = RETRY_BACKOFF_S) -> int:
    """How many retries, with the waits above, it takes to keep trying for ``total_s``."""
    retries, waited = 0, 0.0
    while waited < total_s:
        waited += min(backoff_s * 2**retries, RETRY_MAX_DELAY_S)
        retries += 1
    return retries


def dead_letter_reason(deliveries: int) -> str:
    return (
        f"gave up after {deliveries} deliveries of the same task: each one stopped before it "
        "finished (its worker was killed while running it, or it ran past the time limit)"
    )


def fail_job(job_id: str, message: str, sessions: sessionmaker[Session] | None = None) -> list[str]:
    """Fail a job with ``message`` unless it already finished (``services.jobs.close_job``).
    Returns the webhook deliveries to send after this commit."""
    with session_scope(sessions or runtime.get_session_factory()) as session:
        job = session.get(Job, job_id)
        if job is None:
            return []
        return close_job(session, job, JobStatus.FAILED, error=message)


def count_delivery(
    sessions: sessionmaker[Session], job_id: str, message: str, max_deliveries: int
) -> tuple[bool, list[str]]:
    """Count one delivery of task message ``message`` (its id and retry number) on its job.
    Past ``max_deliveries`` the job is failed with the reason (dead-lettered): returns False
    and the deliveries to send; the message is then acknowledged without running.

    The count lives on the job row (``params["deliveries"]``): Postgres or SQLite is there in
    every mode, unlike Redis, and a message redelivered after its worker died has the same
    id and retry number, while a retry or a continuation is a new count."""
    with session_scope(sessions) as session:
        job = session.get(Job, job_id, with_for_update=True)
        if job is None or job.status.finished:
            return True, []  # the task itself finds nothing to do
        # [message, count] pairs, oldest first: a list, since a JSONB object keeps no order
        # and the oldest are the ones let go.
        counts = [(str(m), int(n)) for m, n in job.params.get("deliveries") or []]
        count = next((n for m, n in counts if m == message), 0) + 1
        counts = [(m, n) for m, n in counts if m != message] + [(message, count)]
        job.params = {
            **job.params,
            "deliveries": [list(pair) for pair in counts[-TRACKED_MESSAGES:]],
        }
        if count <= max_deliveries:
            return True, []
        log.error("task dead-lettered", job_id=job_id, message=message, deliveries=count)
        deliveries = close_job(
            session, job, JobStatus.FAILED, error=dead_letter_reason(max_deliveries)
        )
        return False, deliveries


class JobTask(Task):
    """Task defaults: acknowledged late, retried with backoff on transient errors only for
    TASK_RETRY_FOR_S, a message delivered more than TASK_MAX_DELIVERIES times dead-lettered,
    and a job that cannot be finished marked failed with a readable reason."""

    acks_late = True
    autoretry_for = TRANSIENT_ERRORS
    retry_backoff = RETRY_BACKOFF_S
    retry_backoff_max = RETRY_MAX_DELAY_S
    retry_jitter = False
    max_retries = retries_for(get_settings().task_retry_for_s)

    def job_id_of(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
        """The job a call works for; tasks that have one pass it as ``job_id``."""
        return kwargs.get("job_id")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        request = self.request
        job_id = self.job_id_of(args, kwargs)
        if job_id and request.id and not request.called_directly:
            try:
                admitted, deliveries = count_delivery(
                    runtime.get_session_factory(),
                    job_id,
                    f"{request.id}:{request.retries or 0}",
                    get_settings().task_max_deliveries,
                )
            except TRANSIENT_ERRORS:
                admitted, deliveries = True, []  # the task meets it too, and is retried
            if not admitted:
                queue_deliveries(self.app, deliveries)
                return None
        return super().__call__(*args, **kwargs)

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
        if not job_id:
            return
        if isinstance(exc, TRANSIENT_ERRORS):
            message = (
                f"gave up after retrying for {get_settings().task_retry_for_s} s: "
                f"{type(exc).__name__}: {exc}"
            )
        else:
            message = f"internal error: {type(exc).__name__}: {exc}"
        try:
            queue_deliveries(self.app, fail_job(job_id, message))
        except Exception:  # the database itself may be what failed; the log has it
            log.exception("could not record the failure on the job", job_id=job_id)
