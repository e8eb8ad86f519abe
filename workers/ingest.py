"""Ingest: detect and embed the faces of a job's pending images, in batches.

Safe to run twice: only items still pending are processed, and an image's faces are
replaced, not appended, so a redelivered task leaves the same rows behind.

The model is kept busy (``workers.loader``): while it works on one batch, a loader thread
has already claimed the next, fetched its bytes (or taken them from what the worker holds)
and decoded them on CPU threads. Each batch is written in a handful of statements (faces in
one insert, items and images in one update each, the job's counters by increment).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from core.logging import get_logger
from core.storage import ObjectStore
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
from models.face import prominent_face
from workers.held_bytes import HeldBytes
from workers.loader import NO_FACE_REASON, BatchLoader, Loaded, PendingItem
from workers.pipeline import Face as DetectedFace
from workers.pipeline import FacePipeline
from workers.stages import STAGE_TIMES

log = get_logger(__name__)

__all__ = ["NO_FACE_REASON", "IndexRequest", "PendingItem", "process_pending", "run_ingest"]

# (model name, job id or None) -> send the index task. The job id asks the indexer to close
# the job once its faces are searchable.
IndexRequest = Callable[[str, str | None], None]

# While a job runs, its faces are handed to the index writer at most this often. Once a
# batch was enough when a batch took a second; with a fast model (or the stand-in) batches
# come ten times a second, and each request is a task for the single index writer.
INDEX_REQUEST_INTERVAL_S = 1.0


def _detect_isolating_failures(
    pipeline: FacePipeline, arrays: Sequence[object]
) -> list[list[DetectedFace] | Exception]:
    """One batched call; if it fails, one call per image so one bad image fails alone."""
    try:
        return list(pipeline.process(arrays))  # type: ignore[arg-type]
    except ValueError:
        outcomes: list[list[DetectedFace] | Exception] = []
        for array in arrays:
            try:
                outcomes.append(pipeline.process([array])[0])  # type: ignore[list-item]
            except ValueError as exc:
                outcomes.append(exc)
        return outcomes


def _face_rows(
    image_id: int, faces: Sequence[DetectedFace], model_name: str
) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for face_index, face in enumerate(faces):
        x, y, w, h = face.box
        rows.append(
            {
                "image_id": image_id,
                "face_index": face_index,
                "model_name": model_name,
                "dim": int(face.embedding.shape[0]),
                "embedding": vector_to_bytes(face.embedding),
                "box_x": x,
                "box_y": y,
                "box_w": w,
                "box_h": h,
                "confidence": face.confidence,
                "landmarks": {k: list(v) for k, v in face.landmarks.items()},
                "label": None,
            }
        )
    return rows


def _give_labels(
    faces: Sequence[dict[str, object]], images: dict[int, tuple[str | None, int, int]]
) -> None:
    """A label names one face: an image's label goes to its most prominent face
    (``prominent_face``), and its other faces stay unlabelled."""
    by_image: dict[int, list[dict[str, object]]] = {}
    for row in faces:
        by_image.setdefault(row["image_id"], []).append(row)  # type: ignore[arg-type]
    for image_id, rows in by_image.items():
        label, width, height = images[image_id]
        if label is None:
            continue
        boxes = [(r["box_x"], r["box_y"], r["box_w"], r["box_h"]) for r in rows]
        chosen = prominent_face(boxes, width, height)  # type: ignore[arg-type]
        if chosen is not None:
            rows[chosen]["label"] = label


@dataclass
class _Outcomes:
    """A batch's outcomes, before they are written."""

    items: dict[int, tuple[ItemStatus, str | None]] = field(default_factory=dict)
    images: dict[int, tuple[ImageStatus, str | None]] = field(default_factory=dict)
    faces: list[dict[str, object]] = field(default_factory=list)
    replaced: list[int] = field(default_factory=list)  # images whose faces are replaced


