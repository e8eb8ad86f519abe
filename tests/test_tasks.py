"""The tasks' functions with real collaborators: real MTCNN and FaceNet weights on real LFW
faces, Postgres, a local object store and milvus-lite. Called directly (no broker), as
Celery would call them, including twice (a redelivery)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from flask.testing import FlaskClient
from PIL import Image as PILImage
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from cli.lfw import LfwImage
from core.index import VectorIndex
from core.settings import Settings
from core.storage import open_store
from models import Face, Image, ImageStatus, Job, JobKind, JobStatus
from tests.test_api import make_client
from workers.indexing import run_index, run_reindex
from workers.ingest import NO_FACE_REASON, run_ingest
from workers.search import run_search

pytestmark = pytest.mark.slow


class Harness:
    """The API in-process, and the worker's functions run by hand."""

    def __init__(
        self, settings: Settings, sessions: sessionmaker[Session], pipeline: Any, index: VectorIndex
    ) -> None:
        self.settings, self.sessions, self.pipeline, self.index = (
            settings,
            sessions,
            pipeline,
            index,
        )
        self.client: FlaskClient = make_client(settings, sessions)
        self.store = open_store(settings.storage_url)
        self.index_requests: list[tuple[str, str | None]] = []

    def ingest(self, files: list[tuple[bytes, str]], label: str | None = None) -> str:
        data: dict[str, Any] = {"file": [(io.BytesIO(b), n) for b, n in files]}
        if label:
            data["label"] = label
        response = self.client.post("/v1/images", data=data, content_type="multipart/form-data")
        assert response.status_code == 202, response.get_json()
        job_id: str = response.get_json()["job_id"]
        self.run_ingest(job_id)
        return job_id

    def run_ingest(self, job_id: str) -> None:
        run_ingest(
            job_id,
            sessions=self.sessions,
            store=self.store,
            pipeline=self.pipeline,
            request_index=lambda m, j: self.index_requests.append((m, j)),
            batch_size=4,
            max_pixels=self.settings.max_image_pixels,
        )
        while self.index_requests:
            model, job = self.index_requests.pop(0)
            run_index(model, job, sessions=self.sessions, index=self.index, batch_size=5)

    def search(self, data: bytes, top_k: int = 5) -> dict[str, Any]:
        response = self.client.post(
            "/v1/searches",
            data={"file": (io.BytesIO(data), "q.jpg"), "top_k": str(top_k)},
            content_type="multipart/form-data",
        )
        assert response.status_code == 202, response.get_json()
        body = response.get_json()
        self.run_search(body["search_id"])
        return self.client.get(body["search_url"]).get_json()

    def run_search(self, search_id: str) -> None:
        run_search(
            search_id,
            sessions=self.sessions,
            store=self.store,
            pipeline=self.pipeline,
            index=self.index,
            max_pixels=self.settings.max_image_pixels,
        )

    def job(self, job_id: str) -> dict[str, Any]:
        return self.client.get(f"/v1/jobs/{job_id}").get_json()


@pytest.fixture
def harness(
    settings: Settings, sessions: sessionmaker[Session], face_pipeline: Any
) -> Iterator[Harness]:
    with VectorIndex(settings.milvus_uri, index_type="FLAT") as index:
        yield Harness(settings, sessions, face_pipeline, index)


def blank_jpeg() -> bytes:
    buffer = io.BytesIO()
    PILImage.new("RGB", (200, 200), (120, 140, 160)).save(buffer, format="JPEG")
    return buffer.getvalue()


def files(images: list[LfwImage]) -> list[tuple[bytes, str]]:
    return [(i.data, i.name) for i in images]


