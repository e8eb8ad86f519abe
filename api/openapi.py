"""What the route decorators do not say in the OpenAPI document, added once for every
operation from the app's own rules, so the document describes what the API does (and
``tests/test_contract.py`` holds it to that, with schemathesis against a live server):

- the bearer scheme, and on each operation whether it needs a key and which scope
  (``api.auth``), so the docs page's "Authorize" works and a generated client knows;
- the answers every protected operation can give besides its own: 401 (with
  ``WWW-Authenticate``), 403, 429 (with ``Retry-After``; when ``RATE_LIMIT`` is set) and 503
  (with ``Retry-After``: the database or the object store is down); 413 where a request has a
  body (``MAX_REQUEST_BYTES``); and 422 for text with control characters (``api.text``), on
  every operation, whose text inputs also say so with a pattern;
- every tag once (several blueprints share one);
- the headers an operation reads: ``Facesearch-Gallery`` on protected operations,
  ``Idempotency-Key`` on those that create a job (``api.jobs.accepts_idempotency_key``) and
  ``Prefer`` on those that may wait for their job (``api.waiting.reads_prefer_wait``);
- what a route declares with :func:`operation`: a request body APIFlask cannot describe (a
  raw archive, one body in several media types), the media types of a multipart part, and
  answers that are not JSON (image bytes, the metrics text).

Every error answer has the project's one error body (``schemas.ErrorOut``; APIFlask's own
error answers use it too, see ``HTTP_ERROR_SCHEMA`` in ``create_app``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

from apiflask import APIFlask

from api.auth import GALLERY_HEADER, SECURITY_SCHEME, required_scope
from api.context import EXTENSION
from api.jobs import IDEMPOTENCY_HEADER, MAX_IDEMPOTENCY_KEY, accepts_idempotency_key
from api.text import READ_HEADERS
from api.waiting import PREFER, reads_prefer_wait
from core.images import CONTENT_TYPES
from core.notify import MAX_WAIT_S

F = TypeVar("F", bound=Callable[..., Any])

# What api.text refuses in any text a request carries (control characters, category Cc), as
# a pattern on every text input: a client learns it from the document, not from a 422.
NO_CONTROL_CHARACTERS = "^[^\\x00-\\x1f\\x7f-\\x9f]*$"
# The media types of the images the API takes and serves (core.images.CONTENT_TYPES).
IMAGE_TYPES = sorted(set(CONTENT_TYPES.values()))
ERROR_CONTENT = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}
RETRY_AFTER = {
    "Retry-After": {
        "description": "seconds to wait before trying again",
        "schema": {"type": "integer"},
    }
}
GALLERY_PARAMETER = {
    "name": GALLERY_HEADER,
    "in": "header",
    "required": False,
    "description": "With an admin key for every gallery: the gallery to act in (by name; "
    "default `default`). A key bound to a gallery always acts in its own.",
    # Any text: a key bound to a gallery ignores it, and a name no gallery has is a 404.
    "schema": {"type": "string", "pattern": NO_CONTROL_CHARACTERS},
}
IDEMPOTENCY_PARAMETER = {
    "name": IDEMPOTENCY_HEADER,
    "in": "header",
    "required": False,
    "description": "Retry safely: the same key, API key and request answer with the job the "
    "first one made (the same key with a different request: 422; while the first is not yet "
    "committed: 409). Keys expire after IDEMPOTENCY_KEY_TTL_S (24 h). A UUID is a good key.",
    "schema": {
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_IDEMPOTENCY_KEY,
        "pattern": f"^[\\x20-\\x7e]{{1,{MAX_IDEMPOTENCY_KEY}}}$",  # printable ASCII
    },
}

PREFER_PARAMETER = {
    "name": PREFER,
    "in": "header",
    "required": False,
    "description": f"RFC 7240. `wait=N`: wait up to N seconds (at most {MAX_WAIT_S}; more is "
    "taken as the most) for the job to end, and answer with its result if it does. "
    "Other preferences, and a `wait` that is not a whole number of seconds, are ignored.",
    "schema": {"type": "string"},
}


_OPERATION_ATTR = "_facesearch_openapi"


def operation(
    *,
    request_body: dict[str, Any] | None = None,
    part_types: dict[str, list[str]] | None = None,
    responses: dict[int, dict[str, Any]] | None = None,
    parameters: list[dict[str, Any]] | None = None,
) -> Callable[[F], F]:
    """Say what APIFlask's decorators cannot: ``request_body``, a complete request body object
    (a raw body, or one body in several media types); ``part_types``, the media types a
    multipart part may have; ``responses``, complete response objects that replace
    APIFlask's for their status (bytes or text, not JSON); ``parameters``, more of them."""

    def mark(view: F) -> F:
        setattr(
            view,
            _OPERATION_ATTR,
            {
                "request_body": request_body,
                "part_types": part_types or {},
                "responses": responses or {},
                "parameters": parameters or [],
            },
        )
        return view

    return mark


