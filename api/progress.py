"""A job's progress as clients see it: counters, throughput and an honest time estimate."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from models import Job, JobKind, utcnow


def job_progress(job: Job) -> dict[str, Any]:
    """Counters, plus items finished per second since the job started and the seconds left.

    An archive's total is only known once the whole archive has been read; until then the
    estimate is left out rather than guessed (``total_known`` says which).
    """
    total_known = job.kind != JobKind.ARCHIVE or bool((job.params or {}).get("scanned"))
    finished = job.done + job.failed + job.skipped
    rate: float | None = None
    if job.started_at is not None and finished:
        end = job.finished_at or utcnow()
        elapsed = (_naive(end) - _naive(job.started_at)).total_seconds()
        rate = round(finished / elapsed, 2) if elapsed > 0 else None
    eta: float | None = None
    if total_known and rate and not job.status.finished:
        eta = round(max(job.total - finished, 0) / rate, 1)
    return {
        "total": job.total,
        "done": job.done,
        "failed": job.failed,
        "skipped": job.skipped,
        "total_known": total_known,
        "images_per_s": rate,
        "eta_s": eta,
    }


def _naive(moment: datetime) -> datetime:
    # Times are stored in UTC; compare them without caring whether tzinfo survived the trip.
    return moment.replace(tzinfo=None)
