"""Jobs: the record of every long operation, polled by clients."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, timedelta
from typing import Any, TypeVar

from apiflask import APIBlueprint
from flask import request
from sqlalchemy import select
from werkzeug.datastructures import FileStorage

from api import schemas
from api.auth import gallery_id, principal, requires
from api.context import db, services
from api.errors import ApiError
from api.waiting import wait_for_job
from models import Job, JobItem, JobKind, Scope
from models.base import utcnow
from services import urls
from services.render import render_job

bp = APIBlueprint("jobs", __name__, url_prefix="/v1/jobs", tag="Jobs")
F = TypeVar("F", bound=Callable[..., Any])

# Items are listed inline for uploads; large jobs (archives) page through them instead.
INLINE_ITEMS = 100  # = MAX_FILES_PER_REQUEST's default: a whole upload

IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_IDEMPOTENCY_KEY = 200  # = the column's length
IDEMPOTENCY_KEY_PATTERN = re.compile(rf"[\x20-\x7e]{{1,{MAX_IDEMPOTENCY_KEY}}}")
HASH_CHUNK = 1024 * 1024


def job_url(job_id: str) -> str:
    return urls.job_url(job_id)


def job_created(job: Job) -> tuple[dict[str, Any], int, dict[str, str]]:
    """The 202 answer to a request that created (or, with an Idempotency-Key, found) a job."""
    url = job_url(job.id)
    return {"job_id": job.id, "status": job.status.value, "job_url": url}, 202, {"Location": url}


_IDEMPOTENT_ATTR = "_facesearch_idempotent"


def idempotent(view: F) -> F:
    """Mark a view that creates a job as reading ``Idempotency-Key`` (for the document)."""
    setattr(view, _IDEMPOTENT_ATTR, True)
    return view


def accepts_idempotency_key(view: Callable[..., Any]) -> bool:
    return bool(getattr(view, _IDEMPOTENT_ATTR, False))


@dataclass(frozen=True)
class Idempotency:
    """A creation request's Idempotency-Key, the API key that sent it, and the request's hash."""

    key: str
    key_id: str
    request_hash: str


def idempotency_key_header() -> str | None:
    """The request's Idempotency-Key, checked: 1 to 200 printable ASCII characters."""
    value = request.headers.get(IDEMPOTENCY_HEADER)
    if value is None:
        return None
    if not IDEMPOTENCY_KEY_PATTERN.fullmatch(value):
        raise ApiError(
            422,
            f"{IDEMPOTENCY_HEADER}: send 1 to {MAX_IDEMPOTENCY_KEY} printable ASCII characters "
            f"(letters, digits, punctuation, spaces), not {len(value)} characters of which "
            f"{sum(not 0x20 <= ord(c) <= 0x7E for c in value)} are not printable ASCII",
            code="invalid_idempotency_key",
        )
    return value


def _file_digest(file: FileStorage) -> str:
    """The part's bytes hashed, and the stream put back where it was for its reader."""
    stream = file.stream
    start = stream.tell()
    digest = hashlib.sha256()
    while chunk := stream.read(HASH_CHUNK):
        digest.update(chunk)
    stream.seek(start)
    return digest.hexdigest()


def idempotency_for(
    kind: JobKind, fields: dict[str, Any], files: Sequence[FileStorage] = ()
) -> Idempotency | None:
    """The request's Idempotency-Key bound to the calling API key and to a hash of what
    the request asks for (its kind, gallery, ``fields`` and the names and bytes of
    ``files``); None when the request sent no key."""
    key = idempotency_key_header()
    if key is None:
        return None
    described = {
        "kind": kind.value,
        "gallery": gallery_id(),
        "fields": fields,
        "files": [[f.filename, _file_digest(f)] for f in files],
    }
    canonical = json.dumps(described, sort_keys=True, separators=(",", ":"), default=str)
    return Idempotency(key, principal().key_id, hashlib.sha256(canonical.encode()).hexdigest())


def streamed_request_fields() -> dict[str, Any]:
    """What identifies a request whose body is streamed rather than hashed (an archive):
    its media type, query string, length, JSON body, and form fields and file names."""
    fields: dict[str, Any] = {
        "mimetype": request.mimetype,
        "args": request.args.to_dict(flat=False),
        "length": request.content_length,
    }
    if request.is_json:
        fields["json"] = request.get_json(silent=True)
    elif request.mimetype == "multipart/form-data":
        fields["form"] = request.form.to_dict(flat=False)
        fields["files"] = {
            name: [f.filename for f in files] for name, files in request.files.lists()
        }
    return fields


