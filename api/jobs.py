"""Jobs: the record of every long operation, polled by clients."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint
from sqlalchemy import select

from api import schemas
from api.auth import gallery_id, principal, requires
from api.context import db
from api.errors import ApiError
from models import Job, JobItem, JobKind, Scope
from services import urls
from services.render import render_job

bp = APIBlueprint("jobs", __name__, url_prefix="/v1/jobs", tag="Jobs")

# Items are listed inline for uploads; large jobs (archives) page through them instead.
INLINE_ITEMS = 100  # = MAX_FILES_PER_REQUEST's default: a whole upload


def job_url(job_id: str) -> str:
    return urls.job_url(job_id)


def job_created(job: Job) -> tuple[dict[str, Any], int, dict[str, str]]:
    """The 202 answer to a request that created (or, with an Idempotency-Key, found) a job."""
    url = job_url(job.id)
    return {"job_id": job.id, "status": job.status.value, "job_url": url}, 202, {"Location": url}


def existing_job_for_key(key: str, kind: JobKind) -> Job | None:
    job = db().scalar(select(Job).where(Job.gallery_id == gallery_id(), Job.idempotency_key == key))
    if job is not None and job.kind != kind:
        raise ApiError(409, f"the Idempotency-Key {key!r} was already used for a {job.kind} job")
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
@bp.output(schemas.JobOut)
@bp.doc(summary="A job's status, progress and result", responses={404: "No such job"})
@requires(Scope.SEARCH)
def get_job(job_id: str) -> dict[str, Any]:
    return serialize_job(job_or_404(job_id))


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
