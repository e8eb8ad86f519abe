"""Listing: the gallery's images and labels, and jobs, with filters and cursor pagination.

Cursors are opaque to clients (base64 of the last row's sort key), so the order can change
later without breaking them; a cursor is stable under inserts, unlike an offset.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any

from apiflask import APIBlueprint, Schema, fields
from apiflask.validators import Length, OneOf, Range, Regexp
from sqlalchemy import Subquery, and_, exists, func, or_, select, union
from sqlalchemy.orm import selectinload

from api import schemas
from api.auth import gallery_id, requires
from api.context import db
from api.errors import ApiError
from api.jobs import serialize_job
from api.text import bad_character
from models import Face, Image, ImageStatus, Job, JobKind, JobStatus, Scope
from services.render import render_image

bp = APIBlueprint("browse", __name__, tag="Browse")
DEFAULT_LIMIT = 50
MAX_LIMIT = 200


def encode_cursor(*key: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


NOT_A_CURSOR = "cursor: not a cursor this API returned"
MAX_ID = 2**63 - 1  # a BIGINT
MAX_TEXT = 200  # a label, a job id or a timestamp: never longer


def decode_cursor(cursor: str, *types: type) -> list[Any]:
    """The sort key in ``cursor``, one value of each of ``types`` (int or str) in order;
    anything else, however it was made, is a 422: no client value reaches a query unchecked."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, binascii.Error, UnicodeDecodeError, RecursionError) as exc:
        raise ApiError(422, NOT_A_CURSOR, code="invalid_cursor") from exc
    if not isinstance(key, list) or len(key) != len(types):
        raise ApiError(422, NOT_A_CURSOR, code="invalid_cursor")
    for value, expected in zip(key, types, strict=True):
        # bool is an int to Python, not to a cursor.
        if type(value) is not expected:
            raise ApiError(422, NOT_A_CURSOR, code="invalid_cursor")
        if isinstance(value, int) and not 0 <= value <= MAX_ID:
            raise ApiError(422, NOT_A_CURSOR, code="invalid_cursor")
        if isinstance(value, str) and (len(value) > MAX_TEXT or bad_character(value)):
            raise ApiError(422, NOT_A_CURSOR, code="invalid_cursor")
    return key


# What encode_cursor makes: URL-safe base64 without its padding.
CURSOR_PATTERN = r"^[A-Za-z0-9_-]+$"
CURSOR_DESCRIPTION = (
    "`next_cursor` of the previous page: opaque (URL-safe base64 without padding); "
    "one this API did not return is refused (422, `invalid_cursor`)"
)


def _cursor(*example_key: Any) -> fields.String:
    return fields.String(
        validate=Regexp(CURSOR_PATTERN),
        metadata={"description": CURSOR_DESCRIPTION, "example": encode_cursor(*example_key)},
    )


class PageQuery(Schema):
    limit = fields.Integer(load_default=DEFAULT_LIMIT, validate=Range(min=1, max=MAX_LIMIT))


class ImagesQuery(PageQuery):
    cursor = _cursor(42)  # the last image's id
    label = fields.String(validate=Length(min=1, max=200))
    status = fields.String(validate=OneOf([s.value for s in ImageStatus]))


class JobsQuery(PageQuery):
    cursor = _cursor("2024-05-01T12:00:00+00:00", "0b8e8f7e-3f5a-4c1e-9d2b-6a7f1e2c3d4b")
    kind = fields.String(validate=OneOf([k.value for k in JobKind]))
    status = fields.String(validate=OneOf([s.value for s in JobStatus]))


class LabelsQuery(PageQuery):
    cursor = _cursor("Ada_Lovelace")
    prefix = fields.String(validate=Length(min=1, max=200))


# Listing schemas are their own classes: nesting the single-resource schemas here would
# register them twice in the OpenAPI document (APIFlask names components by class).
class ImageListed(schemas.ImageOut):
    pass


class JobListed(schemas.JobOut):
    class Meta:
        exclude = ("items",)  # a job's items are on GET /v1/jobs/{id}


class ImagePage(Schema):
    items = fields.List(fields.Nested(ImageListed))
    next_cursor = fields.String(
        allow_none=True,
        validate=Regexp(CURSOR_PATTERN),
        metadata={"description": "pass as `cursor` for the next page; null: the last page"},
    )


class JobPage(Schema):
    items = fields.List(fields.Nested(JobListed))
    next_cursor = fields.String(
        allow_none=True,
        validate=Regexp(CURSOR_PATTERN),
        metadata={"description": "pass as `cursor` for the next page; null: the last page"},
    )


class LabelOut(Schema):
    label = fields.String()
    images = fields.Integer()


class LabelPage(Schema):
    items = fields.List(fields.Nested(LabelOut))
    next_cursor = fields.String(
        allow_none=True,
        validate=Regexp(CURSOR_PATTERN),
        metadata={"description": "pass as `cursor` for the next page; null: the last page"},
    )


