"""The archive's reader in a process of its own (``workers.archive_reader``): it records what
the in-process reader records, hands the members' bytes and its stage times back, and its
stops, errors and deaths reach the parent. On a database of its own whose commits are real:
the child process cannot see a test's uncommitted transaction."""

from __future__ import annotations

import hashlib
import multiprocessing
import pickle
import threading
import time
from dataclasses import replace
from typing import Any

import pytest
import sqlalchemy.exc
from sqlalchemy.orm import Session, sessionmaker

from core.settings import Settings
from core.storage import StorageError, content_key
from models.db import make_engine, make_session_factory
from tests.conftest import migrate
from tests.test_api import make_client
from tests.test_archives import (
    EXPECTED_TAR,
    MAX_MEMBER,
    MAX_PIXELS,
    hostile_tar,
    items_of,
    jpeg,
    make_tar,
    post_raw,
)
from workers.archive_reader import (
    ReaderExitedError,
    _portable,
    reader_config,
    scan_in_process,
)
from workers.held_bytes import HeldBytes
from workers.stages import STAGE_TIMES


@pytest.fixture
def reader_setup(
    committed: tuple[Settings, sessionmaker[Session]],
) -> tuple[Settings, sessionmaker[Session]]:
    settings, sessions = committed
    return (
        settings.model_copy(
            update={"max_upload_bytes": MAX_MEMBER, "max_image_pixels": MAX_PIXELS}
        ),
        sessions,
    )


def new_job(settings: Settings, sessions: sessionmaker[Session], archive: bytes) -> str:
    response = post_raw(make_client(settings, sessions), archive)
    assert response.status_code == 202, response.get_json()
    return str(response.get_json()["job_id"])


def scan(
    settings: Settings,
    job_id: str,
    *,
    stop: threading.Event | None = None,
    held: HeldBytes | None = None,
    deadline: float | None = None,
    scan_batch: int = 64,
    **config: Any,
) -> bool:
    """``scan_in_process`` with the settings' database, store and limits; ``config``
    changes the child's configuration (its database URL, say)."""
    return scan_in_process(
        job_id,
        replace(reader_config(settings), **config),
        deadline=deadline,
        stop=stop or threading.Event(),
        held=held,
        max_member_bytes=settings.max_upload_bytes,
        max_pixels=settings.max_image_pixels,
        scan_batch=scan_batch,
    )


def statuses(sessions: sessionmaker[Session], job_id: str) -> dict[str, tuple[str, str | None]]:
    with sessions() as session:
        return items_of(session, job_id)


def test_the_reader_process_records_every_member_and_hands_back_their_bytes(
    reader_setup: tuple[Settings, sessionmaker[Session]],
) -> None:
    settings, sessions = reader_setup
    job_id = new_job(settings, sessions, hostile_tar())
    held = HeldBytes()
    STAGE_TIMES.reset()
    complete = scan(settings, job_id, held=held)
    assert complete is True
    got = statuses(sessions, job_id)
    assert set(got) == set(EXPECTED_TAR)
    for name, (status, fragment) in EXPECTED_TAR.items():
        assert got[name][0] == status, name
        if fragment is not None:
            assert fragment in (got[name][1] or ""), (name, got[name])
    # The three new photos' bytes came back over the pipe, under their content addresses
    # (the fourth image member repeats the first's bytes: stored and sent again, held once).
    assert len(held) == 3
    for seed in (1, 2, 3):
        data = jpeg(seed)
        assert held.take(content_key(hashlib.sha256(data).hexdigest())) == data
    # The child's stage times were added to this process's.
    items = STAGE_TIMES.items()
    assert items.get("store", 0) >= 4
    assert items.get("scan_rows", 0) == len(EXPECTED_TAR)


def test_the_reader_process_works_on_the_embedded_sqlite_database(settings: Settings) -> None:
    """The embedded mode: the child and this process write one SQLite file (WAL, waiting for
    each other's locks); there is no deletion counter, so the store is asked instead."""
    url = f"sqlite:///{settings.data_dir / 'embedded.db'}"
    migrate(url)
    engine = make_engine(url)
    try:
        sessions = make_session_factory(engine)
        embedded = settings.model_copy(
            update={
                "database_url": url,
                "max_upload_bytes": MAX_MEMBER,
                "max_image_pixels": MAX_PIXELS,
            }
        )
        job_id = new_job(embedded, sessions, hostile_tar())
        held = HeldBytes()
        assert scan(embedded, job_id, held=held)
        got = statuses(sessions, job_id)
        assert {name: status for name, (status, _) in got.items()} == {
            name: status for name, (status, _) in EXPECTED_TAR.items()
        }
        assert len(held) == 3
    finally:
        engine.dispose()


