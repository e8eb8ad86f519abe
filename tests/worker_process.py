"""A real Celery worker process for end-to-end tests, and waiting on jobs through the API."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from cli.lfw import PROJECT_ROOT

READY_TIMEOUT_S = 120
JOB_TIMEOUT_S = 180


def start_worker(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """`facesearch worker --pool solo` with ``env``, logging to ``log_path`` (appended, so a
    second worker of the same test keeps the first one's lines), once it says it is ready."""
    start = log_path.stat().st_size if log_path.exists() else 0
    with log_path.open("ab") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "worker", "--pool", "solo"],
            env=env,
            cwd=PROJECT_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + READY_TIMEOUT_S
    while b"ready." not in log_path.read_bytes()[start:]:
        if worker.poll() is not None or time.monotonic() > deadline:
            stop_worker(worker)
            pytest.fail("worker not ready: " + log_path.read_text()[-3000:])
        time.sleep(0.3)
    return worker


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