# What @bp.doc(responses=...) takes when an answer is more than its description.
Answers = dict[int | str, dict[str, str | dict[str, dict[str, Any]]]]
LOCATION = {"Location": {"description": "the job's URL", "schema": {"type": "string"}}}


def error_answer(description: str) -> dict[str, str | dict[str, dict[str, Any]]]:
    """An error answer for @bp.doc(responses=...), with the project's error body."""
    return {"description": description, "content": ERROR_CONTENT}


def binary_content(media_types: list[str]) -> dict[str, Any]:
    """A content object of raw bytes in any of ``media_types``."""
    return {t: {"schema": {"type": "string", "format": "binary"}} for t in media_types}


def _error(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": description, "content": ERROR_CONTENT}
    if headers:
        answer["headers"] = headers
    return answer


def _protected_answers(needed: str) -> dict[str, dict[str, Any]]:
    return {
        "401": _error(
            "No API key, or not a valid one (malformed, unknown, revoked)",
            {"WWW-Authenticate": {"schema": {"type": "string"}}},
        ),
        "403": _error(
            f"The key's scope is below {needed}, or it may not do this",
            {"WWW-Authenticate": {"schema": {"type": "string"}}},
        ),
        "429": _error("Too many requests for this key (RATE_LIMIT)", RETRY_AFTER),
        "503": _error("The database or the object store is unavailable", RETRY_AFTER),
    }


def _openapi_path(rule: str) -> str:
    """``/v1/images/<int:image_id>`` -> ``/v1/images/{image_id}``."""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def _add_parameter(operation: dict[str, Any], parameter: dict[str, Any]) -> None:
    parameters = operation.setdefault("parameters", [])
    if not any(p.get("name") == parameter["name"] for p in parameters):
        parameters.append(parameter)


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref", "")
    if ref.startswith("#/components/schemas/"):
        resolved: dict[str, Any] = spec["components"]["schemas"][ref.rsplit("/", 1)[1]]
        return resolved
    return schema


def _refuse_control_characters(spec: dict[str, Any], schema: dict[str, Any]) -> None:
    """Add the pattern of api.text to every free text of an input schema (in place)."""
    schema = _resolve(spec, schema)
    kind = schema.get("type")
    if kind == "string":
        if not ({"pattern", "enum", "format"} & schema.keys()):
            schema["pattern"] = NO_CONTROL_CHARACTERS
    elif kind == "array" and isinstance(schema.get("items"), dict):
        _refuse_control_characters(spec, schema["items"])
    elif kind == "object":
        for value in schema.get("properties", {}).values():
            _refuse_control_characters(spec, value)


def _text_inputs(spec: dict[str, Any], operation: dict[str, Any]) -> None:
    for parameter in operation.get("parameters", []):
        # Of the headers, api.text reads only READ_HEADERS (Prefer, say, is parsed, not read).
        if parameter["in"] == "header" and parameter["name"] not in READ_HEADERS:
            continue
        if "schema" in parameter:
            _refuse_control_characters(spec, parameter["schema"])
    for media in operation.get("requestBody", {}).get("content", {}).values():
        if "schema" in media:
            _refuse_control_characters(spec, media["schema"])


def _declared(spec: dict[str, Any], operation: dict[str, Any], view: Callable[..., Any]) -> None:
    """Merge what the route declared with :func:`operation`."""
    declared = getattr(view, _OPERATION_ATTR, None)
    if declared is None:
        return
    if declared["request_body"] is not None:
        operation["requestBody"] = declared["request_body"]
    for part, media_types in declared["part_types"].items():
        multipart = operation["requestBody"]["content"]["multipart/form-data"]
        multipart.setdefault("encoding", {})[part] = {"contentType": ", ".join(media_types)}
    for status, answer in declared["responses"].items():
        operation["responses"][str(status)] = answer
    for parameter in declared["parameters"]:  # in place of APIFlask's, if it has one
        parameters = operation.setdefault("parameters", [])
        parameters[:] = [p for p in parameters if p["name"] != parameter["name"]]
        parameters.append(parameter)


def _required_body(spec: dict[str, Any], operation: dict[str, Any]) -> None:
    """A body whose schema requires a field is itself required (APIFlask does not say so)."""
    body = operation.get("requestBody")
    if body is None or "required" in body:
        return
    schemas = [_resolve(spec, m.get("schema", {})) for m in body.get("content", {}).values()]
    if any(schema.get("required") for schema in schemas):
        body["required"] = True


def _error_body(spec: dict[str, Any]) -> None:
    """Every error answer has all four fields (api.errors); the document says so."""
    schemas = spec["components"]["schemas"]
    schemas["ErrorBody"]["required"] = ["status", "code", "message", "details"]
    schemas["ErrorOut"]["required"] = ["error"]
    schemas["ErrorOut"]["example"] = {
        "error": {
            "status": 404,
            "code": "not_found",
            "message": "there is no image 42",
            "details": {},
        }
    }


def document(app: APIFlask, spec: dict[str, Any]) -> dict[str, Any]:
    # Blueprints sharing a tag (health and metrics, jobs and job control) each list it; the
    # specification wants every tag once.
    spec["tags"] = list({tag["name"]: tag for tag in spec.get("tags", [])}.values())
    components = spec.setdefault("components", {})
    components.setdefault("securitySchemes", {})[SECURITY_SCHEME] = {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key: `Authorization: Bearer fsk_...`. Make one with "
        "`facesearch keys create` or `POST /v1/keys`. Scopes: search < write < admin. "
        f"An admin key for every gallery picks one with the `{GALLERY_HEADER}` header.",
    }
    _error_body(spec)
    settings = app.extensions[EXTENSION].settings
    upload = spec["components"]["schemas"].get("ImageUploadIn")
    if upload is not None:  # the limit is a setting: the document says this server's
        upload["properties"]["file"]["maxItems"] = settings.max_files_per_request
    for rule in app.url_map.iter_rules():
        operations = spec.get("paths", {}).get(_openapi_path(rule.rule))
        if not operations:
            continue
        needed = required_scope(app, rule.endpoint)
        view = app.view_functions[rule.endpoint]
        for method in rule.methods or ():
            operation = operations.get(method.lower())
            if operation is None:
                continue
            responses = operation.setdefault("responses", {})
            _declared(spec, operation, view)
            responses.setdefault("422", _error("Text with a control character, or bad input"))
            _required_body(spec, operation)
            body_types = operation.get("requestBody", {}).get("content", {})
            if body_types:
                responses.setdefault("413", _error("The request is larger than the limit"))
            if "application/json" in body_types:
                responses.setdefault("400", _error("The body is not JSON"))
            if accepts_idempotency_key(view):
                _add_parameter(operation, IDEMPOTENCY_PARAMETER)
                responses.setdefault(
                    "409",
                    _error(
                        f"The {IDEMPOTENCY_HEADER} was used for another kind of job, or its "
                        "first request is not finished yet (retry after `Retry-After`)",
                        RETRY_AFTER,
                    ),
                )
            if reads_prefer_wait(view):
                _add_parameter(operation, PREFER_PARAMETER)
            _text_inputs(spec, operation)
            if needed is None:
                operation["security"] = []
                continue
            operation["security"] = [{SECURITY_SCHEME: []}]
            for status, answer in _protected_answers(needed).items():
                responses.setdefault(status, answer)
            _add_parameter(operation, GALLERY_PARAMETER)
            note = f"Needs an API key with the `{needed}` scope (or higher)."
            description = operation.get("description")
            operation["description"] = f"{description}\n\n{note}" if description else note
    return spec


def install(app: APIFlask) -> None:
    app.spec_processor(lambda spec: document(app, spec) if isinstance(spec, dict) else spec)