def test_a_stop_reaches_the_child_and_a_rerun_finishes_the_archive(
    reader_setup: tuple[Settings, sessionmaker[Session]],
) -> None:
    settings, sessions = reader_setup
    members = [(f"people/P{i}/P{i}_0001.jpg", jpeg(100 + i)) for i in range(12)]
    job_id = new_job(settings, sessions, make_tar(members))
    stop = threading.Event()
    stop.set()  # asked before it starts: the child stops after its first batch
    assert scan(settings, job_id, stop=stop, scan_batch=3) is False
    assert 0 < len(statuses(sessions, job_id)) < len(members)
    assert scan(settings, job_id, scan_batch=3)
    got = statuses(sessions, job_id)
    assert sorted(got) == sorted(name for name, _ in members)
    assert {status for status, _ in got.values()} == {"pending"}


def test_a_past_deadline_stops_the_child_after_one_batch(
    reader_setup: tuple[Settings, sessionmaker[Session]],
) -> None:
    settings, sessions = reader_setup
    members = [(f"people/P{i}/P{i}_0001.jpg", jpeg(200 + i)) for i in range(8)]
    job_id = new_job(settings, sessions, make_tar(members))
    # time.monotonic is the machine's clock (CLOCK_MONOTONIC): the child reads the same one.
    done = scan(settings, job_id, deadline=time.monotonic() - 1, scan_batch=2)
    assert done is False
    assert len(statuses(sessions, job_id)) == 2


def test_a_database_that_is_away_is_raised_here_as_a_database_error(
    reader_setup: tuple[Settings, sessionmaker[Session]],
) -> None:
    """Its type survives the pipe: the task's retry policy treats it as transient."""
    settings, sessions = reader_setup
    job_id = new_job(settings, sessions, make_tar([("a/A/A_0001.jpg", jpeg(7))]))
    away = "postgresql+psycopg://postgres@127.0.0.1:1/nowhere?connect_timeout=2"
    with pytest.raises(sqlalchemy.exc.OperationalError):
        scan(settings, job_id, database_url=away)


def test_a_reader_killed_midway_is_reported_and_a_rerun_records_everything(
    reader_setup: tuple[Settings, sessionmaker[Session]],
) -> None:
    settings, sessions = reader_setup
    members = [(f"people/P{i}/P{i}_0001.jpg", jpeg(300 + i)) for i in range(6)]
    job_id = new_job(settings, sessions, make_tar(members))
    before = {p.pid for p in multiprocessing.active_children()}

    def kill_the_child() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for child in multiprocessing.active_children():
                if child.pid not in before and child.name.startswith("archive-reader-"):
                    child.kill()
                    return
            time.sleep(0.01)

    killer = threading.Thread(target=kill_the_child)
    killer.start()
    with pytest.raises(ReaderExitedError, match="exit code -9"):
        scan(settings, job_id)
    killer.join()
    assert scan(settings, job_id)
    assert sorted(statuses(sessions, job_id)) == sorted(name for name, _ in members)


class _Unpicklable(StorageError):
    def __init__(self, message: str, handle: Any = None) -> None:
        super().__init__(message)
        self.handle = handle

    def __reduce__(self) -> Any:
        raise TypeError("not picklable")


def test_an_error_that_cannot_cross_the_pipe_keeps_its_meaning() -> None:
    storage = _portable(_Unpicklable("the store is away", handle=threading.Lock()))
    assert isinstance(pickle.loads(pickle.dumps(storage)), StorageError)
    assert "the store is away" in str(storage)

    class Driver(Exception):
        def __reduce__(self) -> Any:
            raise TypeError("not picklable")

    database = _portable(sqlalchemy.exc.OperationalError("SELECT 1", None, Driver("refused")))
    assert isinstance(database, sqlalchemy.exc.OperationalError)
    assert "refused" in str(pickle.loads(pickle.dumps(database)))
