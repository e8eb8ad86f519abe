"""Archives: a tar/zip of images streamed into the object store, ingested by a job.

The request body is never held in memory: a raw body is copied from the socket to the
store in chunks; a multipart file is spooled to a temporary file by Werkzeug (in memory up
to 500 KB), then copied the same way. The worker reads the archive back from the store.
"""

from __future__ import annotations

import hashlib
import io
from typing import IO, Any

from apiflask import APIBlueprint
from flask import request
from sqlalchemy.exc import IntegrityError

from api import schemas
from api.auth import gallery_id, requires
from api.context import db, services
from api.enqueue import send_after_commit
from api.errors import ApiError
from api.jobs import (
    claim_key,
    existing_job_for_key,
    idempotency_for,
    idempotent,
    job_after_conflict,
    job_created,
    streamed_request_fields,
)
from api.openapi import (
    LOCATION,
    NO_CONTROL_CHARACTERS,
    Answers,
    binary_content,
    error_answer,
    operation,
)
from api.text import check_text
from core.archives import LABEL_SOURCES, SNIFF_BYTES, PrefixedStream, sniff_format
from core.logging import get_logger
from core.queue import ARCHIVE_TASK
from core.storage import ObjectNotFound, StorageError, validate_key
from models import Gallery, JobKind, Scope
from models.job import new_uuid
from services.images import create_archive_job

log = get_logger(__name__)
bp = APIBlueprint("archives", __name__, url_prefix="/v1/archives", tag="Archives")

NOT_AN_ARCHIVE = "the upload is not a tar, tar.gz/bz2/xz or zip archive"
IMPORTS_PREFIX = "imports"


def import_prefix(gallery: int) -> str:
    """Where a gallery's archives named by ``object_key`` must be: ``imports/<name>/``."""
    return f"{IMPORTS_PREFIX}/{db().get_one(Gallery, gallery).name}/"


