"""Erasing a person: every image of a label in the request's gallery, and every copy made
from them (``services.erasure``). Listing labels is ``GET /v1/labels`` (api/browse.py)."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint, Schema, fields

from api.auth import gallery_id, requires
from api.context import db, services
from api.enqueue import SEND_RETRY_POLICY
from api.errors import ApiError
from core.logging import get_logger
from core.queue import DELETE_VECTORS_TASK
from core.storage import StorageError
from models import Scope
from services.erasure import (
    Erasure,
    erase_label,
    queue_vector_deletions,
    remove_unused_objects,
)

log = get_logger(__name__)
bp = APIBlueprint("labels", __name__, url_prefix="/v1/labels", tag="Labels")


class LabelErasedOut(Schema):
    images = fields.Integer(metadata={"description": "images erased"})
    faces = fields.Integer(metadata={"description": "their faces"})
    matches = fields.Integer(metadata={"description": "stored search matches removed"})
    webhook_events = fields.Integer(metadata={"description": "stored payloads scrubbed"})
    job_items = fields.Integer(metadata={"description": "job items renamed `(erased)`"})


def commit_erasure(erasure: Erasure) -> int:
    """Finish an erasure the request made: the bytes no row uses any more go before the
    commit (a store that fails leaves everything as it was: 503), the vectors after it (a
    broker that is down leaves them to the next reindex; searches ignore them already).
    Returns how many objects were deleted."""
    session = db()
    try:
        objects = remove_unused_objects(session, services().store, erasure.object_keys)
    except StorageError as exc:
        session.rollback()
        log.exception("erasure: the object store failed; nothing was erased")
        raise ApiError(
            503, "the object store is unavailable; nothing was erased, try again shortly"
        ) from exc
    session.commit()
    celery = services().celery
    queue_vector_deletions(
        lambda model_name, face_ids: celery.send_task(
            DELETE_VECTORS_TASK,
            args=[model_name, face_ids],
            retry=True,
            retry_policy=SEND_RETRY_POLICY,
        ),
        erasure.vectors,
    )
    return objects


@bp.delete("/<path:label>")
@bp.output(LabelErasedOut)
@bp.doc(
    summary="Erase a person: every image with this label, and every copy of them",
    description="Removes the label's images from the gallery with their faces, bytes (unless "
    "another gallery's image or a search query has the same bytes) and vectors, and every "
    "copy made from them: stored search matches, the matches in stored webhook payloads, and "
    "the file names in job items (which become `(erased)`). Answers what was removed.",
    responses={
        200: "Erased: what was removed, counted",
        404: "No image of the gallery has this label",
    },
)
@requires(Scope.WRITE)
def delete_label(label: str) -> dict[str, Any]:
    erasure = erase_label(db(), gallery_id=gallery_id(), label=label)
    if erasure is None:
        raise ApiError(404, f"there is no label {label!r} in the gallery", code="no_such_label")
    commit_erasure(erasure)
    counts = erasure.counts()
    log.info("label erased", **counts)  # not the label itself: the log keeps no names
    return {
        "images": counts["images"],
        "faces": counts["faces"],
        "matches": counts["matches"],
        "webhook_events": counts["webhook_events"],
        "job_items": counts["job_items"],
    }
