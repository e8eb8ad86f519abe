"""The index writer's spacing (``workers.indexing.WriteSpacing``): a write sooner than the
interval after the last waits, and the faces that arrive meanwhile join it: one milvus-lite
write (and flush) instead of one per finished job."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from core.index import VectorIndex
from models import Face, vector_to_bytes
from tests.conftest import face_row, image_row
from workers import indexing
from workers.indexing import WriteSpacing, index_pending, write_interval

MODEL = "facenet-20170512-110547"


def add_faces(sessions: sessionmaker[Session], first: int, n: int) -> None:
    rng = np.random.default_rng(first)
    with sessions() as session:
        for i in range(first, first + n):
            image = image_row(sha256=f"{i:064x}", object_key=f"objects/{i:064x}")
            session.add(image)
            session.flush()
            vector = rng.normal(size=128).astype("<f4")
            embedding = vector_to_bytes(vector / np.linalg.norm(vector))
            session.add(face_row(image_id=image.id, model_name=MODEL, embedding=embedding))
        session.commit()


def unindexed(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return int(
            session.scalar(select(func.count()).select_from(Face).where(Face.indexed_at.is_(None)))
            or 0
        )


class CountingIndex:
    """The real index, its writes counted."""

    def __init__(self, index: VectorIndex) -> None:
        self._index = index
        self.writes: list[int] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._index, name)

    def upsert(self, model_name: str, **kwargs: Any) -> None:
        self.writes.append(len(kwargs["face_ids"]))
        self._index.upsert(model_name, **kwargs)


def test_a_write_soon_after_the_last_waits_and_takes_what_arrived_meanwhile(
    sessions: sessionmaker[Session], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spacing = WriteSpacing()
    monkeypatch.setattr(indexing, "WRITE_SPACING", spacing)
    arrived: list[float] = []
    real_sleep = time.sleep

    def sleep_while_a_job_finishes(seconds: float) -> None:
        add_faces(sessions, 100, 3)  # another job's faces, committed during the pause
        arrived.append(seconds)
        real_sleep(seconds)

    with VectorIndex(str(tmp_path / "milvus.db"), index_type="FLAT") as real:
        index = CountingIndex(real)
        add_faces(sessions, 0, 2)
        written = index_pending(
            MODEL, sessions=sessions, index=index, batch_size=50, min_interval_s=0.5
        )
        assert (written, index.writes) == (2, [2])  # the first write does not wait
        add_faces(sessions, 10, 2)
        monkeypatch.setattr(indexing.time, "sleep", sleep_while_a_job_finishes)
        started = time.monotonic()
        written = index_pending(
            MODEL, sessions=sessions, index=index, batch_size=50, min_interval_s=0.5
        )
        waited = time.monotonic() - started
        # One write, after the pause, with both jobs' faces.
        assert (written, index.writes) == (5, [2, 5])
        assert len(arrived) == 1
        assert 0 < arrived[0] <= 0.5
        assert waited >= arrived[0]
        assert unindexed(sessions) == 0
        assert real.count(MODEL) == 7


def test_without_an_interval_every_call_writes_at_once(
    sessions: sessionmaker[Session], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(indexing, "WRITE_SPACING", WriteSpacing())
    monkeypatch.setattr(indexing.time, "sleep", lambda _s: pytest.fail("it must not wait"))
    with VectorIndex(str(tmp_path / "milvus.db"), index_type="FLAT") as real:
        index = CountingIndex(real)
        for first in (0, 10, 20):
            add_faces(sessions, first, 2)
            index_pending(MODEL, sessions=sessions, index=index, batch_size=50)
        assert index.writes == [2, 2, 2]


def test_only_an_index_process_that_serves_no_searches_spaces_its_writes(tmp_path: Path) -> None:
    def no_index() -> VectorIndex:
        raise AssertionError("the index is not opened when searches decide")

    assert write_interval("search,index", index=no_index, interval_s=1.0) == 0.0
    assert write_interval(None, index=no_index, interval_s=1.0) == 0.0  # not known
    with VectorIndex(str(tmp_path / "milvus.db"), index_type="FLAT") as lite:
        assert write_interval("index", index=lambda: lite, interval_s=1.0) == 1.0
        assert write_interval("index,io", index=lambda: lite, interval_s=0.0) == 0.0

    class Server:
        lite = False

    server: Any = Server()
    assert write_interval("index", index=lambda: server, interval_s=1.0) == 0.0
