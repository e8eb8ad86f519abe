"""The ingest plumbing: the loader one batch ahead of the model, bytes held instead of fetched
back, batch writes counted by increment, cheap validation, and the benchmark's stand-in model.

The loader tests run on a database whose sessions really commit (``committed``): the loader's
transaction and the model's are two connections, as in a worker."""

from __future__ import annotations

import hashlib
import io
import threading
from typing import Any

import numpy as np
import pytest
from PIL import Image as PILImage
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from core.images import InvalidImageError, decode_rgb, inspect_image
from core.settings import Settings
from core.storage import LocalStore, content_key
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
)
from models.db import session_scope
from tests.conftest import image_row
from workers.held_bytes import HeldBytes
from workers.ingest import process_pending
from workers.loader import BatchLoader
from workers.pipeline.standin import (
    STANDIN_MODEL,
    StandInEmbedder,
    parse_standin,
    standin_pipeline,
)


def jpeg(seed: int, size: tuple[int, int] = (64, 48)) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    PILImage.fromarray(pixels).save(buffer, format="JPEG")
    return buffer.getvalue()


class CountingStore:
    """A store that counts its reads."""

    def __init__(self, store: LocalStore) -> None:
        self._store = store
        self.gets: list[str] = []
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes:
        with self._lock:
            self.gets.append(key)
        return self._store.get(key)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


class RecordingPipeline:
    """The stand-in, recording the batches it was given."""

    def __init__(self, *, fail_after: int | None = None) -> None:
        self._inner = standin_pipeline()
        self.model_name = self._inner.model_name
        self.embedding_version = self._inner.embedding_version
        self.batches: list[int] = []
        self.fail_after = fail_after

    def process(self, arrays: list[np.ndarray]) -> list[list[Any]]:
        if self.fail_after is not None and len(self.batches) >= self.fail_after:
            raise RuntimeError("the model's process died")
        self.batches.append(len(arrays))
        return self._inner.process(arrays)


def make_job(
    sessions: sessionmaker[Session], store: LocalStore, payloads: list[bytes]
) -> tuple[str, list[str]]:
    """An ingest job with one pending item and image per payload, its bytes stored."""
    keys = []
    with session_scope(sessions) as session:
        job = Job(kind=JobKind.INGEST, gallery_id=DEFAULT_GALLERY_ID, status=JobStatus.RUNNING)
        session.add(job)
        session.flush()
        for position, data in enumerate(payloads):
            digest = hashlib.sha256(data).hexdigest()
            key = content_key(digest)
            store.put(key, data, content_type="image/jpeg")
            keys.append(key)
            image = image_row(sha256=digest, object_key=key, width=64, height=48)
            session.add(image)
            session.flush()
            session.add(
                JobItem(job_id=job.id, position=position, name=f"{position}.jpg", image_id=image.id)
            )
        job.total = len(payloads)
        job_id = job.id
    return job_id, keys


def run(
    settings: Settings,
    sessions: sessionmaker[Session],
    store: Any,
    job_id: str,
    pipeline: Any,
    **kwargs: Any,
) -> tuple[bool, list[tuple[str, str | None]]]:
    requests: list[tuple[str, str | None]] = []
    drained = process_pending(
        job_id,
        sessions=sessions,
        store=store,
        pipeline=pipeline,
        request_index=lambda model, job: requests.append((model, job)),
        batch_size=kwargs.pop("batch_size", 4),
        max_pixels=settings.max_image_pixels,
        **kwargs,
    )
    return drained, requests


def counts(sessions: sessionmaker[Session], job_id: str) -> dict[str, Any]:
    with session_scope(sessions) as session:
        job = session.get_one(Job, job_id)
        statuses = dict(
            session.execute(
                select(JobItem.status, func.count())
                .where(JobItem.job_id == job_id)
                .group_by(JobItem.status)
            ).all()
        )
        faces = session.scalar(
            select(func.count(Face.id))
            .join(JobItem, JobItem.image_id == Face.image_id)
            .where(JobItem.job_id == job_id)
        )
        return {
            "counters": (job.total, job.done, job.failed, job.skipped),
            "items": statuses,
            "faces": faces,
        }


