"""Search: find the faces of a query image and rank the gallery's faces for each."""

from __future__ import annotations

import time
from collections.abc import Callable, Sized

import numpy as np
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from core.images import InvalidImageError, decode_rgb
from core.index import Hit, VectorIndex
from core.logging import get_logger
from core.storage import ObjectNotFound, ObjectStore
from core.verdict import calibration_for, same_person
from models import Face, Image, JobStatus, Search, SearchFace, SearchMatch, served_version
from models.db import session_scope
from services.jobs import close_job, start_job
from services.render import search_min_probability
from workers.pipeline import FacePipeline
from workers.webhooks import SendDeliveries

log = get_logger(__name__)

# The index search sees only the search's gallery, so its answer is full by itself. Hits whose
# face was deleted after indexing (its vector is removed a moment later) are still dropped
# when results are read back from Postgres; asking for a few more than top_k keeps the answer
# full in that window.
HIT_SLACK = 16


def _finish(
    session: Session, search: Search, status: JobStatus, error: str | None = None
) -> list[str]:
    """Close the search's job (and so the search); returns the webhook deliveries to send
    after the commit (recorded in this transaction, so an event exists exactly when its
    result does)."""
    return close_job(session, search.job, status, error=error)


def _fail(
    sessions: sessionmaker[Session],
    search_id: str,
    reason: str,
    send_deliveries: SendDeliveries | None,
) -> None:
    with session_scope(sessions) as session:
        deliveries = _finish(session, session.get_one(Search, search_id), JobStatus.FAILED, reason)
    if deliveries and send_deliveries is not None:
        send_deliveries(deliveries)
    log.info("search: failed", search_id=search_id, reason=reason)


def run_search(
    search_id: str,
    *,
    sessions: sessionmaker[Session],
    store: ObjectStore,
    pipeline: FacePipeline,
    index: VectorIndex,
    max_pixels: int,
    send_deliveries: SendDeliveries | None = None,
) -> None:
    """Run a search. ``send_deliveries`` queues its webhook deliveries once its result is
    committed (None leaves them pending, e.g. in tests that do not deliver)."""
    # Milliseconds by stage, in the log line of each search: where an interactive answer's
    # time goes (scripts/bench_interactive.py reads them).
    stages: dict[str, float] = {}
    mark = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal mark
        now = time.perf_counter()
        stages[stage] = round((now - mark) * 1000, 1)
        mark = now

    with session_scope(sessions) as session:
        search = session.get(Search, search_id)
        if search is None:
            log.warning("search: no such search", search_id=search_id)
            return
        if search.status.finished:
            return
        start_job(session, search.job)
        key, top_k, gallery_id = search.query_object_key, search.top_k, search.gallery_id
        min_probability = search_min_probability(search)  # matches below it are dropped
        # The version searches are served from (a re-embed switches it when complete); a new
        # install has none recorded until its first faces are indexed: the configured one.
        version = served_version(session, pipeline.model_name) or pipeline.embedding_version

    lap("start_ms")
    array = _query_image(store, key, max_pixels, lap)
    if isinstance(array, str):
        _fail(sessions, search_id, array, send_deliveries)
        return
    try:
        # The query is embedded as the faces it is compared with were: never two recipes.
        pipeline = pipeline.for_version(version)
    except ValueError as exc:
        reason = f"cannot embed the query as the gallery's faces are: {exc}"
        _fail(sessions, search_id, reason, send_deliveries)
        return
    faces = pipeline.process([array])[0]
    lap("pipeline_ms")
    if (refusal := _refusal(faces, min_probability, version)) is not None:
        _fail(sessions, search_id, refusal, send_deliveries)
        return

    hits = index.search(
        version,
        np.stack([f.embedding for f in faces]),
        top_k + HIT_SLACK,
        gallery_id=gallery_id,
    )
    lap("index_ms")

    with session_scope(sessions) as session:
        search = session.get_one(Search, search_id)
        if search.status.finished:
            return  # a duplicate delivery got here first
        known = _gallery_faces(session, hits, gallery_id)
        # Replace, never append: a redelivered task leaves one set of results.
        session.execute(delete(SearchFace).where(SearchFace.search_id == search_id))
        for face_index, (face, face_hits) in enumerate(zip(faces, hits, strict=True)):
            x, y, w, h = face.box
            search_face = SearchFace(
                search_id=search_id,
                face_index=face_index,
                box_x=x,
                box_y=y,
                box_w=w,
                box_h=h,
                confidence=face.confidence,
                landmarks={k: list(v) for k, v in face.landmarks.items()},
            )
            ranked = [(hit, known[hit.face_id]) for hit in face_hits if hit.face_id in known]
            ranked = [r for r in ranked if _probable(r[0], min_probability, version)]
            for rank, (hit, (matched, label)) in enumerate(ranked[:top_k], start=1):
                search_face.matches.append(
                    SearchMatch(
                        rank=rank,
                        score=round(float(hit.score), 6),
                        face_id=matched.id,
                        image_id=matched.image_id,
                        label=label,
                        box_x=matched.box_x,
                        box_y=matched.box_y,
                        box_w=matched.box_w,
                        box_h=matched.box_h,
                    )
                )
            session.add(search_face)
        search.model_name = version  # the embedding version: its calibration gives verdicts
        deliveries = _finish(session, search, JobStatus.SUCCEEDED)
    lap("rows_ms")
    if deliveries and send_deliveries is not None:
        send_deliveries(deliveries)
    log.info("search: done", search_id=search_id, faces=len(faces), **stages)


def _query_image(
    store: ObjectStore, key: str, max_pixels: int, lap: Callable[[str], None]
) -> np.ndarray | str:
    """The decoded query image, or why there is none."""
    try:
        data = store.get(key)
        lap("fetch_ms")
        array = decode_rgb(data, max_pixels=max_pixels)
        lap("decode_ms")
    except ObjectNotFound:
        return "the stored query image is missing"
    except InvalidImageError as exc:
        return exc.message
    return array


def _refusal(faces: Sized, min_probability: float | None, model: str) -> str | None:
    """Why the search cannot be answered, or None."""
    if not faces:
        return "no face found in the query image"
    if min_probability is not None and calibration_for(model) is None:
        # The API refuses min_probability for an uncalibrated model; this is the model
        # changing between the request and the worker. Dropping every match would say
        # "no one" falsely, and keeping them all would ignore what was asked.
        return f"min_probability: the model {model} has no same-person calibration"
    return None


def _probable(hit: Hit, min_probability: float | None, version: str) -> bool:
    """Whether a hit's same-person probability reaches ``min_probability`` (always, without
    one): on the stored (rounded) score, as the rendering computes it, so every kept match
    shows at least it."""
    if min_probability is None:
        return True
    probability = same_person(round(float(hit.score), 6), version)["probability"]
    return probability is not None and probability >= min_probability


def _gallery_faces(
    session: Session, hits: list[list[Hit]], gallery_id: int
) -> dict[int, tuple[Face, str | None]]:
    """The hits' faces that still exist in the gallery, with their labels. The index search
    is already limited to the gallery; this is a defence in depth, and drops faces deleted
    since they were indexed. The label is the face's own: an image's label names only its
    most prominent face, so its other faces match unlabelled."""
    face_ids = {hit.face_id for face_hits in hits for hit in face_hits}
    if not face_ids:
        return {}
    rows = session.execute(
        select(Face, Face.label)
        .join(Image, Face.image_id == Image.id)
        .where(Face.id.in_(face_ids), Image.gallery_id == gallery_id)
    ).all()
    return {face.id: (face, label) for face, label in rows}
