"""Request and response schemas: they validate input and generate the OpenAPI document."""

from __future__ import annotations

from apiflask import Schema, fields
from apiflask.validators import Length, Range


class Box(Schema):
    x = fields.Integer(required=True)
    y = fields.Integer(required=True)
    width = fields.Integer(required=True)
    height = fields.Integer(required=True)


class ErrorBody(Schema):
    status = fields.Integer()
    code = fields.String(metadata={"description": "stable machine-readable error code"})
    message = fields.String(metadata={"description": "what was wrong, for a person"})
    details = fields.Raw()


class ErrorOut(Schema):
    error = fields.Nested(ErrorBody)


# --- images ---------------------------------------------------------------------------


class ImageUploadIn(Schema):
    file = fields.List(
        fields.File(),
        required=True,
        metadata={"description": "one or more images (JPEG, PNG, WebP, BMP, GIF, TIFF)"},
    )
    label = fields.List(
        fields.String(validate=Length(min=1, max=200)),
        metadata={
            "description": "the identity of the person: one label for every file, or one "
            "`label` part per `file` part, in the same order"
        },
    )


class JobCreatedOut(Schema):
    job_id = fields.String(required=True)
    status = fields.String(required=True)
    job_url = fields.String()


class FaceOut(Schema):
    id = fields.Integer()
    box = fields.Nested(Box)
    confidence = fields.Float()
    landmarks = fields.Dict(keys=fields.String(), values=fields.List(fields.Integer()))
    model = fields.String()
    indexed = fields.Boolean(metadata={"description": "searchable (present in the vector index)"})


class ImageOut(Schema):
    id = fields.Integer()
    label = fields.String(allow_none=True)
    status = fields.String(metadata={"description": "pending, ready, no_face or failed"})
    error = fields.String(allow_none=True)
    sha256 = fields.String()
    content_type = fields.String()
    size_bytes = fields.Integer()
    width = fields.Integer()
    height = fields.Integer()
    filename = fields.String(allow_none=True)
    created_at = fields.DateTime()
    image_url = fields.String()
    faces = fields.List(fields.Nested(FaceOut))


# --- jobs -----------------------------------------------------------------------------


class Progress(Schema):
    total = fields.Integer()
    done = fields.Integer()
    failed = fields.Integer()
    skipped = fields.Integer()


class JobItemOut(Schema):
    position = fields.Integer()
    name = fields.String()
    status = fields.String()
    image_id = fields.Integer(allow_none=True)
    error = fields.String(allow_none=True)


class JobOut(Schema):
    id = fields.String()
    kind = fields.String(metadata={"description": "ingest, search or reindex"})
    status = fields.String(
        metadata={"description": "queued, running, succeeded, partial, failed or cancelled"}
    )
    progress = fields.Nested(Progress)
    error = fields.String(allow_none=True)
    created_at = fields.DateTime()
    started_at = fields.DateTime(allow_none=True)
    finished_at = fields.DateTime(allow_none=True)
    result = fields.Dict()
    items = fields.List(
        fields.Nested(JobItemOut),
        metadata={"description": "per-file outcome of an upload (first 1,000)"},
    )


# --- searches -------------------------------------------------------------------------


class SearchIn(Schema):
    file = fields.File(required=True, metadata={"description": "the query photo"})
    top_k = fields.Integer(
        load_default=None,
        validate=Range(min=1, max=100),
        metadata={"description": "matches per face (default 10, at most 100)"},
    )


class SearchCreatedOut(Schema):
    job_id = fields.String(required=True)
    search_id = fields.String(required=True)
    status = fields.String()
    job_url = fields.String()
    search_url = fields.String()


class MatchOut(Schema):
    rank = fields.Integer()
    score = fields.Float(metadata={"description": "cosine similarity, 1.0 = identical"})
    image_id = fields.Integer(allow_none=True)
    face_id = fields.Integer(allow_none=True)
    label = fields.String(allow_none=True)
    box = fields.Nested(Box)
    image_url = fields.String(allow_none=True)


class SearchFaceOut(Schema):
    box = fields.Nested(Box)
    confidence = fields.Float()
    landmarks = fields.Dict(keys=fields.String(), values=fields.List(fields.Integer()))
    matches = fields.List(fields.Nested(MatchOut))


class SearchOut(Schema):
    id = fields.String()
    job_id = fields.String()
    status = fields.String()
    error = fields.String(allow_none=True)
    top_k = fields.Integer()
    model = fields.String(allow_none=True)
    created_at = fields.DateTime()
    finished_at = fields.DateTime(allow_none=True)
    query = fields.Dict(metadata={"description": "width, height and image_url of the query"})
    faces = fields.List(fields.Nested(SearchFaceOut))