@pytest.fixture
def store(settings: Settings) -> LocalStore:
    return LocalStore(settings.data_dir / "objects")


# --- the loader -----------------------------------------------------------------------------


def test_every_item_is_processed_once_with_the_loader_ahead(
    committed: tuple[Settings, sessionmaker[Session]], store: LocalStore
) -> None:
    settings, sessions = committed
    job_id, _ = make_job(sessions, store, [jpeg(i) for i in range(10)])
    pipeline = RecordingPipeline()
    drained, requests = run(settings, sessions, store, job_id, pipeline)
    assert drained
    assert pipeline.batches == [4, 4, 2]  # each item once, in batches of the asked size
    assert counts(sessions, job_id) == {
        "counters": (10, 10, 0, 0),
        "items": {ItemStatus.SUCCEEDED: 10},
        "faces": 10,
    }
    assert requests == []  # drained: the caller sends the request that closes the job


def test_a_batch_loaded_ahead_is_rolled_back_when_the_run_stops(
    committed: tuple[Settings, sessionmaker[Session]], store: LocalStore
) -> None:
    settings, sessions = committed
    job_id, _ = make_job(sessions, store, [jpeg(i) for i in range(10)])
    pipeline = RecordingPipeline()
    drained, requests = run(settings, sessions, store, job_id, pipeline, max_batches=1)
    assert not drained
    # The second batch was claimed and decoded while the first ran, then given back.
    assert counts(sessions, job_id)["items"] == {ItemStatus.SUCCEEDED: 4, ItemStatus.PENDING: 6}
    assert requests == [(STANDIN_MODEL, None)]  # stopped early: its faces are indexed now
    drained, _ = run(settings, sessions, store, job_id, pipeline)
    assert drained
    assert pipeline.batches == [4, 4, 2]
    assert counts(sessions, job_id)["counters"] == (10, 10, 0, 0)


def test_a_model_that_dies_mid_job_loses_and_doubles_nothing(
    committed: tuple[Settings, sessionmaker[Session]], store: LocalStore
) -> None:
    settings, sessions = committed
    job_id, _ = make_job(sessions, store, [jpeg(i) for i in range(9)])
    with pytest.raises(RuntimeError, match="died"):
        run(settings, sessions, store, job_id, RecordingPipeline(fail_after=1))
    state = counts(sessions, job_id)
    assert state["items"] == {ItemStatus.SUCCEEDED: 4, ItemStatus.PENDING: 5}
    assert state["faces"] == 4
    drained, _ = run(settings, sessions, store, job_id, RecordingPipeline())  # redelivered
    assert drained
    assert counts(sessions, job_id) == {
        "counters": (9, 9, 0, 0),
        "items": {ItemStatus.SUCCEEDED: 9},
        "faces": 9,
    }


def test_a_cancelled_job_stops_before_its_next_batch(
    committed: tuple[Settings, sessionmaker[Session]], store: LocalStore
) -> None:
    settings, sessions = committed
    job_id, _ = make_job(sessions, store, [jpeg(i) for i in range(12)])

    def cancel() -> None:
        with session_scope(sessions) as session:
            session.get_one(Job, job_id).finish(JobStatus.CANCELLED)

    drained, _ = run(settings, sessions, store, job_id, RecordingPipeline(), between_batches=cancel)
    assert not drained
    done = counts(sessions, job_id)["items"][ItemStatus.SUCCEEDED]
    assert 4 <= done <= 8  # the batch done, and at most the one already loaded ahead


