"""Searches: upload a query photo, poll, read ranked matches per face."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint
from flask import Response, jsonify, request
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from werkzeug.datastructures import FileStorage

from api import schemas
from api.auth import gallery_id, requires
from api.context import db, services
from api.enqueue import send_after_commit
from api.errors import DATABASE_DOWN, ApiError
from api.images import CONTENT_ANSWER, IF_NONE_MATCH, NOT_MODIFIED
from api.jobs import (
    claim_key,
    existing_job_for_key,
    idempotency_for,
    idempotent,
    job_after_conflict,
    job_url,
)
from api.openapi import IMAGE_TYPES, operation
from api.uploads import read_upload, status_code
from api.waiting import (
    PREFER,
    PREFERENCE_APPLIED,
    honours_prefer_wait,
    preferred_wait,
    wait_for_job,
)
from api.webhooks import check_webhook_url, delivery_callbacks
from core.logging import get_logger
from core.queue import SEARCH_TASK
from core.settings import Settings
from core.storage import ObjectNotFound
from core.verdict import calibration_for
from models import Job, JobKind, Scope, Search, served_version, version_name
from services import urls
from services.render import render_search
from services.searches import create_search as create_search_job

log = get_logger(__name__)
bp = APIBlueprint("searches", __name__, url_prefix="/v1/searches", tag="Searches")


WAIT_APPLIED_HEADER: dict[str, Any] = {
    "description": "`wait=N` when the request's `Prefer: wait=N` was honoured (N clamped to 30)",
    "schema": {"type": "string"},
}
VARY_HEADER: dict[str, Any] = {
    "description": "`Prefer`: the answer depends on it",
    "schema": {"type": "string"},
}
ERROR_CONTENT: dict[str, dict[str, Any]] = {"application/json": {"schema": schemas.ErrorOut}}
Answer = tuple[dict[str, Any], int, dict[str, str]] | Response


def search_created(search: Search, **extra: str) -> Answer:
    """The answer to a request that made (or, by its Idempotency-Key, found) ``search``:
    202 with its URLs; with ``Prefer: wait=N``, 200 with the search itself if it ends in time.
    ``extra`` fields (the callback secret) are in either answer."""
    url = job_url(search.job_id)
    body: dict[str, Any] = {
        "job_id": search.job_id,
        "search_id": search.id,
        "status": search.status.value,
        "job_url": url,
        "search_url": urls.search_url(search.id),
        **extra,
    }
    # The answer depends on Prefer (RFC 7240 section 2): a cache must know.
    headers = {"Location": url, "Vary": PREFER}
    wait_s = preferred_wait()
    if not wait_s:
        return body, 202, headers
    search_id = search.id
    if not search.status.finished:
        try:
            ended = wait_for_job(search.job_id, wait_s)
        except DATABASE_DOWN:
            # The search exists: a 503 would have the client make it again. Poll instead.
            return body, 202, headers
        if ended is None:  # this process has its most waiters: answered as without Prefer
            return body, 202, headers
        found = db().get(Search, search_id)
        if found is None:  # erased meanwhile
            return body, 202, headers
        search = found
    headers[PREFERENCE_APPLIED] = f"wait={wait_s}"
    if not search.status.finished:
        return {**body, "status": search.status.value}, 202, headers
    response = jsonify(schemas.SearchWaitedOut().dump({**render_search(search), **extra}))
    response.headers.update(headers)
    del response.headers["Location"]  # 200: the body is the search, at Content-Location
    response.headers["Content-Location"] = urls.search_url(search_id)
    return response


CREATE_RESPONSES: dict[int | str, dict[str, str | dict[str, dict[str, Any]]]] = {
    200: {
        "description": "With `Prefer: wait=N`: the search ended within N seconds "
        "(succeeded or failed); the body is the search, as `GET search_url` has it",
        "content": {"application/json": {"schema": schemas.SearchWaitedOut}},
        "headers": {
            PREFERENCE_APPLIED: WAIT_APPLIED_HEADER,
            "Content-Location": {
                "description": "the search's URL",
                "schema": {"type": "string"},
            },
            "Vary": VARY_HEADER,
        },
    },
    202: {
        "description": "Accepted: a search job was created (with `Prefer: wait=N`: it "
        "had not ended after N seconds, or this server already had its most waiters, "
        "in which case `Preference-Applied` is absent)",
        "headers": {
            "Location": {"description": "the job's URL", "schema": {"type": "string"}},
            PREFERENCE_APPLIED: WAIT_APPLIED_HEADER,
            "Vary": VARY_HEADER,
        },
    },
    413: {"description": "The file is too large", "content": ERROR_CONTENT},
    415: {"description": "Not an image / unsupported format", "content": ERROR_CONTENT},
    422: {"description": "Invalid input", "content": ERROR_CONTENT},
}


@bp.post("")
@bp.input(schemas.SearchIn, location="form_and_files", arg_name="body")
@bp.output(schemas.SearchCreatedOut, status_code=202)
@bp.doc(
    summary="Search the gallery with a photo",
    description="Queues a search: every face in the photo is matched against the gallery. "
    "Poll the job at `Location`, then read `search_url`. Or send `Prefer: wait=N` (RFC 7240; "
    "N seconds, at most 30): if the search ends within N seconds the answer is 200 with the "
    "search itself (`Preference-Applied: wait=N`), else the usual 202.",
    responses=CREATE_RESPONSES,
    # With a callback_url: the signed delivery sent there when the search ends.
    extensions={
        "callbacks": delivery_callbacks(
            "searchFinished", "{$request.body#/callback_url}", "search.completed or search.failed"
        )
    },
)
@operation(part_types={"file": IMAGE_TYPES})
@requires(Scope.SEARCH)
@idempotent
@honours_prefer_wait
def create_search(body: dict[str, Any]) -> Answer:
    settings = services().settings
    file: FileStorage = body["file"]
    top_k = body.get("top_k") or settings.default_top_k
    min_probability: float | None = body.get("min_probability")
    asked = {"top_k": body.get("top_k"), "callback_url": body.get("callback_url")}
    if min_probability is not None:  # only when given: older keys' request hashes still hold
        asked["min_probability"] = min_probability
    idempotency = idempotency_for(JobKind.SEARCH, asked, [file])
    if idempotency and (job := existing_job_for_key(idempotency, JobKind.SEARCH)) is not None:
        return search_created(_search_of(job))
    callback_url: str | None = body.get("callback_url")
    if callback_url:
        check_webhook_url(callback_url)  # refused before any work is done
    version = _served(settings) if min_probability is not None else None
    if version is not None and calibration_for(version) is None:
        # Searches are answered from this embedding version: without its calibration there is
        # no probability to keep matches by, and dropping them all would say "no one" falsely.
        raise ApiError(
            422,
            f"min_probability: the model {version} has no same-person "
            "calibration, so matches cannot be kept by probability; leave it out",
            code="invalid_input",
        )

    upload = read_upload(
        file, max_bytes=settings.max_upload_bytes, max_pixels=settings.max_image_pixels
    )
    if upload.error is not None:
        raise ApiError(
            status_code(upload),
            f"{upload.filename}: {upload.error.message}",
            code=upload.error.code,
        )
    try:
        search, callback = create_search_job(
            db(),
            gallery_id=gallery_id(),
            store=services().store,
            query=upload,
            top_k=top_k,
            callback_url=callback_url,
            min_probability=min_probability,
            idempotency_key=idempotency.key if idempotency else None,
        )
        claim_key(search.job, idempotency)
    except IntegrityError:
        if idempotency is None:
            raise
        # A concurrent request with the same key made its search first: that is the answer.
        return search_created(_search_of(job_after_conflict(idempotency, JobKind.SEARCH)))
    job = search.job
    send_after_commit(job, SEARCH_TASK, job_id=job.id, search_id=search.id)
    log.info(
        "search created",
        job_id=job.id,
        search_id=search.id,
        top_k=top_k,
        min_probability=min_probability,
    )
    if callback is not None:
        return search_created(search, callback_secret=callback.secret)  # shown this once
    return search_created(search)


def _served(settings: Settings) -> str:
    """The embedding version searches are answered from (``models.embedding``): the one
    recorded, else (a new install) the one the workers are configured with."""
    return served_version(db(), settings.model_name) or version_name(
        settings.model_name,
        margin=settings.face_margin,
        align=settings.face_align,
        flip=settings.face_flip,
    )


def _search_of(job: Job) -> Search:
    return db().scalars(select(Search).where(Search.job_id == job.id)).one()


def _search_or_404(search_id: str) -> Search:
    search = db().get(Search, search_id)
    if search is None or search.gallery_id != gallery_id():
        raise ApiError(404, f"there is no search {search_id}")
    return search


@bp.get("/<search_id>")
@bp.output(schemas.SearchOut)
@bp.doc(summary="A search's faces and their ranked matches", responses={404: "No such search"})
@requires(Scope.SEARCH)
def get_search(search_id: str) -> dict[str, Any]:
    return render_search(_search_or_404(search_id))


@bp.get("/<search_id>/query")
@bp.doc(summary="The query photo's bytes", responses={404: "No such search"})
@operation(
    responses={
        200: {**CONTENT_ANSWER, "description": "The query photo, as it was uploaded"},
        304: NOT_MODIFIED,
    },
    parameters=[IF_NONE_MATCH],
)
@requires(Scope.SEARCH)
def get_search_query(search_id: str) -> Response:
    search = _search_or_404(search_id)
    try:
        data = services().store.get(search.query_object_key)
    except ObjectNotFound as exc:
        raise ApiError(404, f"the query image of search {search_id} is missing") from exc
    response = Response(data, mimetype=search.query_content_type)
    response.set_etag(search.query_sha256)
    response.cache_control.private = True
    response.make_conditional(request)
    return response
