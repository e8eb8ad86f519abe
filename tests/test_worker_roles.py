"""Queues by workload: every task has a queue that some process of each layout consumes, the
worker refuses a setting that breaks an invariant, one index writer across processes, and
the I/O role never loads TensorFlow."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import redis
from click.testing import CliRunner
from sqlalchemy import Engine

from cli.lfw import PROJECT_ROOT
from cli.main import cli
from core.queue import (
    INDEX_QUEUE,
    IO_QUEUE,
    QUEUE_OF_TASK,
    QUEUES,
    ROUTES,
    SEARCH_QUEUE,
    SEARCH_TASK,
    make_celery,
)
from core.settings import Settings
from workers.roles import (
    ProcessSpec,
    Role,
    WorkerConfigError,
    auto_layout,
    plan_process,
)
from workers.supervisor import child_argv, child_env
from workers.writer_lock import IndexWriterTakenError, acquire_writer_lock


def test_every_task_of_the_app_is_routed_to_a_queue_of_its_workload() -> None:
    from workers.celery_app import celery_app

    names = {name for name in celery_app.tasks if name.startswith("facesearch.")}
    assert names == set(QUEUE_OF_TASK), "a task without a route would land on the default queue"
    assert set(QUEUE_OF_TASK.values()) == set(QUEUES)
    assert QUEUE_OF_TASK[SEARCH_TASK] == SEARCH_QUEUE
    assert ROUTES[SEARCH_TASK]["queue"] == SEARCH_QUEUE


@pytest.mark.parametrize("embedded", [True, False])
def test_the_default_layout_consumes_every_queue_with_one_index_writer(embedded: bool) -> None:
    layout = auto_layout(embedded_index=embedded)
    consumed = [queue for spec in layout for queue in spec.queues]
    assert set(QUEUES) <= set(consumed)
    assert consumed.count(INDEX_QUEUE) == 1
    # Searches have a process that takes nothing bulk.
    (search,) = [spec for spec in layout if SEARCH_QUEUE in spec.queues]
    assert set(search.queues) <= {SEARCH_QUEUE, INDEX_QUEUE}
    (io,) = [spec for spec in layout if IO_QUEUE in spec.queues]
    assert not io.loads_pipeline
    assert io.pool == "threads"
    for spec in layout:
        assert spec.loads_pipeline == bool(set(spec.queues) & {"search", "ingest"})
        if spec.writes_index:
            assert (spec.pool, spec.concurrency) == ("solo", 1)
    if embedded:  # the milvus-lite path opens in one process: search reads where it is written
        assert search.writes_index


@pytest.mark.parametrize(
    ("role", "queues", "pool", "concurrency", "embedded", "message"),
    [
        (Role.INDEX, None, "prefork", 2, False, "exactly one writer"),
        (Role.INDEX, None, "threads", 4, False, "exactly one writer"),
        (Role.ALL, None, "prefork", 3, False, "exactly one writer"),
        (Role.INGEST, "ingest,index", "threads", 2, False, "exactly one writer"),
        (Role.SEARCH, None, None, None, True, "one process only may open it"),
        (Role.INDEX, None, "prefork", 1, True, "--pool solo"),
        (Role.INGEST, None, "solo", 3, False, "one task at a time"),
        (Role.ALL, "search,bulk", None, None, False, "unknown queue(s) bulk"),
    ],
)
def test_a_setting_that_breaks_an_invariant_is_refused(
    role: Role,
    queues: str | None,
    pool: str | None,
    concurrency: int | None,
    embedded: bool,
    message: str,
) -> None:
    with pytest.raises(WorkerConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        plan_process(
            role, queues=queues, pool=pool, concurrency=concurrency, embedded_index=embedded
        )


def test_roles_have_defaults_for_their_work() -> None:
    search = plan_process(
        Role.SEARCH, queues=None, pool=None, concurrency=None, embedded_index=False
    )
    assert (search.queues, search.pool, search.concurrency) == (("search",), "solo", 1)
    io = plan_process(Role.IO, queues=None, pool=None, concurrency=None, embedded_index=True)
    assert (io.pool, io.loads_pipeline) == ("threads", False)
    # More search processes on a server: prefork, each child with its own model.
    wide = plan_process(
        Role.SEARCH, queues=None, pool="prefork", concurrency=3, embedded_index=False
    )
    assert (wide.pool, wide.concurrency) == ("prefork", 3)
    # The ingest role drains the queue everything shared before the split.
    ingest = plan_process(
        Role.INGEST, queues=None, pool=None, concurrency=None, embedded_index=True
    )
    assert "pipeline" in ingest.queues


def test_the_cli_refuses_before_starting_anything(cli_env: Path) -> None:
    result = CliRunner().invoke(
        cli, ["worker", "--role", "index", "--pool", "prefork", "--concurrency", "2"]
    )
    assert result.exit_code == 2
    assert "exactly one writer" in result.output
    result = CliRunner().invoke(cli, ["worker", "--pool", "threads"])
    assert result.exit_code == 2
    assert "give --role or --queues" in result.output


def test_the_supervisor_gives_each_child_its_queues_and_metrics_port() -> None:
    spec = ProcessSpec("io", ("io",), "threads", 8)
    assert child_argv(spec)[-6:] == ["--queues", "io", "--pool", "threads", "--concurrency", "8"]
    assert child_env(spec, 2, {"WORKER_METRICS_PORT": "9100"})["WORKER_METRICS_PORT"] == "9102"
    assert "WORKER_METRICS_PORT" not in child_env(spec, 2, {})


def test_one_index_writer_across_processes(engine: Engine) -> None:
    held = acquire_writer_lock(engine, wait_s=0)
    try:
        with pytest.raises(IndexWriterTakenError, match="another index writer is running"):
            acquire_writer_lock(engine, wait_s=0.3, poll_s=0.1)
    finally:
        held.release()
    again = acquire_writer_lock(engine, wait_s=0)  # freed with its connection
    again.release()


def test_a_second_index_worker_refuses_to_start(engine: Engine, database_url: str) -> None:
    held = acquire_writer_lock(engine, wait_s=0)
    try:
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "BROKER_URL": "redis://127.0.0.1:6379/15",
            "MILVUS_URI": "http://127.0.0.1:9",  # a server: the lock is Postgres's to keep
            "INDEX_WRITER_LOCK_WAIT_S": "0",
        }
        result = subprocess.run(
            [sys.executable, "-m", "cli.main", "worker", "--role", "index"],
            env=env,
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        held.release()
    assert result.returncode == 1, result.stderr[-2000:]
    assert "another index writer is running" in result.stderr
    assert "ready." not in result.stdout + result.stderr


@pytest.fixture
def io_env(tmp_path: Path, database_url: str) -> dict[str, str]:
    redis.Redis(db=14).flushdb()
    return {
        **os.environ,
        "DATA_DIR": str(tmp_path),
        "DATABASE_URL": database_url,
        "BROKER_URL": "redis://127.0.0.1:6379/14",
        "STORAGE_URL": f"file://{tmp_path / 'objects'}",
        "MILVUS_URI": "http://127.0.0.1:9",
        "LOG_JSON": "true",
    }


@pytest.mark.slow
def test_the_io_worker_runs_its_tasks_without_tensorflow(
    io_env: dict[str, str], tmp_path: Path
) -> None:
    from tests.worker_process import start_worker, stop_worker

    log_path = tmp_path / "io.log"
    worker = start_worker(io_env, log_path, args=("--role", "io"))
    try:
        settings = Settings(broker_url=io_env["BROKER_URL"], database_url=io_env["DATABASE_URL"])
        make_celery(settings).send_task("facesearch.purge_expired_searches")
        deadline = time.monotonic() + 60
        while b"succeeded" not in log_path.read_bytes():
            assert time.monotonic() < deadline, log_path.read_text()[-3000:]
            time.sleep(0.2)
        maps = Path(f"/proc/{worker.pid}/maps").read_text()
        assert "tensorflow" not in maps
        assert "no face pipeline in this process" in log_path.read_text()
    finally:
        stop_worker(worker)


def _waiting_child(folder: Path) -> str:
    """A child's code: says it is ready, then waits; on SIGTERM it leaves a mark and ends."""
    return (
        "import signal, sys, time, pathlib;"
        f"folder = pathlib.Path({str(folder)!r});"
        "signal.signal(signal.SIGTERM, lambda *a: ((folder / 'stopped').touch(), sys.exit(0)));"
        "(folder / 'ready').touch();"
        "time.sleep(120)"
    )


