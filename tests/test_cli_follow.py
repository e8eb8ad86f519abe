"""``--wait`` of the commands that queue a job: it follows the job in Postgres to its end."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy.orm import Session, sessionmaker

from cli.follow import follow_job
from core.settings import Settings
from models import DEFAULT_GALLERY_ID, Job, JobKind, JobStatus
from models.db import session_scope


def test_follow_job_shows_progress_until_the_job_ends(
    committed: tuple[Settings, sessionmaker[Session]], capsys: pytest.CaptureFixture[str]
) -> None:
    _, sessions = committed
    with session_scope(sessions) as session:
        job = Job(
            kind=JobKind.REEMBED,
            gallery_id=DEFAULT_GALLERY_ID,
            status=JobStatus.RUNNING,
            total=4,
            done=1,
            params={"phase": "embed"},
        )
        session.add(job)
        session.flush()
        job_id = job.id
    progressed = threading.Event()

    def finish() -> None:
        progressed.wait(10)
        with session_scope(sessions) as session:
            finished = session.get_one(Job, job_id)
            finished.status, finished.done = JobStatus.SUCCEEDED, 4
            finished.result = {"embedded": 4}

    finisher = threading.Thread(target=finish)
    finisher.start()
    # The first poll sees the job running; the job ends while the command sleeps.
    threading.Timer(0.1, progressed.set).start()
    follow_job(sessions, job_id, every_s=0.2, show_progress=True)
    finisher.join()
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "embed: 1/4"
    assert lines[-1] == "succeeded: {'embedded': 4}"