def test_held_bytes_are_not_fetched_back(
    committed: tuple[Settings, sessionmaker[Session]], store: LocalStore
) -> None:
    settings, sessions = committed
    payloads = [jpeg(i) for i in range(6)]
    job_id, keys = make_job(sessions, store, payloads)
    held = HeldBytes()
    for key, data in list(zip(keys, payloads, strict=True))[:4]:
        held.put(key, data)
    counting = CountingStore(store)
    drained, _ = run(settings, sessions, counting, job_id, RecordingPipeline(), held=held)
    assert drained
    assert sorted(counting.gets) == sorted(keys[4:])  # only what was not held
    assert len(held) == 0
    assert counts(sessions, job_id)["counters"] == (6, 6, 0, 0)


def test_bytes_that_do_not_decode_fail_their_item_alone_with_the_reason(
    committed: tuple[Settings, sessionmaker[Session]], store: LocalStore
) -> None:
    settings, sessions = committed
    good = jpeg(1)
    job_id, keys = make_job(sessions, store, [good, jpeg(2), jpeg(3)])
    store.put(keys[1], jpeg(2)[:300], content_type="image/jpeg")  # corrupt in the store
    store.delete(keys[2])  # gone from the store
    drained, _ = run(settings, sessions, store, job_id, RecordingPipeline())
    assert drained
    with session_scope(sessions) as session:
        items = session.scalars(
            select(JobItem).where(JobItem.job_id == job_id).order_by(JobItem.position)
        ).all()
        outcomes = [(i.status, i.error) for i in items]
        images = [session.get_one(Image, i.image_id).status for i in items]
    assert outcomes[0] == (ItemStatus.SUCCEEDED, None)
    assert outcomes[1][0] == ItemStatus.FAILED
    assert "truncated or corrupt" in (outcomes[1][1] or "")
    assert outcomes[2] == (ItemStatus.FAILED, "the stored image bytes are missing")
    assert images == [ImageStatus.READY, ImageStatus.FAILED, ImageStatus.FAILED]
    assert counts(sessions, job_id)["counters"] == (3, 1, 2, 0)


def test_a_batch_is_cut_to_its_pixel_budget(
    committed: tuple[Settings, sessionmaker[Session]], store: LocalStore
) -> None:
    settings, sessions = committed
    job_id, _ = make_job(sessions, store, [jpeg(i) for i in range(5)])
    loader = BatchLoader(
        job_id,
        sessions=sessions,
        store=store,
        batch_size=5,
        max_pixels=settings.max_image_pixels,
        max_batch_pixels=2 * 64 * 48,
    )
    with loader:
        loaded = loader.next()
        assert loaded is not None
        assert len(loaded.batch) == 2
        loaded.session.rollback()
        loaded.session.close()
        loader.done_with(loaded)


# --- validation and decoding ----------------------------------------------------------------