def _supervisor(children: list[str]) -> list[str]:
    """A supervisor over children that run ``children`` (Python code) instead of Celery."""
    specs = ", ".join(f"ProcessSpec({code!r}, ('io',), 'solo', 1)" for code in children)
    code = (
        "import sys; import workers.supervisor as s; from workers.roles import ProcessSpec;"
        "s.child_argv = lambda spec: [sys.executable, '-c', spec.name];"
        f"sys.exit(s.supervise([{specs}]))"
    )
    return [sys.executable, "-c", code]


def _wait_for(path: Path) -> None:
    deadline = time.monotonic() + 30
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} never came"
        time.sleep(0.05)


def test_the_supervisor_stops_every_child_when_one_dies(tmp_path: Path) -> None:
    """`facesearch worker` with no role runs one process per workload; if one dies the whole
    set stops with its code (so a restart brings all of them back, never half)."""
    dying = "import time, sys, pathlib; time.sleep(1); sys.exit(3)"
    proc = subprocess.Popen(_supervisor([_waiting_child(tmp_path), dying]), cwd=PROJECT_ROOT)
    assert proc.wait(timeout=60) == 3
    assert (tmp_path / "stopped").exists(), "the other child was not stopped"


def test_the_supervisor_passes_a_stop_signal_on(tmp_path: Path) -> None:
    proc = subprocess.Popen(_supervisor([_waiting_child(tmp_path)]), cwd=PROJECT_ROOT)
    _wait_for(tmp_path / "ready")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    assert (tmp_path / "stopped").exists()


