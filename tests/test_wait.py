"""Answers without polling: ``Prefer: wait=N`` on ``POST /v1/searches`` and
``GET /v1/jobs/{id}?wait=N``, woken through real Redis pub/sub after the commit that ends the
job (``services.jobs.close_job``), falling back to re-reading the row without Redis.

The waiters under test re-check their row only every hour unless a message (or the loss of
the subscription) wakes them: a test that gets the finished state back within its wait proves
the wake-up path it is about, without timing anything.
"""

from __future__ import annotations

import io
import os
import random
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.test import TestResponse

from api import create_app
from api.context import EXTENSION as CONTEXT
from api.waiting import EXTENSION, preferred_wait
from cli.lfw import LfwImage
from core import notify
from core.notify import JobWaiters
from core.settings import Settings, get_settings
from models import DEFAULT_GALLERY_ID, Job, JobKind, JobStatus
from services.jobs import close_job
from tests.conftest import MODEL_DIR, create_database, drop_database, make_client, migrate
from tests.test_api import jpeg
from tests.worker_process import keyed_client, make_api_key, start_worker, stop_worker

HOUR = 3600.0
SETTLE_S = 30  # the longest any step below may take before the test gives up


def until(condition: Callable[[], bool], what: str) -> None:
    """Wait for ``condition`` (a state, not a time); fail saying ``what`` did not happen."""
    deadline = time.monotonic() + SETTLE_S
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen")
        time.sleep(0.02)