def test_ingest_index_search_finds_the_right_person(
    harness: Harness, lfw_faces: dict[str, list[LfwImage]], session: Session
) -> None:
    for label, images in lfw_faces.items():
        job_id = harness.ingest(files(images[1:]), label=label)  # image 0 is kept as a query
        job = harness.job(job_id)
        assert job["status"] == "succeeded", job
        assert job["progress"]["done"] == len(images) - 1
        assert job["result"]["faces"] >= len(images) - 1
        assert len(job["result"]["image_ids"]) == len(images) - 1

    unindexed = session.scalar(select(func.count()).where(Face.indexed_at.is_(None)))
    assert unindexed == 0
    for label, images in lfw_faces.items():
        result = harness.search(images[0].data, top_k=5)
        assert result["status"] == "succeeded", result
        face = max(result["faces"], key=lambda f: f["box"]["width"] * f["box"]["height"])
        matches = face["matches"]
        assert [m["rank"] for m in matches] == list(range(1, len(matches) + 1))
        assert matches[0]["label"] == label, (label, matches)
        scores = [m["score"] for m in matches]
        assert scores == sorted(scores, reverse=True)
        assert matches[0]["image_url"] == f"/v1/images/{matches[0]['image_id']}" + "/content"


def test_albert_costa_all_five_others_in_top_10(
    harness: Harness, lfw_faces: dict[str, list[LfwImage]]
) -> None:
    for label, images in lfw_faces.items():
        harness.ingest(files(images), label=label)
    albert = lfw_faces["Albert_Costa"]
    result = harness.search(albert[0].data, top_k=10)
    face = max(result["faces"], key=lambda f: f["box"]["width"] * f["box"]["height"])
    labels = [m["label"] for m in face["matches"]]
    assert labels[:6] == ["Albert_Costa"] * 6  # itself first, then its 5 others
    assert face["matches"][0]["score"] > 0.99


def test_redelivered_tasks_leave_the_same_rows(
    harness: Harness, lfw_faces: dict[str, list[LfwImage]], session: Session
) -> None:
    images = lfw_faces["Ai_Sugiyama"]
    job_id = harness.ingest(files(images), label="Ai_Sugiyama")
    faces_before = session.scalar(select(func.count(Face.id)))
    # A redelivered ingest after the job finished, and one with the job forced back open.
    harness.run_ingest(job_id)
    job = session.get_one(Job, job_id)
    job.status = JobStatus.RUNNING
    session.commit()
    harness.run_ingest(job_id)
    assert session.scalar(select(func.count(Face.id))) == faces_before
    assert harness.index.count(harness.pipeline.model_name) == faces_before

    result = harness.search(images[0].data)
    harness.run_search(result["id"])  # a second delivery of the same search
    again = harness.client.get(f"/v1/searches/{result['id']}").get_json()
    assert again == result


def test_image_without_a_face_fails_its_item_with_a_reason(
    harness: Harness, session: Session
) -> None:
    job_id = harness.ingest([(blank_jpeg(), "wall.jpg")])
    job = harness.job(job_id)
    assert job["status"] == "failed"
    assert job["items"][0]["error"] == NO_FACE_REASON
    image = session.scalars(select(Image)).one()
    assert image.status == ImageStatus.NO_FACE


def test_partial_job_when_some_images_have_no_face(
    harness: Harness, lfw_faces: dict[str, list[LfwImage]]
) -> None:
    job_id = harness.ingest([(blank_jpeg(), "wall.jpg"), *files(lfw_faces["Albert_Costa"][:2])])
    job = harness.job(job_id)
    assert job["status"] == "partial"
    counters = {k: job["progress"][k] for k in ("total", "done", "failed", "skipped")}
    assert counters == {"total": 3, "done": 2, "failed": 1, "skipped": 0}


def test_search_without_a_face_fails_with_a_reason(harness: Harness) -> None:
    result = harness.search(blank_jpeg())
    assert result["status"] == "failed"
    assert result["error"] == "no face found in the query image"
    job = harness.job(result["job_id"])
    assert job["status"] == "failed"
    assert job["error"] == "no face found in the query image"


