"""Gallery images: upload (an ingest job), read, download, delete."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint
from flask import Response, request
from sqlalchemy.exc import IntegrityError
from werkzeug.datastructures import FileStorage

from api import schemas
from api.auth import gallery_id, requires
from api.context import db, services
from api.enqueue import commit_erasure, finish_job_now, send_after_commit
from api.errors import ApiError
from api.jobs import (
    claim_key,
    existing_job_for_key,
    idempotency_for,
    idempotent,
    job_after_conflict,
    job_created,
)
from api.openapi import (
    IMAGE_TYPES,
    LOCATION,
    Answers,
    binary_content,
    error_answer,
    operation,
)
from api.uploads import read_upload, status_code
from core.logging import get_logger
from core.queue import INGEST_TASK
from core.storage import ObjectNotFound
from models import Image, Job, JobKind, Scope
from services.erasure import erase_images
from services.images import UploadedFile, create_ingest_job
from services.render import render_image

log = get_logger(__name__)
bp = APIBlueprint("images", __name__, url_prefix="/v1/images", tag="Images")


UPLOAD_ANSWERS: Answers = {
    202: {"description": "Accepted: an ingest job was created", "headers": LOCATION},
    413: error_answer("A file, the number of files or the request is too large"),
    415: error_answer("Not an image / unsupported format"),
    422: error_answer("Invalid input"),
}
# The bytes of an image (a gallery image, a query photo) are served with an ETag (their
# SHA-256) and answered 304 to a request that has them already.
CACHE_HEADERS: dict[str, Any] = {
    "ETag": {"description": "the bytes' SHA-256, quoted", "schema": {"type": "string"}},
    "Cache-Control": {"schema": {"type": "string"}, "example": "private, max-age=86400"},
}
CONTENT_ANSWER: dict[str, Any] = {
    "description": "The original file, in the media type it was uploaded as",
    "content": binary_content(IMAGE_TYPES),
    "headers": CACHE_HEADERS,
}
NOT_MODIFIED: dict[str, Any] = {
    "description": "`If-None-Match` named the bytes' ETag: the client has them",
    "headers": CACHE_HEADERS,
}
IF_NONE_MATCH: dict[str, Any] = {
    "name": "If-None-Match",
    "in": "header",
    "required": False,
    "description": "RFC 9110: the ETag of a copy the client has; the answer is then 304",
    "schema": {"type": "string"},
}


def _refuse_all(uploads: list[UploadedFile]) -> ApiError:
    details = {
        "files": [
            {"name": u.filename, "code": u.error.code, "message": u.error.message}
            for u in uploads
            if u.error
        ]
    }
    statuses = {status_code(u) for u in uploads}
    status = statuses.pop() if len(statuses) == 1 else 422
    if len(uploads) == 1 and uploads[0].error:
        message = f"{uploads[0].filename}: {uploads[0].error.message}"
    else:
        message = "none of the files is an image that can be processed; see details"
    return ApiError(
        status,
        message,
        code=uploads[0].error.code if len(uploads) == 1 and uploads[0].error else None,
        details=details,
    )


def _labels(given: list[str], n_files: int) -> list[str | None]:
    """One label for all files, or one per file in order; blank means none."""
    cleaned = [label.strip() or None for label in given]
    if not cleaned:
        return [None] * n_files
    if len(cleaned) == 1:
        return cleaned * n_files
    if len(cleaned) != n_files:
        raise ApiError(
            422,
            f"{len(cleaned)} labels for {n_files} files: send one label for all the files, "
            "or exactly one per file in the same order",
        )
    return cleaned


@bp.post("")
@bp.input(schemas.ImageUploadIn, location="form_and_files", arg_name="body")
@bp.output(schemas.JobCreatedOut, status_code=202)
@bp.doc(
    summary="Add images to the gallery",
    description="Stores each file and queues an ingest job that detects, embeds and indexes "
    "its faces. Poll the job at the `Location` header. A file that is not a usable image is "
    "recorded as a failed item; if no file is usable the request is refused.",
    responses=UPLOAD_ANSWERS,
)
@requires(Scope.WRITE)
@idempotent
def upload_images(body: dict[str, Any]) -> tuple[dict[str, Any], int, dict[str, str]]:
    settings = services().settings
    files: list[FileStorage] = body["file"]
    if not files:
        raise ApiError(400, "send one or more images as multipart parts named 'file'")
    if not all(isinstance(f, FileStorage) for f in files):
        # A 'file' part without a filename is a form field, not a file.
        raise ApiError(422, "file: every part named 'file' must be a file, with a filename")
    if len(files) > settings.max_files_per_request:
        raise ApiError(
            413, f"{len(files)} files in one request; the limit is {settings.max_files_per_request}"
        )
    labels = _labels(body.get("label") or [], len(files))
    idempotency = idempotency_for(JobKind.INGEST, {"label": body.get("label") or []}, files)
    if idempotency and (job := existing_job_for_key(idempotency, JobKind.INGEST)) is not None:
        return job_created(job)

    uploads = [
        read_upload(f, max_bytes=settings.max_upload_bytes, max_pixels=settings.max_image_pixels)
        for f in files
    ]
    if all(u.error for u in uploads):
        raise _refuse_all(uploads)

    def create() -> Job:
        job = create_ingest_job(
            db(),
            gallery_id=gallery_id(),
            store=services().store,
            uploads=uploads,
            labels=labels,
            idempotency_key=idempotency.key if idempotency else None,
        )
        claim_key(job, idempotency)
        return job

    try:
        job = create()
    except IntegrityError:
        # Another request stored the same bytes or used the same key at the same moment;
        # a second attempt sees its rows and records skips instead.
        db().rollback()
        if idempotency and (job := existing_job_for_key(idempotency, JobKind.INGEST)):
            return job_created(job)
        try:
            job = create()
        except IntegrityError:
            if idempotency is None:
                raise
            return job_created(job_after_conflict(idempotency, JobKind.INGEST))
    pending = job.total - job.failed - job.skipped
    if pending:
        send_after_commit(job, INGEST_TASK, job_id=job.id)
    else:
        finish_job_now(job)  # nothing new to process: every file was a duplicate or refused
    log.info("ingest job created", job_id=job.id, files=len(uploads), pending=pending)
    return job_created(job)


@bp.get("/<int:image_id>")
@bp.output(schemas.ImageOut)
@bp.doc(summary="An image, its status and its faces", responses={404: "No such image"})
@requires(Scope.SEARCH)
def get_image(image_id: int) -> dict[str, Any]:
    return render_image(_image_or_404(image_id))


@bp.get("/<int:image_id>/content")
@bp.doc(summary="The image's bytes", responses={404: "No such image"})
@operation(
    responses={200: CONTENT_ANSWER, 304: NOT_MODIFIED},
    parameters=[IF_NONE_MATCH],
)
@requires(Scope.SEARCH)
def get_image_content(image_id: int) -> Response:
    image = _image_or_404(image_id)
    try:
        data = services().store.get(image.object_key)
    except ObjectNotFound as exc:
        raise ApiError(404, f"the bytes of image {image_id} are missing from the store") from exc
    response = Response(data, mimetype=image.content_type)
    # Content-addressed: the bytes behind this URL never change. Private: a face is
    # biometric data, and shared caches must not keep what a key was needed to read.
    response.set_etag(image.sha256)
    response.cache_control.private = True
    response.cache_control.max_age = 86_400
    response.make_conditional(request)
    return response


@bp.delete("/<int:image_id>")
@bp.output({}, status_code=204)
@bp.doc(
    summary="Delete an image: its bytes, its rows and its vectors", responses={404: "No such image"}
)
@requires(Scope.WRITE)
def delete_image(image_id: int) -> tuple[str, int]:
    _image_or_404(image_id)
    # The rows, every copy (stored matches, webhook payloads, job item names), the bytes
    # unless another gallery or a search still has them, and the vectors.
    erasure = erase_images(db(), gallery_id=gallery_id(), image_ids=[image_id])
    commit_erasure(erasure)
    log.info("image deleted", image_id=image_id, faces=erasure.faces)
    return "", 204


def _image_or_404(image_id: int) -> Image:
    image = db().get(Image, image_id)
    # Another gallery's image is answered exactly like one that does not exist.
    if image is None or image.gallery_id != gallery_id():
        raise ApiError(404, f"there is no image {image_id}")
    return image
