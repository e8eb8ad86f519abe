"""One error shape for every 4xx and 5xx: ``{"error": {"status", "code", "message", "details"}}``.

Messages say what was wrong in words a client's developer can act on.
"""

from __future__ import annotations

from typing import Any

from apiflask import APIFlask, HTTPError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from core.logging import get_logger

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
        return body, status, error.headers

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(_: RequestEntityTooLarge) -> tuple[dict[str, Any], int]:
        limit = app.config.get("MAX_CONTENT_LENGTH")
        message = f"the request body is larger than the limit of {limit:,} bytes"
        body = {"error": {"status": 413, "code": CODES[413], "message": message, "details": {}}}
        return body, 413

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> tuple[dict[str, Any], int]:
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
        return body, status

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