@pytest.fixture
def redis_url(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A Redis database of its own, which is also the broker the publishing side reads from
    its settings (as a worker's would)."""
    url = f"redis://127.0.0.1:6379/{random.randint(1, 15)}"
    try:
        redis.Redis.from_url(url).ping()
    except redis.ConnectionError as exc:
        pytest.fail(f"tests need Redis on 127.0.0.1:6379 - {exc}")
    monkeypatch.setenv("BROKER_URL", url)
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A redis-server of this test's own (loopback only), which the test may stop."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    server = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"

    def answers() -> bool:
        try:
            return bool(redis.Redis.from_url(url).ping())
        except redis.ConnectionError:
            return False

    until(answers, "the test's redis-server starting")
    yield url, server
    server.kill()
    server.wait()


def install_waiters(client: FlaskClient, waiters: JobWaiters) -> JobWaiters:
    app = client.application
    assert isinstance(app, Flask)
    app.extensions[EXTENSION] = waiters
    return waiters


@pytest.fixture
def committed_client(
    committed: tuple[Settings, sessionmaker[Session]], redis_url: str
) -> Iterator[tuple[FlaskClient, sessionmaker[Session]]]:
    """A client whose requests commit, on a pooled engine (so that connections can be
    counted), with Redis as its broker."""
    settings, sessions = committed
    settings = settings.model_copy(update={"broker_url": redis_url, "rate_limit": ""})
    client = make_client(settings, sessions)
    yield client, sessions
    waiters = client.application.extensions.get(EXTENSION)
    if waiters is not None:
        waiters.close()
    redis.Redis.from_url(redis_url).flushdb()


def checked_out(sessions: sessionmaker[Session]) -> int:
    return int(sessions.kw["bind"].pool.checkedout())


def in_thread(call: Callable[[], TestResponse]) -> tuple[threading.Thread, list[TestResponse]]:
    answers: list[TestResponse] = []
    thread = threading.Thread(target=lambda: answers.append(call()), daemon=True)
    thread.start()
    return thread, answers


def post_search(client: FlaskClient, prefer: str | None, seed: int = 0) -> TestResponse:
    headers = {"Prefer": prefer} if prefer else {}
    return client.post(
        "/v1/searches",
        data={"file": (io.BytesIO(jpeg(seed)), "q.jpg")},
        headers=headers,
        content_type="multipart/form-data",
    )


def make_job(sessions: sessionmaker[Session]) -> str:
    with sessions() as session:
        job = Job(kind=JobKind.INGEST, gallery_id=DEFAULT_GALLERY_ID)
        session.add(job)
        session.commit()
        return job.id


def end_job(sessions: sessionmaker[Session], job_id: str) -> None:
    """End the job the one way jobs end (its id is published after this commit)."""
    with sessions() as session:
        job = session.get_one(Job, job_id)
        close_job(session, job, JobStatus.SUCCEEDED)
        session.commit()


def only_search_job(sessions: sessionmaker[Session]) -> str:
    with sessions() as session:
        return session.scalars(select(Job.id).where(Job.kind == JobKind.SEARCH)).one()


# --- the header and the parameter --------------------------------------------------------


@pytest.mark.parametrize(
    ("prefer", "expected"),
    [
        ("wait=10", 10),
        ("respond-async, wait=5", 5),
        ('wait="7"', 7),
        ("Wait = 3", 3),
        ("wait=10; foo=bar", 10),
        ("wait=31", 30),  # clamped to the most
        ("wait=" + "9" * 5000, 30),  # never an int() of 5,000 digits
        ("wait=0", 0),
        ("wait=abc, wait=3", None),  # only the first instance counts; invalid is ignored
        ("wait=-1", None),
        ("wait=1.5", None),
        ("wait", None),
        ("handling=lenient", None),
    ],
)
def test_prefer_wait_is_read_as_rfc_7240_says(prefer: str, expected: int | None) -> None:
    app = Flask(__name__)
    with app.test_request_context(headers={"Prefer": prefer}):
        assert preferred_wait() == expected


def test_a_bad_wait_is_422_and_no_wait_answers_at_once(client: FlaskClient) -> None:
    job = post_search(client, None).get_json()
    for bad in ("abc", "-1", "31", "1.5", ""):
        answer = client.get(f"/v1/jobs/{job['job_id']}?wait={bad}")
        assert answer.status_code == 422, bad
        assert answer.get_json()["error"]["code"] == "invalid_input"
    assert client.get(f"/v1/jobs/{job['job_id']}?wait=0").get_json()["status"] == "queued"
    assert client.get("/v1/jobs/00000000-0000-0000-0000-000000000000?wait=30").status_code == 404


def test_without_prefer_the_answer_is_the_usual_202(client: FlaskClient) -> None:
    answer = post_search(client, "respond-async")
    assert answer.status_code == 202
    assert answer.headers["Vary"] == "Prefer"
    assert "Preference-Applied" not in answer.headers


# --- the embedded mode: no Redis, the row is re-read --------------------------------------


def test_a_search_that_does_not_end_in_time_is_202_with_the_wait_applied(
    client: FlaskClient,
) -> None:
    answer = post_search(client, "wait=1")
    assert answer.status_code == 202
    assert answer.headers["Preference-Applied"] == "wait=1"
    assert answer.headers["Vary"] == "Prefer"
    body = answer.get_json()
    assert answer.headers["Location"] == body["job_url"]
    assert body["status"] == "queued"


def test_without_redis_a_waiter_polls_its_row(
    committed: tuple[Settings, sessionmaker[Session]],
) -> None:
    settings, sessions = committed
    client = make_client(settings, sessions)  # the filesystem broker: nothing to subscribe to
    waiters = install_waiters(client, JobWaiters(settings.broker_url, max_waiters=4))
    assert waiters.redis_url is None
    job_id = make_job(sessions)
    thread, answers = in_thread(lambda: client.get(f"/v1/jobs/{job_id}?wait=30"))
    until(lambda: waiters.waiting == 1, "the request waiting")
    end_job(sessions, job_id)
    thread.join(SETTLE_S)
    assert answers[0].status_code == 200
    assert answers[0].get_json()["status"] == "succeeded"


# --- server mode: woken by Redis ----------------------------------------------------------


def test_a_search_that_ends_in_time_answers_200_with_the_search(
    committed_client: tuple[FlaskClient, sessionmaker[Session]], redis_url: str
) -> None:
    client, sessions = committed_client
    waiters = install_waiters(client, JobWaiters(redis_url, max_waiters=4, recheck_s=HOUR))
    thread, answers = in_thread(lambda: post_search(client, "wait=30"))
    until(lambda: waiters.waiting == 1 and waiters.subscribed, "the search waiting, subscribed")
    # The request holds no database connection while it waits (it takes one only for the
    # moment of each re-read of its row).
    until(lambda: checked_out(sessions) == 0, "every connection back in the pool")
    end_job(sessions, only_search_job(sessions))  # as the worker ends it
    thread.join(SETTLE_S)
    answer = answers[0]
    assert answer.status_code == 200
    assert answer.headers["Preference-Applied"] == "wait=30"
    assert answer.headers["Vary"] == "Prefer"
    body = answer.get_json()
    assert body["status"] == "succeeded"
    assert answer.headers["Content-Location"] == body["search_url"]
    assert "Location" not in answer.headers
    # The same rendering as GET search_url.
    assert body == client.get(body["search_url"]).get_json()


def test_a_long_poll_is_woken_when_the_job_ends(
    committed_client: tuple[FlaskClient, sessionmaker[Session]], redis_url: str
) -> None:
    client, sessions = committed_client
    waiters = install_waiters(client, JobWaiters(redis_url, max_waiters=4, recheck_s=HOUR))
    job_id = make_job(sessions)
    threads = [in_thread(lambda: client.get(f"/v1/jobs/{job_id}?wait=30")) for _ in range(3)]
    until(lambda: waiters.waiting == 3 and waiters.subscribed, "three long polls waiting")
    until(lambda: checked_out(sessions) == 0, "every connection back in the pool")
    end_job(sessions, job_id)
    for thread, answers in threads:
        thread.join(SETTLE_S)
        assert answers[0].status_code == 200
        assert answers[0].get_json()["status"] == "succeeded"
    assert waiters.waiting == 0


def test_a_long_poll_answers_with_the_state_when_the_wait_runs_out(
    committed_client: tuple[FlaskClient, sessionmaker[Session]], redis_url: str
) -> None:
    client, sessions = committed_client
    install_waiters(client, JobWaiters(redis_url, max_waiters=4, recheck_s=HOUR))
    job_id = make_job(sessions)
    answer = client.get(f"/v1/jobs/{job_id}?wait=1")
    assert answer.status_code == 200
    assert answer.get_json()["status"] == "queued"


def test_past_the_cap_a_request_is_answered_at_once(
    committed_client: tuple[FlaskClient, sessionmaker[Session]], redis_url: str
) -> None:
    client, sessions = committed_client
    waiters = install_waiters(client, JobWaiters(redis_url, max_waiters=1, recheck_s=HOUR))
    job_id = make_job(sessions)
    thread, answers = in_thread(lambda: client.get(f"/v1/jobs/{job_id}?wait=30"))
    until(lambda: waiters.waiting == 1, "the first long poll waiting")
    # The process has its most waiters: these are answered now, as if they had not asked.
    assert client.get(f"/v1/jobs/{job_id}?wait=30").get_json()["status"] == "queued"
    search = post_search(client, "wait=30")
    assert search.status_code == 202
    assert "Preference-Applied" not in search.headers
    assert waiters.waiting == 1  # the first one still waits
    end_job(sessions, job_id)
    thread.join(SETTLE_S)
    assert answers[0].get_json()["status"] == "succeeded"


def test_redis_lost_during_a_wait_falls_back_to_polling(
    committed_client: tuple[FlaskClient, sessionmaker[Session]],
    own_redis: tuple[str, subprocess.Popen[bytes]],
) -> None:
    client, sessions = committed_client
    url, server = own_redis
    waiters = install_waiters(client, JobWaiters(url, max_waiters=4, recheck_s=HOUR))
    job_id = make_job(sessions)
    thread, answers = in_thread(lambda: client.get(f"/v1/jobs/{job_id}?wait=30"))
    until(lambda: waiters.waiting == 1 and waiters.subscribed, "the long poll subscribed")
    server.kill()
    server.wait()
    until(lambda: not waiters.subscribed, "the subscription's loss noticed")
    end_job(sessions, job_id)  # no message can reach the waiter now: only its re-reads
    thread.join(SETTLE_S)
    assert answers[0].status_code == 200
    assert answers[0].get_json()["status"] == "succeeded"


def test_a_job_ends_with_redis_down(
    committed: tuple[Settings, sessionmaker[Session]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Publishing is best effort: a broker that is away never fails the commit."""
    _, sessions = committed
    monkeypatch.setenv("BROKER_URL", f"redis://127.0.0.1:{free_port()}/0")
    get_settings.cache_clear()
    try:
        job_id = make_job(sessions)
        end_job(sessions, job_id)
    finally:
        get_settings.cache_clear()
    with sessions() as session:
        assert session.get_one(Job, job_id).status == JobStatus.SUCCEEDED


def test_a_rolled_back_end_is_not_published(
    committed: tuple[Settings, sessionmaker[Session]], redis_url: str
) -> None:
    _, sessions = committed
    job_id = make_job(sessions)
    pubsub = redis.Redis.from_url(redis_url).pubsub()
    pubsub.subscribe(notify.CHANNEL)
    heard: list[str] = []

    def listen_until(job: str) -> None:
        deadline = time.monotonic() + SETTLE_S
        while time.monotonic() < deadline:
            message = pubsub.get_message(timeout=1.0)
            if message is not None and message["type"] == "message":
                heard.append(message["data"].decode())
                if heard[-1] == job:
                    return

    until(lambda: pubsub.get_message(timeout=1.0) is not None, "the subscription")

    with sessions() as session:
        close_job(session, session.get_one(Job, job_id), JobStatus.SUCCEEDED)
        session.rollback()
    end_job(sessions, job_id)
    listen_until(job_id)
    assert heard.count(job_id) == 1  # the committed end only
    pubsub.close()


# --- through a real worker -----------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.e2e
def test_a_real_worker_ends_a_search_within_its_wait(
    tmp_path: Path, redis_url: str, lfw_faces: dict[str, list[LfwImage]]
) -> None:
    """Postgres, Redis and a Celery worker process with the face pipeline: a search sent with
    ``Prefer: wait=30`` is answered 200 with its matches, and an upload's job is followed by
    long polls alone."""
    database_url = create_database()
    migrate(database_url)
    env = {
        **os.environ,
        "DATA_DIR": str(tmp_path),
        "DATABASE_URL": database_url,
        "BROKER_URL": redis_url,
        "STORAGE_URL": f"file://{tmp_path / 'objects'}",
        "MILVUS_URI": str(tmp_path / "milvus.db"),
        "MILVUS_INDEX_TYPE": "FLAT",
        "MODEL_DIR": str(MODEL_DIR),
        "LOG_JSON": "true",
    }
    settings = Settings(
        data_dir=tmp_path,
        database_url=database_url,
        broker_url=redis_url,
        storage_url=env["STORAGE_URL"],
        milvus_uri=env["MILVUS_URI"],
        model_dir=MODEL_DIR,
        rate_limit="",
    )
    log_path = tmp_path / "worker.log"
    worker = start_worker(env, log_path)
    app = create_app(settings)
    try:
        client = keyed_client(app, make_api_key(database_url))
        images = lfw_faces["Albert_Costa"]
        upload = client.post(
            "/v1/images",
            data={
                "file": [(io.BytesIO(i.data), i.name) for i in images[1:]],
                "label": "Albert_Costa",
            },
            content_type="multipart/form-data",
        )
        job_url = upload.get_json()["job_url"]
        for _ in range(6):  # long polls, up to 3 minutes in all
            job = client.get(f"{job_url}?wait=30").get_json()
            if job["status"] not in ("queued", "running"):
                break
        assert job["status"] == "succeeded", log_path.read_text()[-3000:]

        answer = client.post(
            "/v1/searches",
            data={"file": (io.BytesIO(images[0].data), images[0].name), "top_k": "3"},
            headers={"Prefer": "wait=30"},
            content_type="multipart/form-data",
        )
        assert answer.status_code == 200, log_path.read_text()[-3000:]
        assert answer.headers["Preference-Applied"] == "wait=30"
        search = answer.get_json()
        assert search["status"] == "succeeded"
        assert search["faces"][0]["matches"][0]["label"] == "Albert_Costa"
    finally:
        waiters = app.extensions.get(EXTENSION)
        if waiters is not None:
            waiters.close()
        app.extensions[CONTEXT].close()
        stop_worker(worker)
        drop_database(database_url)


# --- facesearch serve ------------------------------------------------------------------------


def test_serve_refuses_a_cap_that_leaves_too_few_threads(
    cli_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from cli.main import cli

    refused = CliRunner().invoke(cli, ["serve", "--threads", "32"])  # the cap is 48
    assert refused.exit_code == 2
    assert "API_MAX_WAITERS=48" in refused.output
    monkeypatch.setenv("API_MAX_WAITERS", "40")
    get_settings.cache_clear()
    assert CliRunner().invoke(cli, ["serve", "--threads", "55"]).exit_code == 2
