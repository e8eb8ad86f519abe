"""What the route decorators do not say in the OpenAPI document, added once for every
operation from the app's own rules, so the document describes what the API does:

- the bearer scheme, and on each operation whether it needs a key and which scope
  (``api.auth``), so the docs page's "Authorize" works and a generated client knows;
- the answers every protected operation can give besides its own: 401 (with
  ``WWW-Authenticate``), 403, 429 (with ``Retry-After``; when ``RATE_LIMIT`` is set) and 503
  (with ``Retry-After``: the database or the object store is down); and 422 for text with
  control characters (``api.text``), on every operation;
- every tag once (several blueprints share one);
- the headers an operation reads: ``Facesearch-Gallery`` on protected operations,
  ``Idempotency-Key`` on those that create a job (``api.jobs.accepts_idempotency_key``) and
  ``Prefer`` on those that may wait for their job (``api.waiting.reads_prefer_wait``).

Every error answer has the project's one error body (``schemas.ErrorOut``; APIFlask's own
error answers use it too, see ``HTTP_ERROR_SCHEMA`` in ``create_app``).
"""

from __future__ import annotations

import re
from typing import Any

from apiflask import APIFlask

from api.auth import GALLERY_HEADER, SECURITY_SCHEME, required_scope
from api.jobs import IDEMPOTENCY_HEADER, MAX_IDEMPOTENCY_KEY, accepts_idempotency_key
from api.waiting import PREFER, reads_prefer_wait
from core.notify import MAX_WAIT_S

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
    "schema": {"type": "string", "maxLength": 100},
}
IDEMPOTENCY_PARAMETER = {
    "name": IDEMPOTENCY_HEADER,
    "in": "header",
    "required": False,
    "description": "Retry safely: the same key, API key and request answer with the job the "
    "first one made (the same key with a different request: 422; while the first is not yet "
    "committed: 409). Keys expire after IDEMPOTENCY_KEY_TTL_S (24 h).",
    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_IDEMPOTENCY_KEY},
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
        "403": _error(f"The key's scope is below {needed}, or it may not do this"),
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
            responses.setdefault("422", _error("Text with a control character, or bad input"))
            if accepts_idempotency_key(view):
                _add_parameter(operation, IDEMPOTENCY_PARAMETER)
            if reads_prefer_wait(view):
                _add_parameter(operation, PREFER_PARAMETER)
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
