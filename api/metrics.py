"""``GET /metrics``: Prometheus exposition of the API's requests and of the system's state.

Request counts and latency are observed here. Jobs, images, faces (indexed or not) and queue
depth are read from Postgres and the broker at scrape time: the record, not a counter that
could drift. Rates such as images ingested per second come from these with ``deriv()``.
"""

from __future__ import annotations

import time

from apiflask import APIBlueprint, APIFlask
from flask import Response, g, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry
from sqlalchemy import func, select

from api.auth import requires
from api.context import Services
from api.errors import ApiError
from api.openapi import operation
from core.logging import get_logger
from core.metrics import HTTP_LATENCY, HTTP_REQUESTS, StateCollector, render
from core.queue import QUEUES
from models import Face, Image, Job, Scope
from models.db import session_scope

log = get_logger(__name__)

Row = tuple[str, str, dict[str, str], float]


def _database_rows(services: Services) -> list[Row]:
    rows: list[Row] = []
    with session_scope(services.sessions) as session:
        for kind, status, count in session.execute(
            select(Job.kind, Job.status, func.count()).group_by(Job.kind, Job.status)
        ):
            rows.append(
                (
                    "jobs",
                    "Jobs by kind and status",
                    {"kind": kind.value, "status": status.value},
                    count,
                )
            )
        for image_status, count in session.execute(
            select(Image.status, func.count()).group_by(Image.status)
        ):
            rows.append(
                (
                    "images",
                    "Gallery images by pipeline status",
                    {"status": image_status.value},
                    count,
                )
            )
        indexed = Face.indexed_at.is_not(None)
        for model, is_indexed, count in session.execute(
            select(Face.model_name, indexed, func.count()).group_by(Face.model_name, indexed)
        ):
            rows.append(
                (
                    "faces",
                    "Faces by model, and whether they are in the vector index",
                    {"model": model, "indexed": str(bool(is_indexed)).lower()},
                    count,
                )
            )
    return rows


def _queue_rows(services: Services) -> list[Row]:
    """Messages waiting in each queue, where the broker can tell."""
    settings = services.settings
    depths: dict[str, int] = {}
    if settings.filesystem_broker:
        folder = settings.broker_folder / "queue"
        for queue in QUEUES:
            depths[queue] = sum(1 for _ in folder.glob(f"*.{queue}.msg"))
    elif settings.broker_url.startswith(("redis://", "rediss://")):
        with services.celery.connection_for_read() as connection:
            client = connection.default_channel.client
            for queue in QUEUES:
                depths[queue] = int(client.llen(queue))
    return [
        ("queue_depth", "Tasks waiting in each queue", {"queue": q}, n) for q, n in depths.items()
    ]


def install(app: APIFlask, services: Services) -> None:
    def read_state() -> list[Row]:
        rows: list[Row] = []
        for source in (_database_rows, _queue_rows):
            try:
                rows.extend(source(services))
            except Exception:  # a scrape must not fail because one source is down
                log.warning("metrics source failed", source=source.__name__, exc_info=True)
        return rows

    # Built per app: its route closes over this app's services.
    bp = APIBlueprint("metrics", __name__, tag="Health")
    state = CollectorRegistry()
    state.register(StateCollector(read_state))

    @app.before_request
    def _start_timer() -> None:
        g.request_started = time.perf_counter()

    @app.after_request
    def _observe(response: Response) -> Response:
        route = request.url_rule.rule if request.url_rule else "unmatched"
        started = g.get("request_started")
        HTTP_REQUESTS.labels(request.method, route, str(response.status_code)).inc()
        if started is not None:
            HTTP_LATENCY.labels(request.method, route).observe(time.perf_counter() - started)
        return response

    @bp.get("/metrics")
    @bp.doc(
        summary="Prometheus metrics",
        description="Answers an admin key, or the `METRICS_TOKEN` setting as a bearer token.",
    )
    @operation(
        responses={
            200: {
                "description": f"Prometheus's text exposition format (`{CONTENT_TYPE_LATEST}`)",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            }
        }
    )
    @requires(Scope.ADMIN)
    def metrics() -> Response:
        caller = g.get("principal")  # None: the METRICS_TOKEN was sent
        if caller is not None and not caller.all_galleries:
            # The figures cover every gallery: not for a key bound to one.
            raise ApiError(403, "metrics need an admin key for every gallery, or METRICS_TOKEN")
        return Response(render(state), mimetype=CONTENT_TYPE_LATEST)

    app.register_blueprint(bp)
