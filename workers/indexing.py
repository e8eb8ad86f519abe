"""The index writer: copies faces from Postgres into Milvus. One consumer only.

Postgres is the record; Milvus is derived. A face whose ``indexed_at`` is null is not yet
searchable, and this task is what changes that. Upserting by face id makes a rerun harmless.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from core.index import VectorIndex
from core.logging import get_logger
from models import (
    Face,
    Image,
    ItemStatus,
    Job,
    JobItem,
    JobKind,
    JobStatus,
    VectorDeletion,
    refresh_progress,
    utcnow,
)
from models.db import session_scope
from services.jobs import close_job
from workers.webhooks import SendDeliveries

log = get_logger(__name__)


def index_pending(
    model_name: str, *, sessions: sessionmaker[Session], index: VectorIndex, batch_size: int
) -> int:
    """Index every face of ``model_name`` not yet in Milvus; return how many were written."""
    written = 0
    while True:
        with session_scope(sessions) as session:
            rows = session.execute(
                select(Face.id, Face.embedding, Face.dim, Face.image_id, Image.gallery_id)
                .join(Image, Face.image_id == Image.id)
                .where(Face.model_name == model_name, Face.indexed_at.is_(None))
                .order_by(Face.id)
                .limit(batch_size)
            ).all()
        if not rows:
            return written
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
        # Only after Milvus has flushed them: a crash in between re-sends, never loses.
        with session_scope(sessions) as session:
            session.execute(update(Face).where(Face.id.in_(face_ids)).values(indexed_at=utcnow()))
        written += len(face_ids)
        log.info("index: batch written", model=model_name, faces=len(face_ids), total=written)


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
) -> None:
    index_pending(model_name, sessions=sessions, index=index, batch_size=batch_size)
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
    send_deliveries: SendDeliveries | None = None,
) -> None:
    """Rebuild the index of every model from Postgres: drop, mark unindexed, write again."""
    with session_scope(sessions) as session:
        job = session.get(Job, job_id)
        if job is None or job.status.finished:
            return
        job.start()
        model_names = session.scalars(select(Face.model_name).distinct()).all()
    counts: dict[str, int] = {}
    for model_name in model_names:
        index.drop(model_name)
        with session_scope(sessions) as session:
            session.execute(
                update(Face).where(Face.model_name == model_name).values(indexed_at=None)
            )
        counts[model_name] = index_pending(
            model_name, sessions=sessions, index=index, batch_size=batch_size
        )
    with session_scope(sessions) as session:
        job = session.get_one(Job, job_id)
        job.total = job.done = sum(counts.values())
        job.result = {"faces_indexed": counts}
        deliveries = close_job(session, job, JobStatus.SUCCEEDED)
    if deliveries and send_deliveries is not None:
        send_deliveries(deliveries)
