"""Erasing a person: every image of a label in the request's gallery, and every copy made
from them (``services.erasure``). Listing labels is ``GET /v1/labels`` (api/browse.py)."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint, Schema, fields

from api.auth import gallery_id, requires
from api.context import db
from api.enqueue import commit_erasure
from api.errors import ApiError
from core.logging import get_logger
from models import Scope
from services.erasure import erase_label

log = get_logger(__name__)
bp = APIBlueprint("labels", __name__, url_prefix="/v1/labels", tag="Labels")


class LabelErasedOut(Schema):
    images = fields.Integer(metadata={"description": "images erased"})
    faces = fields.Integer(metadata={"description": "their faces"})
    matches = fields.Integer(metadata={"description": "stored search matches removed"})
    webhook_events = fields.Integer(metadata={"description": "stored payloads scrubbed"})
    job_items = fields.Integer(metadata={"description": "job items renamed `(erased)`"})


@bp.delete("/<path:label>")
@bp.output(LabelErasedOut)
@bp.doc(
    summary="Erase a person: every image with this label, and every copy of them",
    description="The label's images are those where a face carries it and those uploaded "
    "with it. Removes them from the gallery with all their faces, bytes (unless "
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
