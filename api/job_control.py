"""A job's items page by page (large archives), and cancelling a job that is still running."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint
from sqlalchemy import select

from api import schemas
from api.auth import requires
from api.context import db
from api.enqueue import finish_job_now
from api.errors import ApiError
from api.jobs import job_or_404, serialize_job
from models import ItemStatus, JobItem, JobKind, JobStatus, Scope, refresh_progress
from models import skip_pending_items as skip_pending
from services.render import render_item

bp = APIBlueprint("job_control", __name__, url_prefix="/v1/jobs", tag="Jobs")

CANCELLABLE = (JobKind.INGEST, JobKind.ARCHIVE)
CANCELLED_REASON = "the job was cancelled before this item was processed"


@bp.get("/<job_id>/items")
@bp.input(schemas.JobItemsQuery, location="query", arg_name="query")
@bp.output(schemas.JobItemsOut)
@bp.doc(
    summary="A job's items, in member order, page by page",
    description="Keyset pagination on the item position: pass the answer's `next_cursor` as "
    "`cursor` for the next page. `status=failed` lists every failure with its reason.",
    responses={404: "No such job"},
)
@requires(Scope.SEARCH)
def list_items(job_id: str, query: dict[str, Any]) -> dict[str, Any]:
    job_or_404(job_id)
    limit: int = query["limit"]
    statement = select(JobItem).where(JobItem.job_id == job_id)
    if "status" in query:
        statement = statement.where(JobItem.status == ItemStatus(query["status"]))
    if query.get("cursor") is not None:
        statement = statement.where(JobItem.position > query["cursor"])
    items = db().scalars(statement.order_by(JobItem.position).limit(limit + 1)).all()
    page = items[:limit]
    return {
        "items": [render_item(i) for i in page],
        "next_cursor": page[-1].position if len(items) > limit else None,
    }


@bp.post("/<job_id>/cancel")
@bp.output(schemas.JobOut, status_code=200)
@bp.doc(
    summary="Cancel a running ingest or archive job, keeping what was done",
    description="Items not yet processed become `skipped` with a reason; the worker stops "
    "between batches. Images already processed stay in the gallery.",
    responses={404: "No such job", 409: "The job already finished or cannot be cancelled"},
)
@requires(Scope.WRITE)
def cancel_job(job_id: str) -> dict[str, Any]:
    session = db()
    job = job_or_404(job_id)
    if job.kind not in CANCELLABLE:
        raise ApiError(409, f"a {job.kind} job cannot be cancelled", code="not_cancellable")
    if job.status.finished:
        raise ApiError(409, f"the job already finished ({job.status})", code="already_finished")
    # Items first, then the job row: the same order a worker locks them in (no deadlock).
    skip_pending(session, job_id, CANCELLED_REASON)
    job = job_or_404(job_id, lock=True)
    session.refresh(job)
    refresh_progress(session, job)
    if job.status.finished:
        session.commit()  # a worker closed it meanwhile, and told the subscribers
    else:
        finish_job_now(job, JobStatus.CANCELLED, error="cancelled on request")
    return serialize_job(job)
