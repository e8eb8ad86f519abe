"""Resume after SIGKILL: a real worker on Postgres + Redis is killed in the middle of an
archive; a new worker finishes the job, and nothing is lost or recorded twice."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from api import create_app
from api.context import EXTENSION
from cli.lfw import iter_images
from core.settings import Settings
from models import Face, Image, Job, JobItem, Scope
from models.db import make_engine, make_session_factory
from tests.conftest import MODEL_DIR, create_database, drop_database, migrate
from tests.test_archives import make_tar
from tests.test_e2e import redis_url  # noqa: F401  (a module fixture: a flushed Redis db)
from tests.worker_process import keyed_client, make_api_key, start_worker, stop_worker

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

IMAGES = 120
JOB_TIMEOUT_S = 180


@pytest.fixture
def database_url_e2e() -> Iterator[str]:
    url = create_database()
    migrate(url)
    yield url
    drop_database(url)


def test_a_worker_killed_mid_archive_loses_and_duplicates_nothing(
    tmp_path: Path,
    redis_url: str,  # noqa: F811
    database_url_e2e: str,
    lfw_archive: Path,
) -> None:
    members = []
    for image in iter_images(lfw_archive):
        members.append((f"lfw/{image.label}/{image.name}", image.data))
        if len(members) == IMAGES:
            break
    env = {
        **os.environ,
        "DATA_DIR": str(tmp_path),
        "DATABASE_URL": database_url_e2e,
        "BROKER_URL": redis_url,
        "STORAGE_URL": f"file://{tmp_path / 'objects'}",
        "MILVUS_URI": str(tmp_path / "milvus.db"),
        "MILVUS_INDEX_TYPE": "FLAT",
        "MODEL_DIR": str(MODEL_DIR),
        "LOG_JSON": "true",
        # A killed worker's task comes back after 5 s instead of the time limit + 60 s.
        "BROKER_VISIBILITY_TIMEOUT_S": "5",
        "PIPELINE_BATCH_SIZE": "8",
        "ARCHIVE_SCAN_BATCH": "16",
    }
    settings = Settings(
        data_dir=tmp_path,
        database_url=database_url_e2e,
        broker_url=redis_url,
        storage_url=env["STORAGE_URL"],
        milvus_uri=env["MILVUS_URI"],
        model_dir=MODEL_DIR,
        broker_visibility_timeout_s=5,
    )
    engine = make_engine(database_url_e2e)
    sessions = make_session_factory(engine)
    app = create_app(settings)
    log_path = tmp_path / "worker.log"
    worker = start_worker(env, log_path)
    try:
        client = keyed_client(app, make_api_key(database_url_e2e, scope=Scope.WRITE))
        response = client.post(
            "/v1/archives", data=make_tar(members), content_type="application/octet-stream"
        )
        assert response.status_code == 202, response.get_json()
        job_id = response.get_json()["job_id"]

        # Kill the worker (no chance to clean up) once it is part-way through the pipeline.
        deadline = time.monotonic() + JOB_TIMEOUT_S
        while True:
            progress = client.get(f"/v1/jobs/{job_id}").get_json()["progress"]
            if progress["done"] + progress["failed"] >= 16:
                break
            assert time.monotonic() < deadline, log_path.read_text()[-3000:]
            time.sleep(0.1)
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        assert client.get(f"/v1/jobs/{job_id}").get_json()["status"] == "running"

        worker = start_worker(env, log_path)
        while True:
            job = client.get(f"/v1/jobs/{job_id}").get_json()
            if job["status"] not in ("queued", "running"):
                break
            assert time.monotonic() < deadline, log_path.read_text()[-3000:]
            time.sleep(0.3)
        assert job["status"] in ("succeeded", "partial"), job
        progress = job["progress"]
        assert progress["total"] == IMAGES
        assert progress["done"] + progress["failed"] + progress["skipped"] == IMAGES
        with sessions() as session:
            positions = session.scalars(
                select(JobItem.position).where(JobItem.job_id == job_id)
            ).all()
            assert sorted(positions) == sorted(set(positions))
            assert len(positions) == IMAGES
            assert session.scalar(select(func.count(Image.id))) == IMAGES - progress["skipped"]
            # No face recorded twice: one row per (image, face index).
            faces = session.execute(select(Face.image_id, Face.face_index)).all()
            assert len(faces) == len(set(faces)) >= progress["done"]
            assert session.get_one(Job, job_id).result["faces"] == len(faces)
    finally:
        stop_worker(worker)
        app.extensions[EXTENSION].close()
        engine.dispose()
