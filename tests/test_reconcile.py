"""The reconciler finds what nothing will finish and re-queues or fails it, boundedly and
idempotently: a job whose task was lost (the broker down during its upload), an image no job
will process, faces never indexed."""

from __future__ import annotations

import io
from datetime import timedelta
from typing import Any

import numpy as np
from PIL import Image as PILImage
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from core.queue import INDEX_TASK, INGEST_TASK
from core.settings import Settings
from core.storage import open_store
from models import (
    DEFAULT_GALLERY_ID,
    Face,
    Image,
    ImageStatus,
    ItemStatus,
    Job,
    JobItem,
    JobKind,
    JobStatus,
    utcnow,
)
from tests.conftest import face_row, image_row, make_client
from workers.reconcile import reconcile

Sent = list[tuple[str, list[Any], dict[str, Any]]]


def jpeg(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (40, 56, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    PILImage.fromarray(pixels).save(buffer, format="JPEG")
    return buffer.getvalue()


def age(session: Session, seconds: int = 3600) -> None:
    """Everything in the database, ``seconds`` older."""
    past = utcnow() - timedelta(seconds=seconds)
    session.execute(update(Job).values(updated_at=past))
    session.execute(update(Image).values(created_at=past))
    session.execute(update(Face).values(created_at=past))
    session.commit()


def run(sessions: sessionmaker[Session], sent: Sent, max_requeues: int = 2) -> dict[str, int]:
    return reconcile(
        sessions=sessions,
        send_task=lambda name, args, kwargs: sent.append((name, args, kwargs)),
        send_deliveries=lambda ids: None,
        stale_s=600,
        max_requeues=max_requeues,
        batch=100,
    )


class NoFacePipeline:
    model_name = "test-model"
    embedding_version = "test-model"

    def process(self, arrays: list[Any]) -> list[list[Any]]:
        return [[] for _ in arrays]


def test_broker_down_during_upload_then_reconcile_processes_the_image(
    settings: Settings, sessions: sessionmaker[Session], session: Session
) -> None:
    from workers.ingest import run_ingest

    down = make_client(
        settings.model_copy(update={"broker_url": "redis://127.0.0.1:1/0"}), sessions
    )
    response = down.post(
        "/v1/images",
        data={"file": [(io.BytesIO(jpeg(7)), "a.jpg")]},
        content_type="multipart/form-data",
    )
    assert response.status_code == 503
    job_id = response.get_json()["error"]["details"]["job_id"]
    assert session.get_one(Job, job_id).status == JobStatus.QUEUED  # kept, to be sent again

    sent: Sent = []
    assert run(sessions, sent)["jobs_requeued"] == 0  # not stale yet: nothing is doubled
    age(session)
    report = run(sessions, sent)
    assert report["jobs_requeued"] == 1
    assert sent == [(INGEST_TASK, [], {"job_id": job_id})]
    assert run(sessions, sent)["jobs_requeued"] == 0  # idempotent: re-queued counts as updated

    run_ingest(  # what the re-sent task does
        job_id,
        sessions=sessions,
        store=open_store(settings.storage_url),
        pipeline=NoFacePipeline(),  # type: ignore[arg-type]
        request_index=lambda m, j: None,
        batch_size=8,
        max_pixels=settings.max_image_pixels,
    )
    session.expire_all()
    image = session.scalars(select(Image)).one()
    assert image.status == ImageStatus.NO_FACE  # processed


def test_a_job_that_stays_stranded_fails_with_the_reason(
    sessions: sessionmaker[Session], session: Session
) -> None:
    job = Job(kind=JobKind.INGEST, gallery_id=DEFAULT_GALLERY_ID, status=JobStatus.RUNNING)
    image = image_row(
        sha256="a" * 64,
        object_key="x",
    )
    session.add_all([job, image])
    session.flush()
    job.items.append(JobItem(position=0, name="a.jpg", image_id=image.id))
    session.commit()
    sent: Sent = []
    for _ in range(2):
        age(session)
        assert run(sessions, sent)["jobs_requeued"] == 1
    age(session)
    assert run(sessions, sent)["jobs_failed"] == 1
    session.expire_all()
    job = session.get_one(Job, job.id)
    assert job.status == JobStatus.FAILED
    assert "stranded" in (job.error or "")
    assert job.items[0].status == ItemStatus.FAILED
    assert session.get_one(Image, image.id).status == ImageStatus.FAILED
    assert len(sent) == 2


def test_a_queued_job_behind_a_backlog_is_sent_again_never_failed(
    sessions: sessionmaker[Session], session: Session
) -> None:
    """A job that never started may be waiting behind other work: it is only sent again."""
    job = Job(kind=JobKind.INGEST, gallery_id=DEFAULT_GALLERY_ID, status=JobStatus.QUEUED)
    session.add(job)
    session.commit()
    sent: Sent = []
    for _ in range(5):
        age(session)
        report = run(sessions, sent)
        assert (report["jobs_requeued"], report["jobs_failed"]) == (1, 0)
    session.expire_all()
    assert session.get_one(Job, job.id).status == JobStatus.QUEUED
    assert len(sent) == 5


def test_a_refused_send_costs_no_requeue(sessions: sessionmaker[Session], session: Session) -> None:
    job = Job(kind=JobKind.INGEST, gallery_id=DEFAULT_GALLERY_ID)
    session.add(job)
    session.commit()
    age(session)

    def refuse(name: str, args: list[Any], kwargs: dict[str, Any]) -> None:
        raise ConnectionError("broker down")

    report = reconcile(
        sessions=sessions,
        send_task=refuse,
        send_deliveries=lambda ids: None,
        stale_s=600,
        max_requeues=1,
        batch=100,
    )
    assert report["jobs_requeued"] == report["jobs_failed"] == 0
    session.expire_all()
    assert session.get_one(Job, job.id).params.get("requeues") is None


def test_an_image_no_job_will_process_fails_with_a_reason(
    sessions: sessionmaker[Session], session: Session
) -> None:
    # As the old code left it: the job failed, its item and image pending.
    job = Job(kind=JobKind.INGEST, gallery_id=DEFAULT_GALLERY_ID, status=JobStatus.FAILED)
    image = Image(
        gallery_id=DEFAULT_GALLERY_ID,
        sha256="b" * 64,
        object_key="x",
        content_type="image/jpeg",
        size_bytes=1,
        width=1,
        height=1,
        filename="b.jpg",
    )
    session.add_all([job, image])
    session.flush()
    job.items.append(JobItem(position=0, name="b.jpg", image_id=image.id))
    session.commit()
    age(session)
    sent: Sent = []
    assert run(sessions, sent)["images_failed"] == 1
    session.refresh(image)
    assert image.status == ImageStatus.FAILED
    assert "upload it again" in (image.error or "")
    assert run(sessions, sent)["images_failed"] == 0


def test_faces_never_indexed_are_sent_to_the_index(
    sessions: sessionmaker[Session], session: Session
) -> None:
    image = Image(
        gallery_id=DEFAULT_GALLERY_ID,
        sha256="c" * 64,
        object_key="x",
        content_type="image/jpeg",
        size_bytes=1,
        width=1,
        height=1,
        filename="c.jpg",
        status=ImageStatus.READY,
    )
    session.add(image)
    session.flush()
    embedding = np.zeros(2, dtype="<f4").tobytes()
    session.add(face_row(image_id=image.id, model_name="test-model", embedding=embedding))
    session.commit()
    sent: Sent = []
    assert run(sessions, sent)["faces_to_index"] == 0  # just made: the indexer has it
    age(session)
    assert run(sessions, sent)["faces_to_index"] == 1
    assert sent == [(INDEX_TASK, ["test-model"], {"job_id": None})]


def test_a_vector_deletion_lost_with_the_broker_is_asked_again_until_done(
    settings: Settings, sessions: sessionmaker[Session], session: Session, tmp_path: Any
) -> None:
    """An image erased while the broker is down: its vectors are still owed (written with
    the erasure), the reconciler asks the index writer again, and the writer's task, once
    it has removed them, settles the debt."""
    from core.index import VectorIndex
    from core.queue import DELETE_VECTORS_TASK
    from models import VectorDeletion
    from workers.indexing import delete_vectors

    image = image_row(
        sha256="d" * 64,
        object_key="objects/gone",
        status=ImageStatus.READY,
    )
    session.add(image)
    session.flush()
    face = face_row(
        image_id=image.id, model_name="test-model", embedding=np.array([1, 0], "<f4").tobytes()
    )
    session.add(face)
    session.commit()
    index = VectorIndex(str(tmp_path / "milvus.db"), index_type="FLAT")
    index.upsert(
        "test-model",
        face_ids=[face.id],
        vectors=np.array([[1.0, 0.0]]),
        image_ids=[image.id],
        gallery_ids=[DEFAULT_GALLERY_ID],
    )

    down = make_client(
        settings.model_copy(update={"broker_url": "redis://127.0.0.1:1/0"}), sessions
    )
    assert down.delete(f"/v1/images/{image.id}").status_code == 204
    owed = session.scalars(select(VectorDeletion.face_id)).all()
    assert owed == [face.id]

    sent: Sent = []
    assert run(sessions, sent)["vector_deletions"] == 0  # just asked: not yet overdue
    session.execute(update(VectorDeletion).values(created_at=utcnow() - timedelta(hours=1)))
    session.commit()
    assert run(sessions, sent)["vector_deletions"] == 1
    assert sent == [(DELETE_VECTORS_TASK, ["test-model", [face.id]], {})]
    assert run(sessions, sent)["vector_deletions"] == 0  # asked anew: not overdue again

    _, args, _ = sent[0]
    delete_vectors(args[0], args[1], index=index, sessions=sessions)  # what the task does
    assert index.count("test-model") == 0
    session.expire_all()
    assert session.scalars(select(VectorDeletion)).all() == []
    index.close()
