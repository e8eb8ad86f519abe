"""Galleries, the unit of tenancy: made, listed and erased by administrators.

Only an admin key for every gallery may make or erase one; a key bound to a gallery sees
that gallery alone.
"""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint
from sqlalchemy import func, select

from api import schemas
from api.auth import gallery_id as request_gallery_id
from api.auth import principal, requires
from api.context import db
from api.enqueue import send_after_commit
from api.errors import ApiError
from api.jobs import job_created
from core.logging import get_logger
from core.queue import ERASE_GALLERY_TASK
from models import Gallery, Image, Scope
from services import urls
from services.erasure import start_gallery_erasure
from services.galleries import (
    GalleryError,
    GalleryNameTakenError,
    create_gallery,
    find_gallery,
    list_galleries,
)

log = get_logger(__name__)
bp = APIBlueprint("galleries", __name__, url_prefix="/v1/galleries", tag="Galleries")


def serialize_gallery(gallery: Gallery, images: int) -> dict[str, Any]:
    return {
        "id": gallery.id,
        "name": gallery.name,
        "created_at": gallery.created_at,
        "images": images,
    }


def _image_counts(ids: list[int]) -> dict[int, int]:
    if not ids:
        return {}
    rows = db().execute(
        select(Image.gallery_id, func.count(Image.id))
        .where(Image.gallery_id.in_(ids))
        .group_by(Image.gallery_id)
    )
    return dict(rows.all())


def _require_every_gallery(action: str) -> None:
    if not principal().all_galleries:
        raise ApiError(
            403, f"{action} needs an admin key for every gallery", code="insufficient_scope"
        )


def _visible_or_404(gallery_id: int) -> Gallery:
    gallery = find_gallery(db(), gallery_id)
    if gallery is None or (not principal().all_galleries and gallery.id != request_gallery_id()):
        raise ApiError(404, f"there is no gallery {gallery_id}", code="no_such_gallery")
    return gallery


@bp.post("")
@bp.input(schemas.GalleryIn, arg_name="body")
@bp.output(schemas.GalleryOut, status_code=201)
@bp.doc(
    summary="Make a gallery",
    description="A gallery holds its own images, faces, labels, jobs, searches and webhooks; "
    "nothing is shared with another. Make a key for it with `POST /v1/keys`.",
    responses={201: "Made", 409: "The name is taken", 422: "Invalid name"},
)
@requires(Scope.ADMIN)
def create(body: dict[str, Any]) -> tuple[dict[str, Any], int, dict[str, str]]:
    _require_every_gallery("making a gallery")
    session = db()
    try:
        gallery = create_gallery(session, body["name"])
    except GalleryNameTakenError as exc:
        raise ApiError(409, str(exc), code="gallery_exists") from exc
    except GalleryError as exc:
        raise ApiError(422, str(exc)) from exc
    session.commit()
    log.info("gallery created", gallery=gallery.name, gallery_id=gallery.id)
    location = urls.gallery_url(gallery.id)
    return serialize_gallery(gallery, 0), 201, {"Location": location}


@bp.get("")
@bp.output(schemas.GalleryListOut)
@bp.doc(summary="Galleries: every one, or the key's own")
@requires(Scope.ADMIN)
def list_all() -> dict[str, Any]:
    galleries = list_galleries(db())
    if not principal().all_galleries:
        galleries = [g for g in galleries if g.id == request_gallery_id()]
    counts = _image_counts([g.id for g in galleries])
    return {"galleries": [serialize_gallery(g, counts.get(g.id, 0)) for g in galleries]}


@bp.get("/<int:gallery_id>")
@bp.output(schemas.GalleryOut)
@bp.doc(summary="A gallery", responses={404: "No such gallery"})
@requires(Scope.ADMIN)
def get(gallery_id: int) -> dict[str, Any]:
    gallery = _visible_or_404(gallery_id)
    return serialize_gallery(gallery, _image_counts([gallery.id]).get(gallery.id, 0))


@bp.delete("/<int:gallery_id>")
@bp.output(schemas.JobCreatedOut, status_code=202)
@bp.doc(
    summary="Erase a gallery and everything in it",
    description="At once the gallery disappears (404) and its keys stop working; a job then "
    "removes its images' bytes, its vectors, its searches and query photos, its webhooks "
    "and their delivery logs, and its rows. Poll the job at `Location`.",
    responses={202: "Erasure queued", 404: "No such gallery"},
)
@requires(Scope.ADMIN)
def erase(gallery_id: int) -> tuple[dict[str, Any], int, dict[str, str]]:
    _require_every_gallery("erasing a gallery")
    gallery = _visible_or_404(gallery_id)
    job = start_gallery_erasure(db(), gallery)
    send_after_commit(job, ERASE_GALLERY_TASK, job_id=job.id)
    log.info("gallery erasure queued", gallery=gallery.name, job_id=job.id)
    return job_created(job)
