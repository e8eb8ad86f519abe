"""Erasing a gallery, and purging expired searches: the task side of ``services.erasure``.

Both run in bounded transactions. Each one deletes rows, then the bytes no row uses any
more, then commits: a crash or a store error leaves rows to redo, never bytes without rows.
A redelivered task finds its work afresh and does nothing twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from core.logging import get_logger
from core.storage import ObjectStore
from models import Job, JobKind, JobStatus
from models.db import session_scope
from services.erasure import (
    SendTask,
    purge_expired_searches,
    queue_vector_deletions,
    remove_unused_objects,
)
from services.erasure import erase_gallery_step as next_step
from services.jobs import close_job

log = get_logger(__name__)


def _added(result: dict[str, Any], counts: dict[str, int]) -> dict[str, Any]:
    total = dict(result or {})
    for name, count in counts.items():
        total[name] = int(total.get(name, 0)) + count
    return total


def run_gallery_erasure(
    job_id: str,
    *,
    sessions: sessionmaker[Session],
    store: ObjectStore,
    send_vector_deletion: SendTask,
    continue_later: Callable[[], None],
    batch_size: int,
    budget_s: float,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Erase the gallery of an erase job, step by step. After ``budget_s`` the rest is
    left to a new message (``continue_later``); the last step closes the job with what was
    removed, counted in ``job.result``. No webhook event is recorded: the gallery's
    subscriptions are erased with it."""
    started = clock()
    with session_scope(sessions) as session:
        job = session.get(Job, job_id)
        if job is None or job.kind != JobKind.ERASE_GALLERY or job.status.finished:
            log.info("erase gallery: nothing to do", job_id=job_id)
            return
        job.start()
        gallery_id = int(job.params["gallery_id"])

    while True:
        with session_scope(sessions) as session:
            # The job's row lock: two deliveries of this task take turns, never interleave.
            job = session.get_one(Job, job_id, with_for_update=True)
            if job.status.finished:
                return
            step = next_step(session, gallery_id=gallery_id, erase_job_id=job_id, batch=batch_size)
            objects = remove_unused_objects(session, store, step.erasure.object_keys)
            counts = dict(step.removed)
            if objects:
                counts["objects"] = objects
            job.result = _added(job.result, counts)
            if step.finished:
                job.gallery_id = None  # the gallery is gone: no event is recorded
                job.done = 1
                close_job(session, job, JobStatus.SUCCEEDED)
        # After the commit: a vector without its row is ignored by searches, never the reverse.
        queue_vector_deletions(send_vector_deletion, step.erasure.vectors)
        log.info("erase gallery: step", job_id=job_id, gallery_id=gallery_id, **counts)
        if step.finished:
            log.info("erase gallery: done", job_id=job_id, gallery_id=gallery_id)
            return
        if clock() - started >= budget_s:
            continue_later()
            return


def run_search_purge(
    *,
    sessions: sessionmaker[Session],
    store: ObjectStore,
    retention_days: int,
    batch_size: int,
    max_batches: int | None = None,
) -> dict[str, int]:
    """Erase the searches older than ``retention_days`` (with their query bytes unless still
    used, and the webhook events about them), ``batch_size`` per transaction. Returns what
    was removed."""
    totals = {"searches": 0, "matches": 0, "webhook_events": 0, "objects": 0}
    batches = 0
    while max_batches is None or batches < max_batches:
        with session_scope(sessions) as session:
            erasure = purge_expired_searches(
                session, retention_days=retention_days, limit=batch_size
            )
            objects = remove_unused_objects(session, store, erasure.object_keys)
        if not erasure.searches:
            break
        batches += 1
        totals["searches"] += erasure.searches
        totals["matches"] += erasure.matches
        totals["webhook_events"] += erasure.webhook_events
        totals["objects"] += objects
    if totals["searches"]:
        log.info("retention: searches purged", retention_days=retention_days, **totals)
    return totals
