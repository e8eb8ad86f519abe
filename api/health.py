"""Liveness and readiness."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from apiflask import APIBlueprint
from sqlalchemy import text

from api.auth import public
from api.context import db, services
from core.index import VectorIndex

bp = APIBlueprint("health", __name__, tag="Health")


@bp.get("/healthz")
@bp.doc(summary="Liveness: the process answers")
@public
def healthz() -> dict[str, str]:
    return {"status": "ok"}


def _check_database() -> str:
    db().execute(text("SELECT 1"))
    return "ok"


def _check_storage() -> str:
    services().store.check()
    return "ok"


def _check_broker() -> str:
    with services().celery.connection_for_write() as connection:
        connection.ensure_connection(max_retries=1, timeout=2)
    return "ok"


def _check_index() -> str:
    settings = services().settings
    if settings.embedded_index:
        # milvus-lite admits one process per path, and that process is the worker.
        return "skipped: the embedded index is opened by the worker only"
    index = VectorIndex(settings.milvus_uri, token=settings.milvus_token)
    try:
        index.check()
    finally:
        index.close()
    return "ok"


CHECKS: dict[str, Callable[[], str]] = {
    "database": _check_database,
    "storage": _check_storage,
    "broker": _check_broker,
    "index": _check_index,
}


@bp.get("/readyz")
@bp.doc(
    summary="Readiness: each part this service depends on answers",
    responses={200: "Every part is ready", 503: "At least one part is not"},
)
@public
def readyz() -> tuple[dict[str, Any], int]:
    results: dict[str, str] = {}
    for name, check in CHECKS.items():
        try:
            results[name] = check()
        except Exception as exc:  # a readiness probe reports failures, it doesn't raise them
            results[name] = f"error: {exc}"
    ready = all(not r.startswith("error") for r in results.values())
    return {"status": "ready" if ready else "unavailable", "checks": results}, 200 if ready else 503