def test_many_faces_in_one_image_are_all_found(
    harness: Harness, lfw_faces: dict[str, list[LfwImage]]
) -> None:
    # A 3x2 contact sheet of six different LFW photos: six faces, each searchable.
    tiles = [
        np.asarray(PILImage.open(io.BytesIO(images[0].data)).convert("RGB"))
        for images in lfw_faces.values()
    ] + [
        np.asarray(PILImage.open(io.BytesIO(lfw_faces["Albert_Costa"][i].data)).convert("RGB"))
        for i in (1, 2)
    ]
    sheet = np.vstack([np.hstack(tiles[:3]), np.hstack(tiles[3:6])])
    buffer = io.BytesIO()
    PILImage.fromarray(sheet).save(buffer, format="JPEG", quality=95)
    job_id = harness.ingest([(buffer.getvalue(), "sheet.jpg")], label="group")
    job = harness.job(job_id)
    assert job["status"] == "succeeded"
    assert job["result"]["faces"] == 6


def test_search_skips_a_deleted_image(
    harness: Harness, lfw_faces: dict[str, list[LfwImage]]
) -> None:
    images = lfw_faces["Abdullah_Gul"]
    harness.ingest(files(images), label="Abdullah_Gul")
    first = harness.search(images[0].data)
    top = first["faces"][0]["matches"][0]
    assert harness.client.delete(f"/v1/images/{top['image_id']}").status_code == 204
    # The vector is still in Milvus (its deletion is queued): the result must not show it.
    after = harness.search(images[0].data)
    assert top["image_id"] not in {m["image_id"] for m in after["faces"][0]["matches"]}


def test_reindex_rebuilds_milvus_from_postgres(
    harness: Harness, lfw_faces: dict[str, list[LfwImage]], session: Session
) -> None:
    images = lfw_faces["Alejandro_Toledo"]
    harness.ingest(files(images[1:]), label="Alejandro_Toledo")
    model = harness.pipeline.model_name
    faces = session.scalar(select(func.count(Face.id)))
    harness.index.drop(model)  # the index is lost, Postgres is not
    assert harness.search(images[0].data)["faces"][0]["matches"] == []

    job = Job(kind=JobKind.REINDEX)
    session.add(job)
    session.commit()
    run_reindex(job.id, sessions=harness.sessions, index=harness.index, batch_size=2)
    session.refresh(job)
    assert job.status == JobStatus.SUCCEEDED
    assert job.result == {"faces_indexed": {model: faces}}
    assert harness.index.count(model) == faces
    top = harness.search(images[0].data)["faces"][0]["matches"][0]
    assert top["label"] == "Alejandro_Toledo"


def test_a_task_that_cannot_finish_fails_its_job_with_the_reason(
    harness: Harness, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    from workers import runtime
    from workers.celery_app import ingest_images

    monkeypatch.setattr(runtime, "get_session_factory", lambda: harness.sessions)
    job = Job(kind=JobKind.INGEST)
    session.add(job)
    session.commit()
    ingest_images.on_failure(RuntimeError("disk on fire"), "task-1", (), {"job_id": job.id}, None)
    session.refresh(job)
    assert job.status == JobStatus.FAILED
    assert job.error == "internal error: RuntimeError: disk on fire"


def test_only_transient_errors_are_retried() -> None:
    from sqlalchemy.exc import IntegrityError, OperationalError

    from core.storage import StorageError
    from workers.archive_reader import ReaderExitedError
    from workers.celery_app import ingest_archive, ingest_images, run_search

    assert issubclass(ReaderExitedError, ingest_archive.autoretry_for)
    for task in (ingest_images, run_search):
        assert task.acks_late
        assert issubclass(OperationalError, task.autoretry_for)
        assert issubclass(StorageError, task.autoretry_for)
        assert not issubclass(IntegrityError, task.autoretry_for)
        assert not issubclass(ValueError, task.autoretry_for)