def _expired(job: Job) -> bool:
    created = job.created_at
    if created.tzinfo is None:  # SQLite keeps no zone: it is UTC
        created = created.replace(tzinfo=UTC)
    ttl = timedelta(seconds=services().settings.idempotency_key_ttl_s)
    return created <= utcnow() - ttl


def existing_job_for_key(idempotency: Idempotency, kind: JobKind) -> Job | None:
    """The job an earlier request with the same Idempotency-Key made, or None (never used,
    or expired: then the key is released for this request). 409 if that job is of another
    kind, 422 if the earlier request was a different one."""
    key = idempotency.key
    job = db().scalar(
        select(Job).where(
            Job.gallery_id == gallery_id(),
            Job.idempotency_key_id == idempotency.key_id,
            Job.idempotency_key == key,
        )
    )
    if job is None:
        return None
    if _expired(job):
        job.idempotency_key = job.idempotency_key_id = job.idempotency_request_hash = None
        db().flush()
        return None
    if job.kind != kind:
        raise ApiError(409, f"the Idempotency-Key {key!r} was already used for a {job.kind} job")
    if job.idempotency_request_hash != idempotency.request_hash:
        raise ApiError(
            422,
            f"the Idempotency-Key {key!r} was already used for a different request; "
            "send a new key for a new request",
            code="idempotency_key_reused",
            details={"job_id": job.id},
        )
    return job


def claim_key(job: Job, idempotency: Idempotency | None) -> None:
    """Bind a new job to the request's Idempotency-Key. A concurrent request that claimed
    the same key first makes this raise IntegrityError (after it commits): answer it with
    :func:`job_after_conflict`."""
    if idempotency is None:
        return
    job.idempotency_key = idempotency.key
    job.idempotency_key_id = idempotency.key_id
    job.idempotency_request_hash = idempotency.request_hash
    db().flush()


def job_after_conflict(idempotency: Idempotency, kind: JobKind) -> Job:
    """After an IntegrityError: the job a concurrent request with the same key made, read in
    a fresh transaction; 409 while it is not visible yet (the client retries)."""
    db().rollback()
    job = existing_job_for_key(idempotency, kind)
    if job is None:
        raise ApiError(
            409,
            f"a request with the Idempotency-Key {idempotency.key!r} is in progress; "
            "retry shortly to get its job",
            code="idempotency_key_in_use",
            headers={"Retry-After": "1"},
        )
    return job


def serialize_job(job: Job, *, with_items: bool = True) -> dict[str, Any]:
    """A job as clients see it; ``with_items=False`` for listings (one query per job less)."""
    if not with_items:
        return render_job(job)
    items = db().scalars(
        select(JobItem)
        .where(JobItem.job_id == job.id)
        .order_by(JobItem.position)
        .limit(INLINE_ITEMS)
    )
    return render_job(job, list(items))


@bp.get("/<job_id>")
@bp.input(schemas.JobWaitQuery, location="query", arg_name="query")
@bp.output(schemas.JobOut)
@bp.doc(
    summary="A job's status, progress and result",
    description="With `wait=N`: a long poll. The answer comes as soon as the job has ended, "
    "or after N seconds with its state then; instead of polling every second.",
    responses={404: "No such job"},
)
@requires(Scope.SEARCH)
def get_job(job_id: str, query: dict[str, Any]) -> dict[str, Any]:
    job = job_or_404(job_id)
    wait_s: int | None = query.get("wait")
    if wait_s and not job.status.finished:
        wait_for_job(job.id, wait_s)  # closes the session: the job is read again below
        job = job_or_404(job_id)
    return serialize_job(job)


def job_or_404(job_id: str, *, lock: bool = False) -> Job:
    """A job of the request's gallery; another gallery's job is answered as missing. A
    gallery's erasure outlives its gallery: admin keys for every gallery still see it."""
    job = db().get(Job, job_id, with_for_update=lock)
    visible = job is not None and (
        job.gallery_id == gallery_id()
        or (principal().all_galleries and job.kind == JobKind.ERASE_GALLERY)
    )
    if job is None or not visible:
        raise ApiError(404, f"there is no job {job_id}")
    return job