def image_labels(gallery: int) -> Subquery:
    """(label, image_id) rows of the gallery: who is in each image. A label names one face,
    so an image's labels are its faces' labels once its faces are written; before that
    (pending), or where no face was found, the label the image was uploaded with."""
    on_faces = (
        select(Face.label.label("label"), Face.image_id.label("image_id"))
        .join(Image, Face.image_id == Image.id)
        .where(Image.gallery_id == gallery, Face.label.is_not(None))
    )
    without_faces = select(Image.label, Image.id).where(
        Image.gallery_id == gallery,
        Image.label.is_not(None),
        ~exists().where(Face.image_id == Image.id),
    )
    # UNION, not UNION ALL: an image counts once for a label, whichever model's faces hold it.
    return union(on_faces, without_faces).subquery("image_labels")


@bp.get("/v1/images")
@bp.input(ImagesQuery, location="query", arg_name="query")
@bp.output(ImagePage)
@bp.doc(summary="List gallery images, oldest first, filtered by label and status")
@requires(Scope.SEARCH)
def list_images(query: dict[str, Any]) -> dict[str, Any]:
    statement = (
        select(Image)
        .where(Image.gallery_id == gallery_id())
        .options(selectinload(Image.faces))
        .order_by(Image.id)
        .limit(query["limit"] + 1)
    )
    if "label" in query:
        labelled = image_labels(gallery_id())
        statement = statement.where(
            Image.id.in_(select(labelled.c.image_id).where(labelled.c.label == query["label"]))
        )
    if "status" in query:
        statement = statement.where(Image.status == ImageStatus(query["status"]))
    if "cursor" in query:
        (after,) = decode_cursor(query["cursor"], int)
        statement = statement.where(Image.id > after)
    rows = list(db().scalars(statement))
    page, more = rows[: query["limit"]], len(rows) > query["limit"]
    return {
        "items": [render_image(image) for image in page],
        "next_cursor": encode_cursor(page[-1].id) if more else None,
    }


@bp.get("/v1/jobs")
@bp.input(JobsQuery, location="query", arg_name="query")
@bp.output(JobPage)
@bp.doc(summary="List jobs, newest first, filtered by kind and status")
@requires(Scope.SEARCH)
def list_jobs(query: dict[str, Any]) -> dict[str, Any]:
    statement = (
        select(Job)
        .where(Job.gallery_id == gallery_id())
        .order_by(Job.created_at.desc(), Job.id.desc())
        .limit(query["limit"] + 1)
    )
    if "kind" in query:
        statement = statement.where(Job.kind == JobKind(query["kind"]))
    if "status" in query:
        statement = statement.where(Job.status == JobStatus(query["status"]))
    if "cursor" in query:
        created, job_id = decode_cursor(query["cursor"], str, str)
        try:
            created_at = datetime.fromisoformat(created)
        except ValueError as exc:
            raise ApiError(422, NOT_A_CURSOR, code="invalid_cursor") from exc
        statement = statement.where(
            or_(Job.created_at < created_at, and_(Job.created_at == created_at, Job.id < job_id))
        )
    rows = list(db().scalars(statement))
    page, more = rows[: query["limit"]], len(rows) > query["limit"]
    last = page[-1] if page else None
    return {
        "items": [serialize_job(job, with_items=False) for job in page],
        "next_cursor": encode_cursor(last.created_at.isoformat(), last.id)
        if more and last
        else None,
    }


@bp.get("/v1/labels")
@bp.input(LabelsQuery, location="query", arg_name="query")
@bp.output(LabelPage)
@bp.doc(
    summary="The gallery's labels (identities) with their image counts, alphabetically",
    description="A label is counted on the images where a face carries it (an image's label "
    "names its most prominent face; `PUT /v1/faces/{id}/label` names any other), and on "
    "images labelled at upload whose faces are not written yet or where none was found.",
)
@requires(Scope.SEARCH)
def list_labels(query: dict[str, Any]) -> dict[str, Any]:
    labelled = image_labels(gallery_id())
    statement = (
        select(labelled.c.label, func.count(labelled.c.image_id))
        .group_by(labelled.c.label)
        .order_by(labelled.c.label)
        .limit(query["limit"] + 1)
    )
    if "prefix" in query:
        # Escape LIKE's wildcards: a label may contain % or _.
        escaped = query["prefix"].replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        statement = statement.where(labelled.c.label.like(f"{escaped}%", escape="\\"))
    if "cursor" in query:
        (after,) = decode_cursor(query["cursor"], str)
        statement = statement.where(labelled.c.label > after)
    rows = db().execute(statement).all()
    page, more = rows[: query["limit"]], len(rows) > query["limit"]
    return {
        "items": [{"label": label, "images": count} for label, count in page],
        "next_cursor": encode_cursor(page[-1][0]) if more else None,
    }
