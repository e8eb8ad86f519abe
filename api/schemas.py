"""Request and response schemas: they validate input and generate the OpenAPI document."""

from __future__ import annotations

from apiflask import Schema, fields
from apiflask.validators import Length, OneOf, Range

from models import MAX_LABEL

# An http(s) URL (core.destinations: any other scheme is refused; the scheme's case is free).
HTTP_URL = {"format": "uri", "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://[^/?#]"}


class Box(Schema):
    x = fields.Integer(required=True)
    y = fields.Integer(required=True)
    width = fields.Integer(required=True)
    height = fields.Integer(required=True)


class ErrorBody(Schema):
    status = fields.Integer(required=True, metadata={"description": "the answer's HTTP status"})
    code = fields.String(
        required=True, metadata={"description": "stable machine-readable error code"}
    )
    message = fields.String(required=True, metadata={"description": "what was wrong, for a person"})
    details = fields.Raw(
        required=True, metadata={"description": "more about it, where there is more: an object"}
    )


class ErrorOut(Schema):
    """The one error body of every 4xx and 5xx answer (api.errors)."""

    error = fields.Nested(ErrorBody, required=True)


# --- images ---------------------------------------------------------------------------


class ImageUploadIn(Schema):
    file = fields.List(
        fields.File(),
        required=True,
        validate=Length(min=1),
        metadata={
            "description": "one or more images (JPEG, PNG, WebP, BMP, GIF or TIFF; at least "
            "12 px a side), each a part with a file name; at most MAX_FILES_PER_REQUEST"
        },
    )
    label = fields.List(
        fields.String(validate=Length(min=1, max=MAX_LABEL)),
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
    label = fields.String(
        allow_none=True,
        metadata={
            "description": "the person this face is; null: unlabelled. An image's label goes "
            "to its most prominent face (of the faces at least half as large as the largest, the "
            "one nearest the centre); set it with PUT /v1/faces/{id}/label"
        },
    )


class ImageOut(Schema):
    id = fields.Integer()
    label = fields.String(
        allow_none=True,
        metadata={
            "description": "the label asked at upload; it names the image's most prominent "
            "face, whose `label` (in `faces`) is what searches answer"
        },
    )
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
    total_known = fields.Boolean(
        metadata={"description": "false while an archive is still being read: total grows"}
    )
    images_per_s = fields.Float(
        allow_none=True, metadata={"description": "items finished per second since the start"}
    )
    eta_s = fields.Float(
        allow_none=True,
        metadata={"description": "estimated seconds left; null when unknown or finished"},
    )


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
    job_url = fields.String()
    items = fields.List(
        fields.Nested(JobItemOut),
        metadata={
            "description": "per-file outcome: the first 100 items; "
            "GET /v1/jobs/{id}/items pages through all"
        },
    )


class JobWaitQuery(Schema):
    wait = fields.Integer(
        validate=Range(min=0, max=30),  # = core.notify.MAX_WAIT_S
        metadata={
            "description": "long poll: answer as soon as the job has ended, or after this many "
            "seconds (at most 30) with its state then"
        },
    )


class JobItemsQuery(Schema):
    status = fields.String(
        validate=OneOf(["pending", "succeeded", "failed", "skipped"]),
        metadata={"description": "only items in this status"},
    )
    cursor = fields.Integer(
        # A position is a 32-bit column: past it, no item (and no database error).
        validate=Range(min=-1, max=2**31 - 1),
        metadata={"description": "`next_cursor` of the previous page"},
    )
    limit = fields.Integer(load_default=100, validate=Range(min=1, max=1000))


class JobItemsOut(Schema):
    items = fields.List(fields.Nested(JobItemOut))
    next_cursor = fields.Integer(
        allow_none=True, metadata={"description": "pass as `cursor` for the next page; null: last"}
    )


# --- searches -------------------------------------------------------------------------


class SearchIn(Schema):
    file = fields.File(required=True, metadata={"description": "the query photo"})
    top_k = fields.Integer(
        load_default=None,
        validate=Range(min=1, max=100),
        metadata={"description": "matches per face (default 10, at most 100)"},
    )
    min_probability = fields.Float(
        load_default=None,
        validate=Range(min=0, max=1),
        metadata={
            "description": "keep only matches whose same-person probability is at least this "
            "(0 to 1; e.g. 0.99 keeps the matches judged `same`); a face left with no match "
            "says so in its `message`. Refused (422) when the search model has no calibration"
        },
    )
    callback_url = fields.String(
        load_default=None,
        validate=Length(min=1, max=2048),
        metadata={
            **HTTP_URL,
            "description": "an http(s) URL told when the search finishes (search.completed "
            "or search.failed), signed with the `callback_secret` of the answer in the Standard "
            "Webhooks headers `webhook-id`, `webhook-timestamp` and `webhook-signature`",
        },
    )


class SearchCreatedOut(Schema):
    job_id = fields.String(required=True)
    search_id = fields.String(required=True)
    status = fields.String()
    job_url = fields.String()
    search_url = fields.String()
    callback_secret = fields.String(
        metadata={"description": "with a callback_url: the secret that signs its delivery"}
    )


class SamePersonOut(Schema):
    probability = fields.Float(
        required=True,
        allow_none=True,
        metadata={
            "description": "calibrated probability that the two faces are the same person, for "
            "a pair with even odds (fitted on LFW's pairs); null when the model has no "
            "calibration"
        },
    )
    # No enum in the document: a nullable enum (OpenAPI 3.0 lists null among its values)
    # becomes four types in the generated client. The three values are in the description.
    verdict = fields.String(
        required=True,
        allow_none=True,
        metadata={
            "description": "one of `same` (probability at least 0.99), `uncertain` (between) or "
            "`different` (at most 0.01); null when the model has no calibration"
        },
    )


class MatchOut(Schema):
    rank = fields.Integer()
    score = fields.Float(metadata={"description": "cosine similarity, 1.0 = identical"})
    same_person = fields.Nested(
        SamePersonOut, metadata={"description": "is it the same person? (the README explains)"}
    )
    image_id = fields.Integer(allow_none=True)
    face_id = fields.Integer(allow_none=True)
    label = fields.String(allow_none=True)
    box = fields.Nested(Box)
    image_url = fields.String(allow_none=True)


class SearchFaceOut(Schema):
    box = fields.Nested(Box)
    confidence = fields.Float()
    landmarks = fields.Dict(keys=fields.String(), values=fields.List(fields.Integer()))
    message = fields.String(
        allow_none=True,
        metadata={
            "description": "what the matches mean, in words, when no match is judged the same "
            "person: `No one in the gallery...` (null when one is, or without a calibration)"
        },
    )
    matches = fields.List(fields.Nested(MatchOut))


class SearchOut(Schema):
    id = fields.String()
    job_id = fields.String()
    status = fields.String()
    error = fields.String(allow_none=True)
    top_k = fields.Integer()
    min_probability = fields.Float(
        allow_none=True, metadata={"description": "the search's min_probability, if it had one"}
    )
    model = fields.String(allow_none=True)
    calibrated = fields.Boolean(
        metadata={"description": "whether the model's matches carry same-person verdicts"}
    )
    created_at = fields.DateTime()
    finished_at = fields.DateTime(allow_none=True)
    search_url = fields.String()
    job_url = fields.String()
    query = fields.Dict(metadata={"description": "width, height and image_url of the query"})
    faces = fields.List(fields.Nested(SearchFaceOut))


class SearchWaitedOut(SearchOut):
    callback_secret = fields.String(
        metadata={"description": "with a callback_url: the secret that signs its delivery"}
    )


# --- webhooks -------------------------------------------------------------------------

WEBHOOK_EVENT_TYPES = ["search.completed", "search.failed", "job.completed"]


class WebhookIn(Schema):
    url = fields.String(
        required=True,
        validate=Length(min=1, max=2048),
        metadata={
            **HTTP_URL,
            "description": "an http(s) URL on a public address (WEBHOOK_ALLOWED_HOSTS may "
            "allow others)",
        },
    )
    events = fields.List(
        fields.String(validate=OneOf(WEBHOOK_EVENT_TYPES)),
        required=True,
        validate=Length(min=1),
        metadata={"description": "any of " + ", ".join(WEBHOOK_EVENT_TYPES)},
    )


class WebhookOut(Schema):
    id = fields.String()
    url = fields.String()
    events = fields.List(fields.String())
    active = fields.Boolean()
    created_at = fields.DateTime()
    secret_rotated_at = fields.DateTime(allow_none=True)
    previous_secret_expires_at = fields.DateTime(
        allow_none=True, metadata={"description": "until when the old secret also signs"}
    )
    deliveries_url = fields.String()
    secret = fields.String(
        metadata={"description": "the signing secret: only in the answers to creation and rotation"}
    )


class WebhookListOut(Schema):
    webhooks = fields.List(fields.Nested(WebhookOut))


class RotateSecretIn(Schema):
    previous_valid_s = fields.Integer(
        load_default=0,
        validate=Range(min=0, max=7 * 24 * 3600),
        metadata={
            "description": "seconds during which deliveries are signed with the old secret "
            "too (default 0: it stops at once; at most 7 days)"
        },
    )


class DeliveryQuery(Schema):
    limit = fields.Integer(load_default=None, validate=Range(min=1, max=500))


class DeliveryAttemptOut(Schema):
    number = fields.Integer()
    attempted_at = fields.DateTime()
    status_code = fields.Integer(allow_none=True, metadata={"description": "null: no answer"})
    latency_ms = fields.Integer(allow_none=True)
    succeeded = fields.Boolean()
    error = fields.String(allow_none=True)
    response_excerpt = fields.String(
        allow_none=True, metadata={"description": "the first 2 KiB of the answer's body"}
    )


class DeliveryOut(Schema):
    id = fields.String()
    event_id = fields.String(metadata={"description": "the same on every attempt: dedupe on it"})
    event_type = fields.String()
    subscription_id = fields.String(allow_none=True)
    search_id = fields.String(allow_none=True, metadata={"description": "for a callback_url"})
    url = fields.String()
    status = fields.String(metadata={"description": "pending, succeeded or failed"})
    attempts = fields.Integer()
    next_attempt_at = fields.DateTime(allow_none=True)
    last_attempt_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime()
    attempt_log = fields.List(fields.Nested(DeliveryAttemptOut))


class DeliveryListOut(Schema):
    deliveries = fields.List(fields.Nested(DeliveryOut))


# --- galleries and keys ---------------------------------------------------------------

SCOPES = ["search", "write", "admin"]


class GalleryIn(Schema):
    name = fields.String(
        required=True,
        validate=Length(min=1, max=100),
        metadata={
            "description": "letters, digits, '.', '_' or '-', starting with a letter or digit"
        },
    )


class GalleryOut(Schema):
    id = fields.Integer()
    name = fields.String()
    created_at = fields.DateTime()
    images = fields.Integer(metadata={"description": "images in the gallery"})


class GalleryListOut(Schema):
    galleries = fields.List(fields.Nested(GalleryOut))


class KeyIn(Schema):
    scope = fields.String(
        required=True,
        validate=OneOf(SCOPES),
        metadata={"description": "search < write < admin; each includes the ones before"},
    )
    name = fields.String(
        load_default=None,
        validate=Length(min=1, max=100),
        metadata={"description": "what the key is for, to recognise it later"},
    )
    gallery = fields.String(
        load_default=None,
        validate=Length(min=1, max=100),
        metadata={
            "description": "the gallery the key is bound to (default: the request's gallery)"
        },
    )
    all_galleries = fields.Boolean(
        load_default=False,
        metadata={"description": "an admin key for every gallery (only such a key may make one)"},
    )


class KeyOut(Schema):
    id = fields.String()
    prefix = fields.String(metadata={"description": "the key's visible start: fsk_<prefix>_..."})
    name = fields.String(allow_none=True)
    scope = fields.String()
    gallery = fields.String(allow_none=True, metadata={"description": "null: every gallery"})
    created_at = fields.DateTime()
    last_used_at = fields.DateTime(allow_none=True, metadata={"description": "to the minute"})
    revoked_at = fields.DateTime(allow_none=True)
    key = fields.String(metadata={"description": "the key itself: only in the answer to creation"})


class KeyListOut(Schema):
    keys = fields.List(fields.Nested(KeyOut))
