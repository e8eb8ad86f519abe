"""One error shape for every 4xx and 5xx: ``{"error": {"status", "code", "message", "details"}}``.

Messages say what was wrong in words a client's developer can act on.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy.exc
from apiflask import APIFlask, HTTPError
from werkzeug.exceptions import HTTPException, MethodNotAllowed, RequestEntityTooLarge

from core.logging import get_logger
from core.storage import ObjectNotFound, StorageError

log = get_logger(__name__)

CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_input",
    429: "too_many_requests",
    500: "internal_error",
    503: "unavailable",
}


class ApiError(HTTPError):
    """An HTTPError that also carries a stable machine-readable ``code``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(status, message, detail=details or {}, headers=headers)
        self.code = code or CODES.get(status, "error")


def _describe_validation(detail: Any) -> str:
    """Flatten webargs' nested {location: {field: [messages]}} into one sentence."""
    parts: list[str] = []
    if isinstance(detail, dict):
        for fields in detail.values():
            if isinstance(fields, dict):
                for field, messages in fields.items():
                    text = " ".join(messages) if isinstance(messages, list) else str(messages)
                    parts.append(f"{field}: {text}")
    return "; ".join(parts) or "the request is not valid"


# A dependency that is away answers 503 with this Retry-After: long enough not to hammer a
# restarting database or store, short enough that a client's retry lands soon after it is back.
RETRY_AFTER_S = 5
# What the database driver raises when the server is down, restarting or out of connections
# (OperationalError, InterfaceError), and the pool's own wait running out (TimeoutError).
DATABASE_DOWN = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,
)


def unavailable(what: str) -> dict[str, Any]:
    return {
        "error": {
            "status": 503,
            "code": "unavailable",
            "message": f"{what} is unavailable; try again in a few seconds",
            "details": {"dependency": what.removeprefix("the ")},
        }
    }


def register_error_handlers(app: APIFlask) -> None:
    @app.error_processor
    def _render(error: HTTPError) -> tuple[dict[str, Any], int, Any]:
        status = error.status_code
        code = getattr(error, "code", None) or CODES.get(status, "error")
        message = error.message
        details = error.detail
        if status == 422 and message == "Validation error":
            message = _describe_validation(details)
        body = {"error": {"status": status, "code": code, "message": message, "details": details}}
        headers = dict(error.headers or {})
        if status == 503:
            headers.setdefault("Retry-After", str(RETRY_AFTER_S))
        return body, status, headers

    def _database_down(exc: Exception) -> tuple[dict[str, Any], int, dict[str, str]]:
        log.warning("database unavailable", error=(str(exc).splitlines() or [""])[0])
        return unavailable("the database"), 503, {"Retry-After": str(RETRY_AFTER_S)}

    for error_type in DATABASE_DOWN:
        app.register_error_handler(error_type, _database_down)

    @app.errorhandler(StorageError)
    def _store_down(exc: StorageError) -> tuple[dict[str, Any], int, dict[str, str]]:
        if isinstance(exc, ObjectNotFound):
            # Routes answer a missing object themselves; one that let this through has a bug.
            body, status = _unexpected(exc)
            return body, status, {}
        log.warning("object store unavailable", error=str(exc))
        return unavailable("the object store"), 503, {"Retry-After": str(RETRY_AFTER_S)}

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(_: RequestEntityTooLarge) -> tuple[dict[str, Any], int]:
        limit = app.config.get("MAX_CONTENT_LENGTH")
        message = f"the request body is larger than the limit of {limit:,} bytes"
        body = {"error": {"status": 413, "code": CODES[413], "message": message, "details": {}}}
        return body, 413

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> tuple[dict[str, Any], int, dict[str, str]]:
        status = exc.code or 500
        message = exc.description or exc.name
        body = {
            "error": {
                "status": status,
                "code": CODES.get(status, "error"),
                "message": message,
                "details": {},
            }
        }
        headers = {}
        if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
            # RFC 9110 section 15.5.6: a 405 says which methods the resource has.
            headers["Allow"] = ", ".join(sorted(exc.valid_methods))
        return body, status, headers

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> tuple[dict[str, Any], int]:
        # A bug, not bad input: logged with its traceback; the client gets no internals.
        log.exception("unhandled error")
        body = {
            "error": {
                "status": 500,
                "code": CODES[500],
                "message": "internal error; it has been logged",
                "details": {},
            }
        }
        return body, 500