def test_jpeg_validation_finds_what_a_full_decode_finds() -> None:
    data = jpeg(5, (250, 250))
    info = inspect_image(data, max_pixels=40_000_000)
    assert (info.format, info.width, info.height) == ("JPEG", 250, 250)
    for cut in (len(data) // 3, len(data) // 2, len(data) - 40):
        with pytest.raises(InvalidImageError) as caught:
            inspect_image(data[:cut], max_pixels=40_000_000)
        assert caught.value.code == "corrupt"
        with pytest.raises(InvalidImageError):
            decode_rgb(data[:cut], max_pixels=40_000_000)


# --- the stand-in model ---------------------------------------------------------------------


def test_the_stand_in_finds_one_centred_face_with_a_stable_unit_vector() -> None:
    pipeline = standin_pipeline()
    image = np.asarray(PILImage.open(io.BytesIO(jpeg(3, (200, 100)))).convert("RGB"))
    first = pipeline.process([image, np.zeros((40, 40, 3), dtype=np.uint8)])
    again = pipeline.process([image])
    assert [len(faces) for faces in first] == [1, 1]
    assert first[0][0].box == (50, 25, 100, 50)
    assert np.array_equal(first[0][0].embedding, again[0][0].embedding)
    assert not np.array_equal(first[0][0].embedding, first[1][0].embedding)
    assert np.linalg.norm(first[0][0].embedding) == pytest.approx(1.0, abs=1e-5)
    assert pipeline.model_name == STANDIN_MODEL


def test_the_stand_in_costs_what_it_is_told() -> None:
    assert parse_standin("detect_ms=2, embed_ms=0.5") == (2.0, 0.5)
    assert parse_standin("") == (0.0, 0.0)
    for bad in ("detect=2", "detect_ms=x", "embed_ms=-1"):
        with pytest.raises(ValueError, match="FACESEARCH_STANDIN_MODEL"):
            parse_standin(bad)
    with pytest.raises(ValueError, match="shape"):
        StandInEmbedder(dim=8, size=160).embed(np.zeros((1, 10, 10, 3), dtype=np.uint8))


def test_the_worker_runs_the_stand_in_only_when_the_benchmark_asks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from workers import runtime

    monkeypatch.setenv(runtime.STANDIN_ENV, "detect_ms=0")
    runtime.get_pipeline.cache_clear()
    try:
        assert runtime.get_pipeline().model_name == STANDIN_MODEL
    finally:
        runtime.get_pipeline.cache_clear()


def test_held_bytes_stay_within_their_bound() -> None:
    held = HeldBytes(max_bytes=10)
    held.put("a", b"12345")
    held.put("b", b"12345")
    held.put("c", b"123")  # full: the newest is not held (the oldest are needed first)
    assert held.take("c") is None
    assert held.take("b") == b"12345"
    assert held.take("b") is None  # read once
    held.put("big", b"x" * 11)  # larger than the bound: not held at all
    assert held.take("big") is None
    held.put("c", b"123")  # room again
    assert held.size == 8
    assert held.take("a") == b"12345"


# --- detection batched across sizes (what a GPU worker does) --------------------------------


def _iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    ax2, ay2, bx2, by2 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    w = max(0, min(ax2, bx2) - max(a[0], b[0]))
    h = max(0, min(ay2, by2) - max(a[1], b[1]))
    inter = w * h
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


@pytest.mark.slow
def test_padded_detection_batches_mixed_sizes_and_finds_the_same_faces(
    lfw_faces: dict[str, list[Any]],
) -> None:
    import cv2

    from workers.pipeline.detector import FaceDetector

    # LFW photos at different sizes, as uploads come: 250 px scaled to 180-330 px sides.
    images = []
    for n, image in enumerate(i for found in lfw_faces.values() for i in found):
        rgb = decode_rgb(image.data, max_pixels=40_000_000)
        size = (180 + (n * 37) % 150, 180 + (n * 53) % 150)
        images.append(cv2.resize(rgb, size, interpolation=cv2.INTER_AREA))
    assert len({im.shape for im in images}) > len(images) // 2  # mostly distinct sizes

    plain = FaceDetector(pad_to=None)
    padded = FaceDetector(pad_to=64)
    by_shape = plain.detect(images)  # one MTCNN call per distinct size
    batched = padded.detect(images)  # a few calls: sizes share 64 px buckets
    assert [len(faces) for faces in by_shape] == [len(faces) for faces in batched]
    # The same faces, boxes within MTCNN's own jitter: resizing a photo by 3 px moves its
    # boxes as much (median IoU 0.93 on 64 such LFW photos; padding: 0.96).
    overlaps = [_iou(a[0].box, b[0].box) for a, b in zip(by_shape, batched, strict=True)]
    assert float(np.median(overlaps)) > 0.9
    assert min(overlaps) > 0.6
    # An image's faces do not depend on the images it was batched with: the same boxes and
    # landmarks, and the same confidence up to float32 rounding (a batch of another size can
    # take another summation order in the CPU's kernels, which moves the 7th digit).
    for i in (0, 5, 11):
        alone = padded.detect([images[i]])[0]
        assert [(f.box, f.landmarks) for f in alone] == [(f.box, f.landmarks) for f in batched[i]]
        assert [f.confidence for f in alone] == pytest.approx(
            [f.confidence for f in batched[i]], abs=1e-5
        )
