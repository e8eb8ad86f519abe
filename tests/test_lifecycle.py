"""A job's lifecycle has one owner (services.jobs.close_job): every way a job ends records
job.completed, a failed or cancelled job leaves no image pending, a re-upload of a pending or
failed image's bytes queues it again, poison messages are dead-lettered, and transient errors
are retried for longer than a dependency's restart."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
from flask.testing import FlaskClient
from PIL import Image as PILImage
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.settings import Settings, get_settings
from models import (
    DEFAULT_GALLERY_ID,
    EventType,
    Image,
    ImageStatus,
    ItemStatus,
    Job,
    JobItem,
    JobKind,
    JobStatus,
    Search,
    WebhookEvent,
    WebhookSubscription,
)
from services.jobs import close_job
from tests.conftest import image_row, make_client

BROKER_DOWN = "redis://127.0.0.1:1/0"


def jpeg(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (40, 56, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    PILImage.fromarray(pixels).save(buffer, format="JPEG")
    return buffer.getvalue()


def upload(client: FlaskClient, data: bytes, name: str = "a.jpg") -> Any:
    return client.post(
        "/v1/images",
        data={"file": [(io.BytesIO(data), name)]},
        content_type="multipart/form-data",
    )


def subscribe(session: Session) -> None:
    session.add(
        WebhookSubscription(
            gallery_id=DEFAULT_GALLERY_ID,
            url="https://hooks.example.org/x",
            events=[e.value for e in EventType],
            secret="s" * 32,
        )
    )
    session.commit()


def completed_events(session: Session, job_id: str) -> int:
    events = session.scalars(
        select(WebhookEvent).where(WebhookEvent.type == EventType.JOB_COMPLETED)
    ).all()
    return sum(1 for e in events if e.payload["data"]["job_id"] == job_id)


def ingest_job(session: Session, data: bytes = b"", status: JobStatus = JobStatus.QUEUED) -> Job:
    """A job with one pending item and its pending image, as an upload leaves them."""
    job = Job(kind=JobKind.INGEST, gallery_id=DEFAULT_GALLERY_ID, status=status)
    image = image_row(
        sha256=f"{abs(hash((data, id(job)))):064x}"[:64],
        object_key="x/none",
    )
    session.add_all([job, image])
    session.flush()
    job.items.append(JobItem(position=0, name="a.jpg", image_id=image.id))
    job.total = 1
    session.commit()
    return job


class NoFacePipeline:
    model_name = "test-model"
    embedding_version = "test-model"

    def process(self, arrays: list[Any]) -> list[list[Any]]:
        return [[] for _ in arrays]


# --- one owner -------------------------------------------------------------------------------


def test_every_close_path_records_job_completed(
    client: FlaskClient, settings: Settings, sessions: sessionmaker[Session], session: Session
) -> None:
    from workers.base import fail_job
    from workers.indexing import finish_ingest_job

    subscribe(session)
    # A worker's failure (JobTask.on_failure).
    failed = ingest_job(session)
    fail_job(failed.id, "internal error: boom", sessions)
    # The indexer closing an ingest job.
    done = ingest_job(session)
    done.items[0].status = ItemStatus.SUCCEEDED
    session.commit()
    with sessions() as s:
        finish_ingest_job(s, done.id)
        s.commit()
    # Cancelled through the API.
    cancelled = ingest_job(session)
    assert client.post(f"/v1/jobs/{cancelled.id}/cancel").status_code == 200
    # A search the broker would not take.
    down = make_client(settings.model_copy(update={"broker_url": BROKER_DOWN}), sessions)
    response = down.post(
        "/v1/searches",
        data={"file": (io.BytesIO(jpeg(3)), "q.jpg")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 503
    search_job = response.get_json()["error"]["details"]["job_id"]
    session.expire_all()
    for job_id in (failed.id, done.id, cancelled.id, search_job):
        assert session.get_one(Job, job_id).status.finished
        assert completed_events(session, job_id) == 1, job_id
    # A search's status is its job's.
    search = session.scalars(select(Search).where(Search.job_id == search_job)).one()
    assert search.status == JobStatus.FAILED
    assert "broker" in (search.error or "")


def test_a_failed_or_cancelled_job_leaves_no_image_pending(session: Session) -> None:
    for status in (JobStatus.FAILED, JobStatus.CANCELLED):
        job = ingest_job(session, status=JobStatus.RUNNING)
        close_job(session, job, status, error="it went wrong")
        session.commit()
        item = job.items[0]
        image = session.get_one(Image, item.image_id)
        expected = ItemStatus.FAILED if status == JobStatus.FAILED else ItemStatus.SKIPPED
        assert (item.status, item.error) == (expected, "it went wrong")
        assert image.status == ImageStatus.FAILED
        assert "it went wrong" in (image.error or "")
        assert close_job(session, job, JobStatus.SUCCEEDED) == []  # already closed: kept


def test_an_image_another_live_job_processes_stays_pending(session: Session) -> None:
    first = ingest_job(session, status=JobStatus.RUNNING)
    image_id = first.items[0].image_id
    second = Job(kind=JobKind.INGEST, gallery_id=DEFAULT_GALLERY_ID, status=JobStatus.RUNNING)
    second.items.append(JobItem(position=0, name="again.jpg", image_id=image_id))
    session.add(second)
    session.commit()
    close_job(session, first, JobStatus.FAILED, error="worker lost")
    session.commit()
    assert session.get_one(Image, image_id).status == ImageStatus.PENDING


# --- re-upload ------------------------------------------------------------------------------


def test_reupload_of_a_stranded_pending_image_queues_it_again(
    client: FlaskClient, session: Session
) -> None:
    data = jpeg(1)
    first = session.get_one(Job, upload(client, data).get_json()["job_id"])
    # While the first job lives, it will process the image: a repeat waits for it.
    waiting = session.get_one(Job, upload(client, data).get_json()["job_id"])
    assert [i.status for i in waiting.items] == [ItemStatus.SKIPPED]
    assert first.id in (waiting.items[0].error or "")
    # The first job ended without processing it (the stranded photo of the report): a
    # re-upload now queues the same image again.
    first.status = JobStatus.FAILED
    session.commit()
    second = upload(client, data)
    assert second.status_code == 202
    job = session.get_one(Job, second.get_json()["job_id"])
    image = session.scalars(select(Image)).one()  # still one image for the bytes
    assert [(i.status, i.image_id) for i in job.items] == [(ItemStatus.PENDING, image.id)]
    assert job.skipped == 0


def test_reupload_of_a_failed_image_queues_it_again(client: FlaskClient, session: Session) -> None:
    data = jpeg(2)
    first = session.get_one(Job, upload(client, data).get_json()["job_id"])
    image = session.scalars(select(Image)).one()
    image.status, image.error = ImageStatus.FAILED, "the stored image bytes are missing"
    first.items[0].status = ItemStatus.FAILED
    first.status = JobStatus.FAILED
    session.commit()
    job = session.get_one(Job, upload(client, data).get_json()["job_id"])
    session.refresh(image)
    assert image.status == ImageStatus.PENDING
    assert image.error is None
    assert [i.status for i in job.items] == [ItemStatus.PENDING]


def test_a_processed_image_is_still_a_skipped_repeat(client: FlaskClient, session: Session) -> None:
    data = jpeg(4)
    upload(client, data)
    image = session.scalars(select(Image)).one()
    image.status = ImageStatus.READY
    session.commit()
    job = session.get_one(Job, upload(client, data).get_json()["job_id"])
    assert [i.status for i in job.items] == [ItemStatus.SKIPPED]
    assert job.status == JobStatus.SUCCEEDED


def test_an_item_whose_image_another_job_processed_takes_its_outcome(
    settings: Settings, sessions: sessionmaker[Session], session: Session
) -> None:
    from core.storage import open_store
    from workers.ingest import process_pending

    job = ingest_job(session, status=JobStatus.RUNNING)
    image = session.get_one(Image, job.items[0].image_id)
    image.status = ImageStatus.READY  # done by another job meanwhile
    session.commit()
    process_pending(
        job.id,
        sessions=sessions,
        store=open_store(settings.storage_url),  # its bytes are never read
        pipeline=NoFacePipeline(),  # type: ignore[arg-type]
        request_index=lambda m, j: None,
        batch_size=8,
        max_pixels=settings.max_image_pixels,
    )
    session.expire_all()
    assert session.get_one(JobItem, job.items[0].id).status == ItemStatus.SUCCEEDED


# --- poison work and retries ------------------------------------------------------------------


def test_a_message_delivered_too_often_is_dead_lettered(
    sessions: sessionmaker[Session], session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    import workers.ingest
    from workers import runtime
    from workers.celery_app import ingest_images

    monkeypatch.setattr(runtime, "get_session_factory", lambda: sessions)
    runs: list[str] = []
    monkeypatch.setattr(workers.ingest, "run_ingest", lambda job_id, **_: runs.append(job_id))
    job = ingest_job(session)
    limit = get_settings().task_max_deliveries
    for _ in range(limit + 1):  # the same message, redelivered (its worker killed each time)
        ingest_images.apply(kwargs={"job_id": job.id}, task_id="message-1")
    assert len(runs) == limit
    session.expire_all()
    job = session.get_one(Job, job.id)
    assert job.status == JobStatus.FAILED
    assert f"gave up after {limit} deliveries" in (job.error or "")
    assert session.get_one(Image, job.items[0].image_id).status == ImageStatus.FAILED
    # Another message of the job (a continuation, a re-queue) has its own count: it runs
    # (and finds its job closed).
    ingest_images.apply(kwargs={"job_id": job.id}, task_id="message-2")
    assert len(runs) == limit + 1


def test_transient_errors_are_retried_longer_than_a_restart() -> None:
    from workers.base import RETRY_BACKOFF_S, RETRY_MAX_DELAY_S, JobTask, retries_for
    from workers.celery_app import ingest_images

    def waited(retries: int) -> int:
        return sum(min(RETRY_BACKOFF_S * 2**n, RETRY_MAX_DELAY_S) for n in range(retries))

    total = get_settings().task_retry_for_s
    assert total >= 600
    assert JobTask.max_retries == ingest_images.max_retries == retries_for(total)
    assert waited(retries_for(total)) >= total > waited(retries_for(total) - 1)
    assert not ingest_images.retry_jitter  # the total is what the setting says


def test_the_delivery_count_survives_other_messages_of_the_job(
    sessions: sessionmaker[Session], session: Session
) -> None:
    """The counts are kept for the job's latest messages, in the order they came: other
    messages of the same job between two deliveries (continuations, re-queues) do not make
    the count of a message that keeps killing its worker start again."""
    from workers.base import count_delivery

    job = ingest_job(session)
    limit = 3
    admitted = []
    for delivery in range(limit + 1):
        for other in range(5):
            count_delivery(sessions, job.id, f"z-other-{delivery}-{other}:0", limit)
        admitted.append(count_delivery(sessions, job.id, "a-poison:0", limit)[0])
    assert admitted == [True] * limit + [False]
