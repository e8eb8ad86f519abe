"""The index writer: copies faces from Postgres into Milvus. One consumer only.

Postgres is the record; Milvus is derived. A face whose ``indexed_at`` is null is not yet
searchable, and this task is what changes that. Upserting by face id makes a rerun harmless.
A rebuild (:func:`run_reindex`) fills a new collection in bounded runs while searches keep
reading the old one, then switches an alias (``core.index``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from core.index import VectorIndex
from core.logging import get_logger
from core.queue import SEARCH_QUEUE
from models import (
    Face,
    Image,
    ItemStatus,
    Job,
    JobItem,
    JobKind,
    JobStatus,
    ServedVersion,
    VectorDeletion,
    refresh_progress,
    utcnow,
)
from models.db import session_scope
from models.embedding import model_of
from services.jobs import close_job
from workers.webhooks import SendDeliveries

log = get_logger(__name__)

# How long one reindex run copies before it queues its continuation. The index queue has
# one consumer (the single writer): index tasks sent meanwhile run before the continuation,
# so new faces wait at most this long behind a rebuild, and no run nears a time limit.
REINDEX_BUDGET_S = 30.0


class WriteSpacing:
    """At most one index write per interval in this process (the single writer's).

    A write to milvus-lite is flushed at once (an unflushed row is brute-forced by every
    search and may not survive a crash; faces are marked indexed only once flushed), and a
    flush costs the server far more than the rows: with one write per finished job, uploads
    of 32 files each cost milvus-lite 21.6 CPU-seconds over LFW, on the two cores the model
    needs. A write that comes sooner than the interval after the last waits for the rest of
    it, and then takes whatever faces arrived meanwhile too: one flush, not several.
    """

    def __init__(self) -> None:
        self._last = -math.inf

    def wait(self, interval_s: float) -> bool:
        """Sleep until ``interval_s`` after the last write; whether it slept."""
        pause = self._last + interval_s - time.monotonic()
        if pause <= 0:
            return False
        time.sleep(pause)
        return True

    def wrote(self) -> None:
        self._last = time.monotonic()


WRITE_SPACING = WriteSpacing()


def write_interval(
    queues: str | None, *, index: Callable[[], VectorIndex], interval_s: float
) -> float:
    """The spacing for an index writer consuming ``queues`` (comma-separated; None: not
    known): ``interval_s`` for a milvus-lite index (``index`` is opened only to ask) written
    by a process that serves no searches, else 0. A search must never wait behind the
    pause, and a Milvus server is not flushed after each write."""
    if queues is None or SEARCH_QUEUE in queues.split(","):
        return 0.0
    return interval_s if index().lite else 0.0


def index_pending(
    model_name: str,
    *,
    sessions: sessionmaker[Session],
    index: VectorIndex,
    batch_size: int,
    min_interval_s: float = 0.0,
) -> int:
    """Index every face of ``model_name`` not yet in Milvus; return how many were written.

    Batches are read in id order after the last id written (keyset). Reading "the first
    unindexed faces" from the start each time would walk, in ``ix_faces_unindexed_by_id``,
    past the entries of every face this run has already marked until vacuum removes them:
    each batch costlier than the last (at 1M faces the writer slowed to well under 1,000
    faces/s). A face committed late with an id below the cursor (its ingest began earlier)
    is caught by one more pass from the start once the cursor runs out.

    ``min_interval_s``: at most one write per this many seconds (``WriteSpacing``); only for
    a process that serves no searches, which would wait behind the pause.
    """
    written = 0
    after = 0
    while True:
        with session_scope(sessions) as session:
            rows = session.execute(
                select(Face.id, Face.embedding, Face.dim, Face.image_id, Image.gallery_id)
                .join(Image, Face.image_id == Image.id)
                .where(
                    Face.model_name == model_name,
                    Face.indexed_at.is_(None),
                    Face.id > after,
                )
                .order_by(Face.id)
                .limit(batch_size)
            ).all()
        if not rows:
            if after == 0:
                return written
            after = 0  # the pass from the start: faces committed behind the cursor
            continue
        if min_interval_s > 0 and len(rows) < batch_size and WRITE_SPACING.wait(min_interval_s):
            continue  # read again from the same place: what arrived meanwhile joins this write
        after = rows[-1].id
        dims = {row.dim for row in rows}
        if len(dims) != 1:
            raise ValueError(f"faces of model {model_name} have several dimensions: {dims}")
        index.ensure_collection(model_name, dims.pop())
        face_ids = [row.id for row in rows]
        vectors = np.stack([np.frombuffer(row.embedding, dtype="<f4") for row in rows])
        index.upsert(
            model_name,
            face_ids=face_ids,
            vectors=vectors,
            image_ids=[row.image_id for row in rows],
            gallery_ids=[row.gallery_id for row in rows],
        )
        WRITE_SPACING.wrote()
        # Only after Milvus has them: a crash in between re-sends, never loses.
        with session_scope(sessions) as session:
            session.execute(update(Face).where(Face.id.in_(face_ids)).values(indexed_at=utcnow()))
        written += len(face_ids)
        log.info("index: batch written", model=model_name, faces=len(face_ids), total=written)


def record_first_version(session: Session, version: str) -> None:
    """Serve searches from ``version`` if its model has no served version yet: a new
    install's first faces. Never a switch: only ``facesearch reembed`` moves a model from
    one version to another, once the new one covers every image."""
    model = model_of(version)
    if session.get(ServedVersion, model) is None:
        session.add(ServedVersion(model_name=model, version=version))
        log.info("index: serving the first embedding version", model=model, version=version)


def finish_ingest_job(session: Session, job_id: str) -> list[str]:
    """Close an ingest job once nothing of it is pending; its result lists what it made.
    Returns the webhook deliveries (job.completed) to send after the commit."""
    job = session.get(Job, job_id)
    if job is None or job.status.finished:
        return []
    if job.kind == JobKind.ARCHIVE and not job.params.get("scanned"):
        return []  # members are still being read from the archive: more items will come
    refresh_progress(session, job)
    pending = job.total - job.done - job.failed - job.skipped
    if pending:
        return []  # the ingest task is still at work (or will be redelivered)
    image_ids = session.scalars(
        select(JobItem.image_id)
        .where(
            JobItem.job_id == job_id,
            JobItem.image_id.is_not(None),
            JobItem.status.in_([ItemStatus.SUCCEEDED, ItemStatus.SKIPPED]),
        )
        .order_by(JobItem.position)
    ).all()
    faces = session.scalar(
        select(func.count(Face.id)).where(
            Face.image_id.in_(
                select(JobItem.image_id).where(
                    JobItem.job_id == job_id, JobItem.status == ItemStatus.SUCCEEDED
                )
            )
        )
    )
    job.result = {"image_ids": list(image_ids), "faces": int(faces or 0)}
    return close_job(session, job)


def run_index(
    model_name: str,
    job_id: str | None,
    *,
    sessions: sessionmaker[Session],
    index: VectorIndex,
    batch_size: int,
    send_deliveries: SendDeliveries | None = None,
    min_interval_s: float = 0.0,
) -> None:
    written = index_pending(
        model_name,
        sessions=sessions,
        index=index,
        batch_size=batch_size,
        min_interval_s=min_interval_s,
    )
    if written:
        with session_scope(sessions) as session:
            record_first_version(session, model_name)
    if job_id is not None:
        with session_scope(sessions) as session:
            deliveries = finish_ingest_job(session, job_id)
        if deliveries and send_deliveries is not None:
            send_deliveries(deliveries)


def delete_vectors(
    model_name: str,
    face_ids: Sequence[int],
    *,
    index: VectorIndex,
    sessions: sessionmaker[Session] | None = None,
) -> None:
    """Remove the vectors, then what is owed of them (``models.vector_deletion``): a crash
    in between asks again, and deleting a missing vector is harmless."""
    index.delete(model_name, list(face_ids))
    if sessions is not None and face_ids:
        with session_scope(sessions) as session:
            session.execute(
                delete(VectorDeletion).where(
                    VectorDeletion.model_name == model_name,
                    VectorDeletion.face_id.in_([int(i) for i in face_ids]),
                )
            )


def run_reindex(
    job_id: str,
    *,
    sessions: sessionmaker[Session],
    index: VectorIndex,
    batch_size: int,
    budget_s: float | None = None,
    continue_later: Callable[[], None] | None = None,
    send_deliveries: SendDeliveries | None = None,
) -> None:
    """One bounded run of a rebuild of every model's index from Postgres, with no downtime.

    Per model: a new collection is made behind the building alias (so the index writer's
    upserts and deletes reach it as well as the live one), filled from Postgres in id order
    a page at a time, then the live alias is moved to it in one call and the old collection
    dropped. Searches read the live alias throughout, so they answer from a complete
    collection before, during and after. The cursor (last face id copied) is kept in the
    job's params after every page: a run that spends ``budget_s`` sends its continuation
    (``continue_later``) and a killed run resumes from its last page. Without
    ``continue_later`` it runs to the end (the benchmark, a one-off call).
    """
    deadline = time.monotonic() + budget_s if budget_s is not None and continue_later else None
    with session_scope(sessions) as session:
        job = session.get(Job, job_id)
        if job is None or job.status.finished:
            return
        job.start()
        state: dict[str, dict[str, Any]] = job.params.get("rebuild") or {}
        if not state:
            model_names = session.scalars(
                select(Face.model_name).distinct().order_by(Face.model_name)
            ).all()
            state = {name: {"after": 0, "written": 0} for name in model_names}
            job.total = int(session.scalar(select(func.count(Face.id))) or 0)
            job.params = {**job.params, "rebuild": state}
    for model_name in sorted(state):
        if not _rebuild_model(
            job_id,
            model_name,
            state,
            sessions=sessions,
            index=index,
            batch_size=batch_size,
            deadline=deadline,
        ):
            assert continue_later is not None  # a deadline is only set with a continuation
            continue_later()
            return
    with session_scope(sessions) as session:
        job = session.get_one(Job, job_id)
        if job.status.finished:
            return
        counts = {name: int(progress.get("count", 0)) for name, progress in state.items()}
        job.total = job.done = sum(counts.values())
        job.result = {"faces_indexed": counts}
        deliveries = close_job(session, job, JobStatus.SUCCEEDED)
    if deliveries and send_deliveries is not None:
        send_deliveries(deliveries)


def _rebuild_model(
    job_id: str,
    model_name: str,
    state: dict[str, dict[str, Any]],
    *,
    sessions: sessionmaker[Session],
    index: VectorIndex,
    batch_size: int,
    deadline: float | None,
) -> bool:
    """Copy the model's faces past the cursor into its new collection, then switch; False
    when the deadline came first (the cursor is saved)."""
    progress = state[model_name]
    while not progress.get("switched"):
        collection = progress.get("collection")
        if collection is None:
            with session_scope(sessions) as session:
                dim = session.scalar(select(Face.dim).where(Face.model_name == model_name).limit(1))
            if dim is None:  # every face of the model was erased meanwhile
                progress["switched"] = True
            else:
                progress["collection"] = index.begin_rebuild(model_name, int(dim))
            _save(sessions, job_id, state)
            continue
        with session_scope(sessions) as session:
            rows = session.execute(
                select(Face.id, Face.embedding, Face.dim, Face.image_id, Image.gallery_id)
                .join(Image, Face.image_id == Image.id)
                .where(Face.model_name == model_name, Face.id > int(progress["after"]))
                .order_by(Face.id)
                .limit(batch_size)
            ).all()
        if not rows:
            index.finish_rebuild(model_name, str(collection))
            progress["switched"] = True
            # What the new collection holds: the copy, plus faces indexed meanwhile, less
            # faces erased meanwhile.
            progress["count"] = index.count(model_name)
            _save(sessions, job_id, state)
            log.info("reindex: switched", model=model_name, collection=collection)
            return True
        face_ids = [row.id for row in rows]
        index.upsert_into(
            str(collection),
            face_ids=face_ids,
            vectors=np.stack([np.frombuffer(row.embedding, dtype="<f4") for row in rows]),
            image_ids=[row.image_id for row in rows],
            gallery_ids=[row.gallery_id for row in rows],
        )
        # A face read above and erased before this write was deleted from the live and the
        # building collection already, and the write just brought it back: ask again.
        with session_scope(sessions) as session:
            kept = set(session.scalars(select(Face.id).where(Face.id.in_(face_ids))))
        index.delete_from(str(collection), [i for i in face_ids if i not in kept])
        progress["after"] = face_ids[-1]
        progress["written"] = int(progress["written"]) + len(kept)
        _save(sessions, job_id, state, done=len(kept))
        if deadline is not None and time.monotonic() >= deadline:
            return False
    return True


def _save(
    sessions: sessionmaker[Session], job_id: str, state: dict[str, dict[str, Any]], done: int = 0
) -> None:
    """The rebuild's cursor into the job's params (a new dict: JSON columns track
    assignment, not mutation); this also marks the job as making progress."""
    with session_scope(sessions) as session:
        job = session.get_one(Job, job_id)
        job.params = {**job.params, "rebuild": {k: dict(v) for k, v in state.items()}}
        job.done += done