def _outcomes(
    loaded: Loaded, results: Sequence[list[DetectedFace] | Exception], model_name: str
) -> _Outcomes:
    out = _Outcomes()
    for pending in loaded.settled:
        if pending.image_status == ImageStatus.READY:
            out.items[pending.item_id] = (ItemStatus.SUCCEEDED, None)
        else:
            out.items[pending.item_id] = (ItemStatus.FAILED, NO_FACE_REASON)
    failures = list(loaded.failures)
    for (pending, _), result in zip(loaded.decoded, results, strict=True):
        if isinstance(result, Exception):
            failures.append((pending, f"the face pipeline could not process it: {result}"))
            continue
        assert pending.image_id is not None  # only items with an image are decoded
        # Replace, never append: a redelivered task must not leave duplicate faces.
        out.replaced.append(pending.image_id)
        out.faces.extend(_face_rows(pending.image_id, result, model_name))
        if result:
            out.items[pending.item_id] = (ItemStatus.SUCCEEDED, None)
            out.images[pending.image_id] = (ImageStatus.READY, None)
        else:
            out.items[pending.item_id] = (ItemStatus.FAILED, NO_FACE_REASON)
            out.images[pending.image_id] = (ImageStatus.NO_FACE, NO_FACE_REASON)
    for pending, reason in failures:
        out.items[pending.item_id] = (ItemStatus.FAILED, reason)
        if pending.image_id is not None:
            out.images[pending.image_id] = (ImageStatus.FAILED, reason)
    return out


def _record_batch(
    session: Session,
    loaded: Loaded,
    results: Sequence[list[DetectedFace] | Exception],
    model_name: str,
) -> Counter[ItemStatus]:
    """Write a batch's outcomes in a few statements; the items' new statuses, counted."""
    out = _outcomes(loaded, results, model_name)
    # What still exists: the job (and its items) or an image may have been deleted meanwhile.
    items = set(session.scalars(select(JobItem.id).where(JobItem.id.in_(list(out.items)))))
    # An image whose item is gone (the job was deleted while we worked) is left as it is.
    wanted = [p.image_id for p in loaded.batch if p.item_id in items and p.image_id in out.images]
    # With what the faces' labels need: the label given at upload and the image's size.
    images = {
        image_id: (label, width, height)
        for image_id, label, width, height in session.execute(
            select(Image.id, Image.label, Image.width, Image.height).where(Image.id.in_(wanted))
        )
    }
    for pending, _ in loaded.decoded:
        if pending.image_id not in images and pending.item_id in out.items:
            reason = "the image was deleted while it was processed"
            out.items[pending.item_id] = (ItemStatus.FAILED, reason)
    if out.replaced:
        session.execute(
            delete(Face).where(Face.image_id.in_(out.replaced), Face.model_name == model_name)
        )
    faces = [row for row in out.faces if row["image_id"] in images]
    if faces:
        _give_labels(faces, images)
        session.execute(insert(Face), faces)
    image_rows = [
        {"id": image_id, "status": status, "error": error}
        for image_id, (status, error) in out.images.items()
        if image_id in images
    ]
    if image_rows:
        session.execute(update(Image), image_rows)
    item_rows = [
        {"id": item_id, "status": status, "error": error}
        for item_id, (status, error) in out.items.items()
        if item_id in items
    ]
    if item_rows:
        session.execute(update(JobItem), item_rows)
    return Counter(row["status"] for row in item_rows)  # type: ignore[misc]


def _add_outcomes(session: Session, job_id: str, counts: Counter[ItemStatus]) -> None:
    """Add a batch's outcomes to the job's counters, in one UPDATE.

    The batch's items were pending and are held locked (claimed FOR UPDATE) until this
    transaction commits, so each is counted once, as it leaves pending; recounting the whole
    job after each batch instead cost more with every batch (quadratic over an archive).
    The UPDATE takes the job row's lock, as refresh_progress does. Where rows cannot be
    locked (SQLite), the recount when the run ends puts the counters right.
    """
    done, failed = counts.get(ItemStatus.SUCCEEDED, 0), counts.get(ItemStatus.FAILED, 0)
    if not done and not failed:
        return
    session.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(done=Job.done + done, failed=Job.failed + failed)
        .execution_options(synchronize_session=False)
    )


