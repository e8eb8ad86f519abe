"""One rendering per resource: what a client sees of a job, an image or a search, in API
answers and webhook payloads alike."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from core.verdict import calibration_for, same_person
from models import Face, Image, Job, JobItem, JobKind, Search, SearchFace, utcnow
from services import urls


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


def render_item(item: JobItem) -> dict[str, Any]:
    return {
        "position": item.position,
        "name": item.name,
        "status": item.status.value,
        "image_id": item.image_id,
        "error": item.error,
    }


def render_job(job: Job, items: Sequence[JobItem] | None = None) -> dict[str, Any]:
    """A job; ``items`` (its first ones) only where the answer lists them."""
    body: dict[str, Any] = {
        "id": job.id,
        "kind": job.kind.value,
        "status": job.status.value,
        "progress": job_progress(job),
        "error": job.error,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "result": job.result or {},
        "job_url": urls.job_url(job.id),
    }
    if items is not None:
        body["items"] = [render_item(i) for i in items]
    return body


def render_face(face: Face) -> dict[str, Any]:
    """A gallery face: its box, who it is (its own label), and whether it is searchable."""
    return {
        "id": face.id,
        "box": face.box,
        "confidence": face.confidence,
        "landmarks": face.landmarks,
        "model": face.model_name,
        "indexed": face.indexed_at is not None,
        "label": face.label,
    }


def render_image(image: Image) -> dict[str, Any]:
    return {
        "id": image.id,
        "label": image.label,
        "status": image.status.value,
        "error": image.error,
        "sha256": image.sha256,
        "content_type": image.content_type,
        "size_bytes": image.size_bytes,
        "width": image.width,
        "height": image.height,
        "filename": image.filename,
        "created_at": image.created_at,
        "image_url": urls.image_url(image.id),
        # Each face with its own label: an image's label names only its most prominent face.
        "faces": [render_face(face) for face in image.faces],
    }


def render_search_face(
    face: SearchFace, *, model: str | None = None, min_probability: float | None = None
) -> dict[str, Any]:
    """A query face and its ranked matches, each with its calibrated same-person verdict
    (``core.verdict``: nulls for a model without a calibration). ``message`` says in words
    what the matches mean, plainly when there is no one."""
    matches = [
        {
            "rank": m.rank,
            "score": m.score,
            "same_person": same_person(m.score, model),
            "image_id": m.image_id,
            "face_id": m.face_id,
            "label": m.label,
            "box": m.box,
            "image_url": urls.image_url(m.image_id) if m.image_id is not None else None,
        }
        for m in face.matches
    ]
    return {
        "box": face.box,
        "confidence": face.confidence,
        "landmarks": face.landmarks,
        "message": _matches_message(matches, min_probability),
        "matches": matches,
    }


def _matches_message(matches: list[dict[str, Any]], min_probability: float | None) -> str | None:
    """None where the verdicts speak for themselves (a match judged the same person)."""
    if not matches:
        if min_probability is not None:
            return (
                "No one in the gallery: no face is the same person with a probability "
                f"of at least {min_probability:g}."
            )
        return "No one in the gallery: it has no searchable face."
    verdicts = [m["same_person"]["verdict"] for m in matches]
    if verdicts[0] is None:
        return None  # no calibration for this model: the scores only rank
    if "same" in verdicts:
        return None
    if "uncertain" in verdicts:
        return "No one in the gallery is surely the same person; the best matches are uncertain."
    return "No one in the gallery is the same person; these are only the most similar faces."


def search_min_probability(search: Search) -> float | None:
    """The search's ``min_probability`` (kept in its job's params, so every rendering of
    the search, answers and webhook payloads alike, says the same)."""
    value = (search.job.params or {}).get("min_probability") if search.job else None
    return float(value) if value is not None else None


def render_search(search: Search, faces: Sequence[SearchFace] | None = None) -> dict[str, Any]:
    """A search: its outcome, its query photo's link, and each face with its matches
    (``faces``, when the caller loaded them itself; by default the relationship's)."""
    min_probability = search_min_probability(search)
    return {
        "id": search.id,
        "job_id": search.job_id,
        "status": search.status.value,
        "error": search.error,
        "top_k": search.top_k,
        "min_probability": min_probability,
        "model": search.model_name,
        "calibrated": calibration_for(search.model_name) is not None,
        "created_at": search.created_at,
        "finished_at": search.finished_at,
        "search_url": urls.search_url(search.id),
        "job_url": urls.job_url(search.job_id),
        "query": {
            "width": search.query_width,
            "height": search.query_height,
            "image_url": urls.search_query_url(search.id),
        },
        "faces": [
            render_search_face(f, model=search.model_name, min_probability=min_probability)
            for f in (search.faces if faces is None else faces)
        ],
    }