class _Counting(io.RawIOBase):
    """Counts and hashes what the store reads through it."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self.size = 0
        self.sha256 = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self._stream.read(len(buffer))
        n = len(data)
        memoryview(buffer)[:n] = data
        self.size += n
        self.sha256.update(data)
        return n


# The media types a raw archive body may be sent as: any but JSON and multipart is read as
# raw bytes, and these name what it is. The bytes themselves decide (core.archives).
ARCHIVE_TYPES = [
    "application/octet-stream",
    "application/gzip",
    "application/x-gzip",
    "application/x-tar",
    "application/x-bzip2",
    "application/x-xz",
    "application/zip",
]
LABEL_FROM: dict[str, Any] = {
    "type": "string",
    "enum": list(LABEL_SOURCES),
    "default": "folder",
    "description": "where a member's label comes from: `folder` (LFW's `Name/Name_0001.jpg` "
    "gives `Name`), `filename` (`Name_0001.jpg` gives `Name`) or `none`",
}
# validate_key's rules: relative, no empty, '.' or '..' segment, no backslash or control
# character (and at most 1,024 bytes of UTF-8).
OBJECT_KEY_PATTERN = (
    r"^(?!\.\.?(?:/|$))(?:[^/\\\x00-\x1f\x7f]+/(?!\.\.?(?:/|$)))*[^/\\\x00-\x1f\x7f]+$"
)
ARCHIVE_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        **binary_content(ARCHIVE_TYPES),
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {
                    "file": {"type": "string", "format": "binary"},
                    "label_from": LABEL_FROM,
                },
                "required": ["file"],
            },
            "encoding": {"file": {"contentType": ", ".join(ARCHIVE_TYPES)}},
        },
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {
                    "object_key": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": 1024,
                        "pattern": OBJECT_KEY_PATTERN,
                        "description": "an archive already in the object store, under "
                        "`imports/<gallery name>/` (at most 1,024 bytes of UTF-8)",
                    },
                    "label_from": LABEL_FROM,
                },
                "required": ["object_key"],
            },
            "example": {"object_key": "imports/default/lfw.tgz", "label_from": "folder"},
        },
    },
}
UPLOAD_ANSWERS: Answers = {
    202: {"description": "Accepted: an archive job was created", "headers": LOCATION},
    400: error_answer("Empty body, a JSON body that is not an object, or no part named `file`"),
    403: error_answer("object_key is outside imports/<gallery name>/"),
    404: error_answer("object_key names no object"),
    413: error_answer("Larger than MAX_ARCHIVE_BYTES"),
    415: error_answer("Not a tar or zip archive"),
    422: error_answer("Invalid option"),
}
RAW_BODY_OPTIONS: list[dict[str, Any]] = [
    {
        "name": "label_from",
        "in": "query",
        "required": False,
        "description": "With a raw body: " + LABEL_FROM["description"],
        "schema": LABEL_FROM,
    },
    {
        "name": "filename",
        "in": "query",
        "required": False,
        "description": "With a raw body: the archive's file name, kept with the job",
        "schema": {"type": "string", "pattern": NO_CONTROL_CHARACTERS},
    },
]


def _label_from(value: Any) -> str:
    if value is None:
        return "folder"
    if value not in LABEL_SOURCES:
        raise ApiError(
            422,
            f"label_from must be one of {', '.join(LABEL_SOURCES)}, not {value!r}",
            code="invalid_label_from",
        )
    return str(value)


def _store_stream(stream: IO[bytes], key: str) -> dict[str, Any]:
    """Sniff the first bytes, then stream the whole body to the store under ``key``."""
    head = stream.read(SNIFF_BYTES)
    if not head:
        raise ApiError(400, "the archive is empty", code="empty")
    if sniff_format(head) is None:
        raise ApiError(415, NOT_AN_ARCHIVE, code="not_an_archive")
    counting = _Counting(io.BufferedReader(PrefixedStream(head, stream)))
    try:
        services().store.put_stream(
            key, io.BufferedReader(counting, buffer_size=1024 * 1024), length=None
        )
    except StorageError as exc:
        log.exception("archive upload to the store failed", key=key)
        raise ApiError(503, "the object store is unavailable; try again shortly") from exc
    return {"size_bytes": counting.size, "sha256": counting.sha256.hexdigest()}


def _from_store(object_key: Any) -> dict[str, Any]:
    """A JSON body names an archive already in the store (e.g. put there by a bulk copy),
    under the gallery's own import prefix: no gallery reads another's objects."""
    if not isinstance(object_key, str):
        raise ApiError(422, "object_key must be a string naming an object in the store")
    try:
        validate_key(object_key)  # no '..' segment: the prefix below is what it says
    except ValueError as exc:
        raise ApiError(422, f"object_key is not a valid key: {exc}") from exc
    prefix = import_prefix(gallery_id())
    if not object_key.startswith(prefix):
        raise ApiError(
            403,
            f"object_key {object_key!r} is outside this gallery's imports: "
            f"name an object under {prefix!r}",
            code="outside_import_prefix",
            details={"allowed_prefix": prefix},
        )
    try:
        with services().store.open(object_key) as stream:
            head = stream.read(SNIFF_BYTES)
    except ObjectNotFound as exc:
        raise ApiError(404, f"there is no object {object_key!r} in the store") from exc
    except StorageError as exc:
        raise ApiError(503, "the object store is unavailable; try again shortly") from exc
    if sniff_format(head) is None:
        raise ApiError(415, NOT_AN_ARCHIVE, code="not_an_archive")
    return {"object_key": object_key, "uploaded": False}


@bp.post("")
@bp.output(schemas.JobCreatedOut, status_code=202)
@bp.doc(
    summary="Add the images of an archive to the gallery",
    description="Send a `.tar`, `.tar.gz`/`.tgz`, `.tar.bz2`, `.tar.xz` or `.zip` as the raw "
    "request body (`Content-Type: application/octet-stream`, options in the query string), "
    "as a multipart part named `file` (options as form fields), or send JSON "
    '`{"object_key": "imports/<gallery name>/...", "label_from": "folder"}` naming an '
    "archive already in the object store: only under the gallery's own prefix "
    "`imports/<gallery name>/` (any other key is refused, 403). `label_from`: `folder` "
    "(default; LFW's `Name/Name_0001.jpg` gives `Name`), `filename` (`Name_0001.jpg` gives "
    "`Name`) or `none`. The archive is streamed to the store, never held in memory, and an "
    "`archive` job reads it member by member: unsafe or unusable members are failed items "
    "with a reason, repeated images are skipped items. Poll the job at the `Location` "
    "header; list failures at `/v1/jobs/{id}/items?status=failed`.",
    responses=UPLOAD_ANSWERS,
)
@operation(request_body=ARCHIVE_BODY, parameters=RAW_BODY_OPTIONS)
@requires(Scope.WRITE)
@idempotent
def upload_archive() -> tuple[dict[str, Any], int, dict[str, str]]:
    settings = services().settings
    # This route alone may receive more than MAX_REQUEST_BYTES: it streams to the store.
    request.max_content_length = settings.max_archive_bytes
    if (request.content_length or 0) > settings.max_archive_bytes:
        raise ApiError(
            413, f"the archive is larger than the limit of {settings.max_archive_bytes:,} bytes"
        )
    # A retry is known by what the request says, not by re-reading a streamed body.
    idempotency = idempotency_for(JobKind.ARCHIVE, streamed_request_fields())
    if idempotency and (job := existing_job_for_key(idempotency, JobKind.ARCHIVE)) is not None:
        return job_created(job)

    job_id = new_uuid()
    object_key = f"archives/{job_id}"
    params: dict[str, Any]
    if request.is_json:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise ApiError(400, 'send a JSON object: {"object_key": "...", "label_from": "..."}')
        label_from = _label_from(body.get("label_from"))
        params = _from_store(body.get("object_key"))
    elif request.mimetype == "multipart/form-data":
        label_from = _label_from(request.form.get("label_from"))
        upload = request.files.get("file")
        if upload is None:
            raise ApiError(400, "send the archive as a multipart part named 'file'")
        filename = upload.filename and check_text(upload.filename, "file name of part file")
        params = {"object_key": object_key, "uploaded": True, "filename": filename}
        params |= _store_stream(upload.stream, object_key)
    else:
        label_from = _label_from(request.args.get("label_from"))
        params = {
            "object_key": object_key,
            "uploaded": True,
            "filename": request.args.get("filename"),
        }
        params |= _store_stream(request.stream, object_key)

    try:
        job = create_archive_job(
            db(),
            job_id=job_id,
            gallery_id=gallery_id(),
            params=params,
            label_from=label_from,
            idempotency_key=idempotency.key if idempotency else None,
        )
        claim_key(job, idempotency)
    except IntegrityError:
        if idempotency is None:
            raise
        # A concurrent request with the same key made its job first: that is the answer.
        return job_created(job_after_conflict(idempotency, JobKind.ARCHIVE))
    send_after_commit(job, ARCHIVE_TASK, job_id=job.id)
    log.info("archive job created", job_id=job.id, size_bytes=params.get("size_bytes"))
    return job_created(job)
