"""Ingest: detect and embed the faces of a job's pending images, in batches.

Safe to run twice: only items still pending are processed, and an image's faces are
replaced, not appended, so a redelivered task leaves the same rows behind.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from core.images import InvalidImageError, decode_rgb
from core.logging import get_logger
from core.storage import ObjectNotFound, ObjectStore
from models import (
    Face,
    Image,
    ImageStatus,
    ItemStatus,
    Job,
    JobItem,
    refresh_progress,
    vector_to_bytes,
)
from models.db import session_scope
from workers.pipeline import Face as DetectedFace
from workers.pipeline import FacePipeline

log = get_logger(__name__)

NO_FACE_REASON = "no face found in the image"

# (model name, job id or None) -> send the index task. The job id asks the indexer to close
# the job once its faces are searchable.
IndexRequest = Callable[[str, str | None], None]


@dataclass(frozen=True)
class PendingItem:
    item_id: int
    image_id: int | None  # None: the image was deleted before it was processed
    object_key: str | None
    image_status: ImageStatus | None = None


def _claim_pending(session: Session, job_id: str, limit: int) -> list[PendingItem]:
    """The next pending items, locked for this transaction. SKIP LOCKED lets several workers
    share one job (an archive) without taking the same items; SQLite ignores the clause,
    which is fine for its single embedded worker."""
    rows = session.execute(
        select(JobItem.id, Image.id, Image.object_key, Image.status)
        .outerjoin(Image, JobItem.image_id == Image.id)
        .where(JobItem.job_id == job_id, JobItem.status == ItemStatus.PENDING)
        .order_by(JobItem.position)
        .limit(limit)
        .with_for_update(of=JobItem, skip_locked=True)
    ).all()
    return [PendingItem(*row) for row in rows]


def _already_processed(session: Session, batch: Sequence[PendingItem]) -> list[PendingItem]:
    """Items whose image another job processed meanwhile (the same bytes uploaded again while
    they were pending) take its outcome instead of processing it twice; the rest are left."""
    left = []
    for pending in batch:
        if pending.image_status not in (ImageStatus.READY, ImageStatus.NO_FACE):
            left.append(pending)
            continue
        item = session.get_one(JobItem, pending.item_id)
        if pending.image_status == ImageStatus.READY:
            item.status, item.error = ItemStatus.SUCCEEDED, None
        else:
            item.status, item.error = ItemStatus.FAILED, NO_FACE_REASON
    return left


def _load_batch(
    store: ObjectStore, batch: Sequence[PendingItem], max_pixels: int
) -> tuple[list[tuple[PendingItem, np.ndarray]], list[tuple[PendingItem, str]]]:
    """Fetch and decode each image; what cannot be decoded fails alone, with its reason."""
    decoded: list[tuple[PendingItem, np.ndarray]] = []
    failures: list[tuple[PendingItem, str]] = []
    for pending in batch:
        if pending.object_key is None:
            failures.append((pending, "the image was deleted before it was processed"))
            continue
        try:
            array = decode_rgb(store.get(pending.object_key), max_pixels=max_pixels)
        except ObjectNotFound:
            failures.append((pending, "the stored image bytes are missing"))
        except InvalidImageError as exc:
            failures.append((pending, exc.message))
        else:
            decoded.append((pending, array))
    return decoded, failures


def _detect_isolating_failures(
    pipeline: FacePipeline, arrays: Sequence[np.ndarray]
) -> list[list[DetectedFace] | Exception]:
    """One batched call; if it fails, one call per image so one bad image fails alone."""
    try:
        return list(pipeline.process(arrays))
    except ValueError:
        outcomes: list[list[DetectedFace] | Exception] = []
        for array in arrays:
            try:
                outcomes.append(pipeline.process([array])[0])
            except ValueError as exc:
                outcomes.append(exc)
        return outcomes


def _record_faces(
    session: Session, image: Image, faces: Sequence[DetectedFace], model_name: str
) -> None:
    # Replace, never append: a redelivered task must not leave duplicate faces.
    session.execute(delete(Face).where(Face.image_id == image.id, Face.model_name == model_name))
    for face_index, face in enumerate(faces):
        x, y, w, h = face.box
        session.add(
            Face(
                image_id=image.id,
                face_index=face_index,
                model_name=model_name,
                dim=int(face.embedding.shape[0]),
                embedding=vector_to_bytes(face.embedding),
                box_x=x,
                box_y=y,
                box_w=w,
                box_h=h,
                confidence=face.confidence,
                landmarks={k: list(v) for k, v in face.landmarks.items()},
            )
        )


def _record_outcome(
    session: Session, pending: PendingItem, faces: Sequence[DetectedFace], model_name: str
) -> None:
    image = session.get(Image, pending.image_id) if pending.image_id is not None else None
    item = session.get(JobItem, pending.item_id)
    if item is None:
        return  # the job was deleted while we worked
    if image is None:
        item.status, item.error = ItemStatus.FAILED, "the image was deleted while it was processed"
        return
    _record_faces(session, image, faces, model_name)
    image.status = ImageStatus.READY if faces else ImageStatus.NO_FACE
    image.error = None if faces else NO_FACE_REASON
    item.status = ItemStatus.SUCCEEDED if faces else ItemStatus.FAILED
    item.error = None if faces else NO_FACE_REASON


def _fail_item(session: Session, item_id: int, image_id: int | None, reason: str) -> None:
    item = session.get(JobItem, item_id)
    if item is not None:
        item.status = ItemStatus.FAILED
        item.error = reason
    image = session.get(Image, image_id) if image_id is not None else None
    if image is not None:
        image.status = ImageStatus.FAILED
        image.error = reason


def process_pending(
    job_id: str,
    *,
    sessions: sessionmaker[Session],
    store: ObjectStore,
    pipeline: FacePipeline,
    request_index: IndexRequest,
    batch_size: int,
    max_pixels: int,
    deadline: float | None = None,
    max_batches: int | None = None,
) -> bool:
    """Detect and embed the job's pending items, one batch per transaction.

    Returns True once no pending item is left, False when it stopped early: the job was
    cancelled (checked between batches), ``deadline`` (``time.monotonic()``) passed, or
    ``max_batches`` full batches were done. Each batch stays locked until its outcome is
    committed, so a killed worker's batch is simply pending again for the next one, and
    nothing is recorded twice.
    """
    batches = 0
    while True:
        with session_scope(sessions) as session:
            job = session.get(Job, job_id)
            if job is None or job.status.finished:
                return False  # deleted or cancelled: what was done is kept
            batch = _claim_pending(session, job_id, batch_size)
            if not batch:
                return True
            decoded, failures = _load_batch(store, _already_processed(session, batch), max_pixels)
            outcomes = _detect_isolating_failures(pipeline, [array for _, array in decoded])
            for (pending, _), outcome in zip(decoded, outcomes, strict=True):
                if isinstance(outcome, Exception):
                    failures.append((pending, f"the face pipeline could not process it: {outcome}"))
                else:
                    _record_outcome(session, pending, outcome, pipeline.model_name)
            for pending, reason in failures:
                _fail_item(session, pending.item_id, pending.image_id, reason)
            refresh_progress(session, job)
        log.info("ingest: batch done", job_id=job_id, images=len(batch), failed=len(failures))
        if len(batch) < batch_size:
            return True  # that was the last batch (the caller's final request covers it)
        # After the commit above (the indexer reads these rows), so that a long job's faces
        # become searchable while it runs.
        request_index(pipeline.model_name, None)
        batches += 1
        if deadline is not None and time.monotonic() >= deadline:
            return False
        if max_batches is not None and batches >= max_batches:
            return False


def run_ingest(
    job_id: str,
    *,
    sessions: sessionmaker[Session],
    store: ObjectStore,
    pipeline: FacePipeline,
    request_index: IndexRequest,
    batch_size: int,
    max_pixels: int,
) -> None:
    with session_scope(sessions) as session:
        job = session.get(Job, job_id)
        if job is None:
            log.warning("ingest: no such job", job_id=job_id)
            return
        if job.status.finished:
            log.info("ingest: job already finished", job_id=job_id, status=job.status)
            return
        job.start()

    drained = process_pending(
        job_id,
        sessions=sessions,
        store=store,
        pipeline=pipeline,
        request_index=request_index,
        batch_size=batch_size,
        max_pixels=max_pixels,
    )
    if drained:
        # The indexer closes the job once its faces are searchable.
        request_index(pipeline.model_name, job_id)