def _process_loaded(loaded: Loaded, pipeline: FacePipeline, job_id: str) -> tuple[int, int]:
    """Run the model on a loaded batch and commit its outcomes; (items, failed)."""
    session = loaded.session
    try:
        outcomes = _detect_isolating_failures(pipeline, [array for _, array in loaded.decoded])
        with STAGE_TIMES.timed("rows", len(loaded.batch)):
            counts = _record_batch(session, loaded, outcomes, pipeline.embedding_version)
        with STAGE_TIMES.timed("progress"):
            _add_outcomes(session, job_id, counts)
        with STAGE_TIMES.timed("commit"):
            session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
    return len(loaded.batch), counts.get(ItemStatus.FAILED, 0)


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
    held: HeldBytes | None = None,
    more_coming: Callable[[], bool] | None = None,
    between_batches: Callable[[], None] | None = None,
) -> bool:
    """Detect and embed the job's pending items, one batch per transaction.

    Returns True once no pending item is left (and ``more_coming``, when given, says no
    more will come: an archive still being read), False when it stopped early: the job was
    cancelled (checked before each batch is claimed), ``deadline`` (``time.monotonic()``)
    passed, or ``max_batches`` batches were done. Each batch stays locked until its outcome
    is committed, so a killed worker's batch is simply pending again for the next one, and
    nothing is recorded twice; a batch loaded ahead and not processed is rolled back.
    ``held``: bytes the worker already has (an archive's reader), taken instead of fetched.
    ``between_batches`` runs in this thread after each committed batch.
    """
    batches = 0
    last_request = time.monotonic()
    unrequested = False
    loader = BatchLoader(
        job_id,
        sessions=sessions,
        store=store,
        batch_size=batch_size,
        max_pixels=max_pixels,
        held=held,
        more_coming=more_coming,
        deadline=deadline,
    )
    with loader:
        while True:
            loaded = loader.next()
            if loaded is None:
                drained = loader.drained
                break
            items, failed = _process_loaded(loaded, pipeline, job_id)
            loader.done_with(loaded)
            batches += 1
            unrequested = True
            log.info(
                "ingest: batch done",
                job_id=job_id,
                images=items,
                failed=failed,
                stage_s=STAGE_TIMES.seconds(),
            )
            if between_batches is not None:
                between_batches()
            # After the commit above (the indexer reads these rows), so that a long job's
            # faces become searchable while it runs; at most once a second.
            if time.monotonic() - last_request >= INDEX_REQUEST_INTERVAL_S:
                with STAGE_TIMES.timed("index"):
                    request_index(pipeline.embedding_version, None)
                last_request, unrequested = time.monotonic(), False
            if (deadline is not None and time.monotonic() >= deadline) or (
                max_batches is not None and batches >= max_batches
            ):
                drained = False
                break
    if batches:
        _recount(sessions, job_id)
    if unrequested and not drained:
        # Stopped early: what was just written is indexed now, not at the next run.
        # (Drained: the caller's final request, with the job id, covers it.)
        with STAGE_TIMES.timed("index"):
            request_index(pipeline.embedding_version, None)
    return drained


def _recount(sessions: sessionmaker[Session], job_id: str) -> None:
    """Once per run: the counters recounted from the items (exact whatever happened)."""
    with STAGE_TIMES.timed("progress"), session_scope(sessions) as session:
        job = session.get(Job, job_id)
        if job is not None:
            refresh_progress(session, job)


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
        request_index(pipeline.embedding_version, job_id)