ARCHIVE_IMAGES = 300


@pytest.mark.e2e
@pytest.mark.slow
def test_a_search_is_answered_while_an_archive_is_being_ingested(
    tmp_path: Path, lfw_archive: Path
) -> None:
    """The default layout on a server broker: the search process answers while the ingest
    process is busy with an archive. In one shared process the search would wait for the
    archive's run (up to ARCHIVE_TASK_BUDGET_S) and finish after it."""
    from api import create_app
    from api.context import EXTENSION
    from cli.lfw import iter_images
    from models import Scope
    from tests.conftest import MODEL_DIR, create_database, drop_database, migrate
    from tests.test_archives import make_tar
    from tests.worker_process import (
        keyed_client,
        make_api_key,
        start_worker,
        stop_worker,
        wait_for_job,
    )

    members, queries = [], []
    for image in iter_images(lfw_archive):
        if image.label == "Albert_Costa":
            queries.append(image)
        elif len(members) < ARCHIVE_IMAGES:
            members.append((f"lfw/{image.label}/{image.name}", image.data))
        if len(queries) >= 2 and len(members) == ARCHIVE_IMAGES:
            break
    database_url = create_database()
    migrate(database_url)
    redis.Redis(db=13).flushdb()
    env = {
        **os.environ,
        "DATA_DIR": str(tmp_path),
        "DATABASE_URL": database_url,
        "BROKER_URL": "redis://127.0.0.1:6379/13",
        "STORAGE_URL": f"file://{tmp_path / 'objects'}",
        "MILVUS_URI": str(tmp_path / "milvus.db"),
        "MILVUS_INDEX_TYPE": "FLAT",
        "MODEL_DIR": str(MODEL_DIR),
        "LOG_JSON": "true",
    }
    settings = Settings(
        data_dir=tmp_path,
        database_url=database_url,
        broker_url=env["BROKER_URL"],
        storage_url=env["STORAGE_URL"],
        milvus_uri=env["MILVUS_URI"],
        model_dir=MODEL_DIR,
    )
    app = create_app(settings)
    log_path = tmp_path / "worker.log"
    # auto with an embedded index: search+index, ingest and io: three Celery processes.
    worker = start_worker(env, log_path, args=(), ready=3)
    try:
        client = keyed_client(app, make_api_key(database_url, scope=Scope.WRITE))
        gallery = client.post(
            "/v1/images",
            data={
                "file": [(io.BytesIO(queries[0].data), queries[0].name)],
                "label": "Albert_Costa",
            },
            content_type="multipart/form-data",
        )
        assert wait_for_job(client, gallery.get_json()["job_id"], log_path)["status"] == "succeeded"

        archive = client.post(
            "/v1/archives", data=make_tar(members), content_type="application/octet-stream"
        )
        assert archive.status_code == 202, archive.get_json()
        archive_job = archive.get_json()["job_id"]
        deadline = time.monotonic() + 180
        while client.get(f"/v1/jobs/{archive_job}").get_json()["progress"]["done"] < 8:
            assert time.monotonic() < deadline, log_path.read_text()[-3000:]
            time.sleep(0.2)

        search = client.post(
            "/v1/searches",
            data={"file": (io.BytesIO(queries[1].data), queries[1].name)},
            content_type="multipart/form-data",
        )
        assert search.status_code in (200, 202), search.get_json()
        job = wait_for_job(client, search.get_json()["job_id"], log_path)
        bulk = client.get(f"/v1/jobs/{archive_job}").get_json()
        assert job["status"] == "succeeded", job
        assert bulk["status"] == "running", "the search finished only after the archive"
        assert bulk["progress"]["done"] < ARCHIVE_IMAGES
        result = client.get(search.get_json()["search_url"]).get_json()
        assert result["faces"][0]["matches"][0]["label"] == "Albert_Costa"
        assert worker.poll() is None
        # The bulk process yields the CPU to the others (INGEST_WORKER_NICE, 10 by default).
        nice = {
            " ".join(child.cmdline()).split("--queues ")[1].split()[0]: child.nice()
            for child in psutil.Process(worker.pid).children()
        }
        assert nice == {"search,index": 0, "ingest,pipeline": 10, "io": 0}
    finally:
        stop_worker(worker)
        app.extensions[EXTENSION].close()
        drop_database(database_url)
