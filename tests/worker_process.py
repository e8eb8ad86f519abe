"""A real Celery worker process for end-to-end tests, API keys for them, and waiting on jobs
through the API."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from cli.lfw import PROJECT_ROOT
from models import DEFAULT_GALLERY_NAME, Scope
from models.db import make_engine, make_session_factory, session_scope
from services.galleries import get_or_create_gallery
from services.keys import create_key

READY_TIMEOUT_S = 120
JOB_TIMEOUT_S = 180


def start_worker(
    env: dict[str, str],
    log_path: Path,
    *,
    args: tuple[str, ...] = ("--role", "all"),
    ready: int = 1,
) -> subprocess.Popen[bytes]:
    """`facesearch worker --role all` (every queue in one process) with ``env``, logging to
    ``log_path`` (appended, so a second worker of the same test keeps the first one's lines),
    once ``ready`` of its Celery processes say they are ready."""
    start = log_path.stat().st_size if log_path.exists() else 0
    with log_path.open("ab") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "worker", *args],
            env=env,
            cwd=PROJECT_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + READY_TIMEOUT_S
    while log_path.read_bytes()[start:].count(b"ready.") < ready:
        if worker.poll() is not None or time.monotonic() > deadline:
            stop_worker(worker)
            pytest.fail("worker not ready: " + log_path.read_text()[-3000:])
        time.sleep(0.3)
    return worker


def make_api_key(
    database_url: str, *, scope: Scope = Scope.ADMIN, gallery: str | None = DEFAULT_GALLERY_NAME
) -> str:
    """A key committed to the database at ``database_url``, bound to ``gallery`` (made if
    missing; None: an admin key for every gallery), as `facesearch keys create` makes one."""
    engine = make_engine(database_url)
    try:
        with session_scope(make_session_factory(engine)) as session:
            bound = get_or_create_gallery(session, gallery) if gallery is not None else None
            _, key = create_key(session, scope=scope, gallery=bound, name="e2e")
    finally:
        engine.dispose()
    return key


def keyed_client(app: Flask, key: str) -> FlaskClient:
    """A test client of ``app`` that sends ``key`` with every request."""
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    return client


def stop_worker(worker: subprocess.Popen[bytes]) -> None:
    worker.terminate()
    try:
        worker.wait(timeout=30)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()


def wait_for_job(
    client: FlaskClient, job_id: str, log_path: Path, timeout_s: float = JOB_TIMEOUT_S
) -> dict[str, Any]:
    """Poll the job until it finishes; fail with the worker's log if it does not."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").get_json()
        if job["status"] not in ("queued", "running"):
            return job
        time.sleep(0.25)
    pytest.fail(f"job {job_id} did not finish; worker log:\n{log_path.read_text()[-4000:]}")
