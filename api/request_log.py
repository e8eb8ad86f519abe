"""One structured log line per request, with a request id that the response echoes, and
the job id of whatever job the request made or read, so a job can be followed from the API
into the workers (whose lines carry the same job id and the Celery task id)."""

from __future__ import annotations

import re
import time
import uuid

from apiflask import APIFlask
from flask import Response, g, request

from core.logging import bind_context, clear_context, get_logger

log = get_logger("api.request")
REQUEST_ID_HEADER = "X-Request-ID"
# A client's own id is kept only if it is plain: it ends up in every log line.
SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
# Path parts that name a person: logged as the route's placeholder, so that erasing a person
# leaves no trace of their name in the logs either.
PERSONAL_ARGS = frozenset({"label"})


def logged_path() -> str:
    if request.url_rule is not None and PERSONAL_ARGS & (request.view_args or {}).keys():
        # The rule with its converters dropped: /v1/labels/<path:label> -> /v1/labels/<label>
        return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"<\1>", request.url_rule.rule)
    return request.path


def install(app: APIFlask) -> None:
    @app.before_request
    def _begin() -> None:
        clear_context()
        given = request.headers.get(REQUEST_ID_HEADER, "")
        g.request_id = given if SAFE_ID.match(given) else uuid.uuid4().hex
        g.log_started = time.perf_counter()
        bind_context(request_id=g.request_id)
        job_id = (request.view_args or {}).get("job_id")
        if job_id:
            bind_context(job_id=job_id)

    @app.after_request
    def _end(response: Response) -> Response:
        response.headers[REQUEST_ID_HEADER] = g.get("request_id", "")
        started = g.get("log_started")
        body = response.get_json(silent=True) if response.is_json else None
        job_id = body.get("job_id") if isinstance(body, dict) else None
        log.info(
            "request",
            method=request.method,
            path=logged_path(),
            status=response.status_code,
            ms=round((time.perf_counter() - started) * 1000, 1) if started else None,
            **({"job_id": job_id} if job_id else {}),
        )
        return response

    @app.teardown_request
    def _forget(_: BaseException | None) -> None:
        clear_context()
