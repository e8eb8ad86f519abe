"""Fault injection: nothing lost, nothing stuck, while dependencies fail and workers die.

Starts a private stack on loopback ports (its own Postgres cluster made with Debian's
initdb/pg_ctl, its own redis-server, an S3 server (moto, in this process), a milvus-lite
server, the API under gunicorn, one Celery worker), ingests LFW images through the API in
requests of 16 files while a stream of searches runs, and injects one fault per window of
images, in turn:

- ``postgres``, ``redis``, ``s3``, ``milvus``: the dependency is stopped while the worker is
  busy with a batch, kept down ``--down-s`` seconds, and started again on the same port
  (Postgres and milvus-lite keep their data; Redis runs without persistence, so every queued
  and unacknowledged task message is gone; moto keeps its buckets in this process);
- ``kill-reading``, ``kill-detecting``, ``kill-embedding``, ``kill-indexing``: the worker is
  killed with SIGKILL at that stage of its work, and a new one is started.

How the stage is known: the worker runs with Python's ``faulthandler`` registered on SIGUSR2.
The harness samples the worker's stack every few milliseconds (a SIGUSR2 writes every
thread's frames to a file) and sends SIGKILL right after a sample whose frames are in that
stage: ``workers/ingest.py:_load_batch`` (reading and decoding the batch from the store),
``workers/pipeline/detector.py`` (MTCNN), ``workers/pipeline/embedder.py`` (FaceNet),
``workers/indexing.py`` (writing to Milvus). The kill lands a few milliseconds after the
sample, so a short stage may just have ended; the row's note shows the sampled stack's stage.

After each window, once every job has ended (or a deadline passed), it checks through
Postgres and Milvus, for the window's images (by sha256):

- lost: an image never accepted, still pending, failed without a reason, or with faces not
  indexed or fewer vectors in Milvus than faces in Postgres;
- duplicated: more vectors in Milvus than faces in Postgres for an image, or one file stored
  as two images;
- stuck: jobs (ingest and search) still queued or running;
- 5xx: answers of 500 and above, except 503 with Retry-After (the documented answer while a
  dependency is down; counted in the ``503`` column);
- recover_s: from the dependency being back (for a kill: the kill) until every job made
  before then has ended;
- failed: images failed with a reason (they are not lost; the reasons are printed).

The reconciler runs in this process every ``--reconcile-every`` seconds (the same function
as ``facesearch reconcile``), with a short RECONCILE_STALE_S and BROKER_VISIBILITY_TIMEOUT_S.

    .venv/bin/python scripts/fault_injection.py                      # 500 images, all faults
    .venv/bin/python scripts/fault_injection.py --images 120 --faults redis,kill-detecting

Everything listens on 127.0.0.1 and is stopped on exit, errors included.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg

PROJECT_ROOT = Path(__file__).resolve().parents[1]
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

PYTHON = sys.executable
PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
LFW_ARCHIVE = Path(os.environ.get("LFW_ARCHIVE", "/work/shared/lfw/lfw-deepfunneled.tgz"))
DEPENDENCY_FAULTS = ("postgres", "redis", "s3", "milvus")
KILL_FAULTS = ("kill-reading", "kill-detecting", "kill-embedding", "kill-indexing")
ALL_FAULTS = DEPENDENCY_FAULTS + KILL_FAULTS
FILES_PER_REQUEST = 16
READY_TIMEOUT_S = 180
LIVE = ("queued", "running")
# A dependency goes down while the worker runs MTCNN on a batch: the batch's transaction is
# open, and its commit, its index task and the next batch meet the outage.
DEPENDENCY_STAGES = ("detecting",)

# The worker, with a stack dump on SIGUSR2 (faulthandler, written from the signal handler,
# so it samples even while TensorFlow runs) into the file named by the first argument.
# The thread that takes the signal only: dumping every thread from a signal handler reads
# other threads' frames while they change, and with the ingest loader's threads running it
# crashed the worker (a segfault in libpython) a few times in a hundred thousand samples.
WORKER_BOOT = (
    "import faulthandler, signal, sys\n"
    "dump = open(sys.argv[1], 'a')\n"
    "faulthandler.register(signal.SIGUSR2, file=dump, all_threads=False)\n"
    "from cli.main import cli\n"
    "cli(args=sys.argv[2:], prog_name='facesearch')\n"
)


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_until(check: Callable[[], bool], timeout_s: float, what: str, poll_s: float = 0.2) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(poll_s)


def spawn(args: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """A process in its own process group (so that it and its children stop together)."""
    with log.open("ab") as out:
        return subprocess.Popen(
            args,
            env=env,
            cwd=PROJECT_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def stop_group(proc: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM) -> None:
    if proc is None:
        return
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    # Anything left in the group (a child that ignored the signal) goes too.
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


# --- the private stack ----------------------------------------------------------------------


class Postgres:
    """A cluster of its own in ``folder``, owned by the postgres user when run as root."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.data = folder / "pgdata"
        self.port = free_port()

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        command = [str(PG_BIN / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, capture_output=True, check=check, timeout=120)

    def init(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        self.start()
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute("CREATE DATABASE facesearch")

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.folder} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.folder / "server.log"),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        if (self.data / "postmaster.pid").exists():
            self._run(
                "pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop", check=False
            )

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/facesearch"


class Server:
    """A server process started again on the same port after a stop."""

    def __init__(self, name: str, args: Callable[[int], list[str]], log: Path) -> None:
        self.name, self.args, self.log = name, args, log
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = spawn(self.args(self.port), self.log)
        proc = self.proc
        wait_until(
            lambda: listening(self.port) or proc.poll() is not None, READY_TIMEOUT_S, self.name
        )
        if proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        stop_group(self.proc)
        self.proc = None


class S3Server:
    """moto's S3 server in this process: a restart keeps the buckets (as a real store does)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.server: Any = None

    def start(self) -> None:
        from moto.server import ThreadedMotoServer  # noqa: PLC0415

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()
        wait_until(lambda: listening(self.port), 30, "the S3 server")

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None


@dataclass
class Options:
    images: int = 500
    faults: list[str] = field(default_factory=lambda: list(ALL_FAULTS))
    down_s: float = 5.0
    reconcile_every_s: float = 3.0
    stale_s: int = 20
    visibility_timeout_s: int = 45
    batch_size: int = 16
    window_timeout_s: float = 300.0
    stage_timeout_s: float = 90.0
    searches: bool = True
    folder: Path | None = None  # keep logs here (default: a temporary folder, removed)


class Stack:
    def __init__(self, folder: Path, options: Options) -> None:
        self.folder = folder
        self.options = options
        self.pg = Postgres(folder / "pg")
        self.redis = Server(
            "redis-server",
            lambda port: [
                "redis-server",
                "--bind",
                "127.0.0.1",
                "--port",
                str(port),
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            folder / "redis.log",
        )
        self.s3 = S3Server()
        milvus_bin = str(Path(PYTHON).parent / "milvus-lite")
        self.milvus = Server(
            "milvus-lite server",
            lambda port: [
                milvus_bin,
                "server",
                "--data-dir",
                str(folder / "milvus"),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            folder / "milvus.log",
        )
        self.api: subprocess.Popen[bytes] | None = None
        self.api_port = free_port()
        self.worker: subprocess.Popen[bytes] | None = None
        self.worker_log = folder / "worker.log"
        self.dump_file = folder / "worker-stack.txt"
        self.workers_started = 0
        self.key = ""

    @property
    def env(self) -> dict[str, str]:
        o = self.options
        return {
            **os.environ,
            "DATA_DIR": str(self.folder / "data"),
            "DATABASE_URL": self.pg.url.replace("postgresql://", "postgresql+psycopg://"),
            "BROKER_URL": f"redis://127.0.0.1:{self.redis.port}/0",
            "STORAGE_URL": f"s3://fault:fault@127.0.0.1:{self.s3.port}/faults",
            "MILVUS_URI": f"http://127.0.0.1:{self.milvus.port}",
            "LOG_LEVEL": "INFO",
            "LOG_JSON": "true",
            "PIPELINE_BATCH_SIZE": str(o.batch_size),
            "TASK_TIME_LIMIT_S": "120",
            "TASK_RETRY_FOR_S": "600",
            "BROKER_VISIBILITY_TIMEOUT_S": str(o.visibility_timeout_s),
            "RECONCILE_STALE_S": str(o.stale_s),
            "RECONCILE_MAX_REQUEUES": "20",
            "RATE_LIMIT": "100000/minute;5000/second",
        }

    def start(self) -> None:
        say(f"starting the private stack in {self.folder}")
        self.pg.init()
        self.redis.start()
        self.s3.start()
        self.milvus.start()
        subprocess.run(
            [PYTHON, "-m", "cli.main", "db", "upgrade"],
            env=self.env,
            cwd=PROJECT_ROOT,
            check=True,
            capture_output=True,
        )
        keys = subprocess.run(
            [
                PYTHON,
                "-m",
                "cli.main",
                "keys",
                "create",
                "--gallery",
                "default",
                "--scope",
                "write",
                "--name",
                "faults",
            ],
            env=self.env,
            cwd=PROJECT_ROOT,
            check=True,
            capture_output=True,
            text=True,
        )
        self.key = keys.stdout.strip().splitlines()[-1]
        self.api = spawn(
            [
                PYTHON,
                "-m",
                "cli.main",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.api_port),
                "--workers",
                "1",
            ],
            self.folder / "api.log",
            self.env,
        )
        api = self.api
        wait_until(lambda: listening(self.api_port) or api.poll() is not None, 120, "the API")
        self.start_worker()
        say("stack ready")

    def start_worker(self) -> None:
        start = self.worker_log.stat().st_size if self.worker_log.exists() else 0
        self.workers_started += 1
        self.worker = spawn(
            [
                PYTHON,
                "-c",
                WORKER_BOOT,
                str(self.dump_file),
                "worker",
                "--role",
                "all",
            ],
            self.worker_log,
            self.env,
        )
        worker = self.worker

        def ready() -> bool:
            if worker.poll() is not None:
                raise RuntimeError("worker exited: " + self.worker_log.read_text()[-3000:])
            with self.worker_log.open("rb") as log:
                log.seek(start)
                return b"ready." in log.read()

        wait_until(ready, READY_TIMEOUT_S, "the worker", poll_s=0.3)

    def stop(self) -> None:
        for stop in (
            lambda: stop_group(self.worker),
            lambda: stop_group(self.api),
            self.milvus.stop,
            self.s3.stop,
            self.redis.stop,
            lambda: self.pg.stop("immediate"),
        ):
            try:
                stop()
            except Exception as exc:  # keep stopping the rest
                say(f"while stopping: {exc!r}")

    # --- the worker's stage ---------------------------------------------------------------

    def stage(self) -> tuple[str | None, str]:
        """Sample the worker's stack: (stage, the frames sampled)."""
        worker = self.worker
        if worker is None or worker.poll() is not None:
            return None, ""
        before = self.dump_file.stat().st_size if self.dump_file.exists() else 0
        try:
            os.kill(worker.pid, signal.SIGUSR2)
        except ProcessLookupError:
            return None, ""
        deadline = time.monotonic() + 1.0
        size = before
        while time.monotonic() < deadline:
            size = self.dump_file.stat().st_size if self.dump_file.exists() else 0
            if size > before:
                time.sleep(0.002)  # the handler writes it all at once; let it finish
                break
            time.sleep(0.001)
        with self.dump_file.open("rb") as dump:
            dump.seek(before)
            text = dump.read().decode(errors="replace")
        return stage_of(text), text


FRAME = re.compile(r'File "([^"]+)", line \d+ in (\S+)')


# (stage, the frame that marks it: a path suffix, and a function name or "" for any); the
# first rule with a frame in the task thread's stack wins.
STAGE_RULES = (
    ("searching", "workers/search.py", ""),
    ("embedding", "workers/pipeline/embedder.py", ""),
    ("detecting", "workers/pipeline/detector.py", ""),
    ("reading", "workers/ingest.py", "_load_batch"),
    ("reading", "workers/loader.py", "_load_one"),
    ("indexing", "workers/indexing.py", ""),
    ("ingest (claiming or committing)", "workers/ingest.py", ""),
)


def stage_of(dump: str) -> str | None:
    """The stage the worker's task thread is in, from a faulthandler dump."""
    for block in re.split(r"\n(?=(?:Current thread|Thread) 0x)", dump):
        frames = [(path.replace(os.sep, "/"), name) for path, name in FRAME.findall(block)]
        for stage, suffix, function in STAGE_RULES:
            if any(p.endswith(suffix) and function in ("", f) for p, f in frames):
                return stage
    return None


# --- traffic --------------------------------------------------------------------------------


@dataclass
class Window:
    fault: str
    files: dict[str, str] = field(default_factory=dict)  # sha256 -> file name
    statuses: Counter[str] = field(default_factory=Counter)
    started: float = field(default_factory=time.time)
    note: str = ""
    recover_s: float | None = None


class Traffic:
    """Counts every answer into the current window; retries what a dependency refused."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.lock = threading.Lock()
        self.window: Window | None = None
        self.stop = threading.Event()
        self.server_errors: list[str] = []

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=f"http://127.0.0.1:{self.stack.api_port}",
            timeout=httpx.Timeout(30.0, read=60.0),
            headers={"Authorization": f"Bearer {self.stack.key}"},
        )

    def record(self, response: httpx.Response | None, error: str = "") -> None:
        with self.lock:
            if self.window is None:
                return
            if response is None:
                self.window.statuses["connection error"] += 1
                self.server_errors.append(error)
                return
            status = response.status_code
            if status == 503 and response.headers.get("Retry-After"):
                self.window.statuses["503"] += 1
            elif status >= 500:
                self.window.statuses["5xx"] += 1
                self.server_errors.append(f"{status} {response.request.url}: {response.text[:300]}")
            else:
                self.window.statuses["ok"] += 1

    def call(self, client: httpx.Client, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """One request, repeated (same Idempotency-Key for a POST) while a dependency is
        down: 503 after its Retry-After, a connection error after a second."""
        deadline = time.monotonic() + self.stack.options.window_timeout_s
        while True:
            response: httpx.Response | None = None
            try:
                response = client.request(method, url, **kwargs)
            except httpx.HTTPError as exc:
                self.record(None, f"{method} {url}: {exc!r}")
            else:
                self.record(response)
                if response.status_code != 503:
                    return response
            if time.monotonic() > deadline:
                raise RuntimeError(f"{method} {url} kept failing")
            wait = 1.0
            if response is not None:
                wait = min(float(response.headers.get("Retry-After") or 1), 5.0)
            time.sleep(wait)

    def search_loop(self, queries: list[tuple[str, bytes]]) -> None:
        n = 0
        with self.client() as client:
            while not self.stop.is_set():
                name, data = queries[n % len(queries)]
                n += 1
                try:
                    response = self.call(
                        client,
                        "POST",
                        "/v1/searches",
                        files={"file": (name, data, "image/jpeg")},
                        data={"top_k": "5"},
                        headers={"Idempotency-Key": uuid.uuid4().hex},
                    )
                    if response.status_code != 202:
                        self.server_errors.append(f"search {response.status_code}")
                        continue
                    url = response.json()["search_url"]
                    deadline = time.monotonic() + 120
                    while not self.stop.is_set() and time.monotonic() < deadline:
                        got = self.call(client, "GET", url)
                        if got.status_code == 200 and got.json()["status"] not in LIVE:
                            break
                        time.sleep(0.5)
                except RuntimeError as exc:
                    say(f"search: {exc}")
                self.stop.wait(1.0)


def lfw_images(limit: int) -> Iterator[tuple[str, str, bytes]]:
    """(label, file name, bytes) of the archive's first ``limit`` JPEG files, streamed."""
    with tarfile.open(LFW_ARCHIVE, mode="r|*") as tar:
        count = 0
        for member in tar:
            if not member.isfile() or not member.name.endswith(".jpg"):
                continue
            extracted = tar.extractfile(member)
            if extracted is None:
                continue
            path = Path(member.name)
            yield path.parent.name, path.name, extracted.read()
            count += 1
            if count >= limit:
                return


# --- checking -------------------------------------------------------------------------------


@dataclass
class Row:
    fault: str
    images: int
    lost: int
    duplicated: int
    stuck: int
    server_errors: int
    refused_503: int
    failed: int
    answers: int
    searches: int
    recover_s: float | None
    note: str = ""
    details: list[str] = field(default_factory=list)


def live_jobs(pg_url: str, before: float | None = None) -> int:
    query = "SELECT count(*) FROM jobs WHERE status::text IN ('queued', 'running')"
    params: list[Any] = []
    if before is not None:
        query += " AND created_at < to_timestamp(%s)"
        params.append(before)
    with psycopg.connect(pg_url, connect_timeout=5) as conn:
        row = conn.execute(query, params).fetchone()
    return int(row[0]) if row else 0


def milvus_counts(uri: str, image_ids: list[int]) -> Counter[int]:
    from pymilvus import MilvusClient  # noqa: PLC0415

    counts: Counter[int] = Counter()
    if not image_ids:
        return counts
    client = MilvusClient(uri=uri)
    try:
        for name in client.list_collections():
            if not name.startswith("faces_"):
                continue
            client.load_collection(name)
            for start in range(0, len(image_ids), 500):
                chunk = image_ids[start : start + 500]
                rows = client.query(
                    name, filter=f"image_id in {chunk}", output_fields=["image_id"], limit=16384
                )
                counts.update(int(row["image_id"]) for row in rows)
    finally:
        client.close()
    return counts


def check_window(stack: Stack, window: Window) -> Row:
    shas = list(window.files)
    details: list[str] = []
    with psycopg.connect(stack.pg.url) as conn:
        images = conn.execute(
            "SELECT id, sha256, status::text, error FROM images WHERE sha256 = ANY(%s)", [shas]
        ).fetchall()
        image_ids = [row[0] for row in images]
        faces = {
            image_id: (total, indexed)
            for image_id, total, indexed in conn.execute(
                "SELECT image_id, count(*), count(indexed_at) FROM faces "
                "WHERE image_id = ANY(%s) GROUP BY image_id",
                [image_ids],
            ).fetchall()
        }
        searches_row = conn.execute(
            "SELECT count(*) FROM jobs "
            "WHERE kind::text = 'search' AND created_at >= to_timestamp(%s)",
            [window.started],
        ).fetchone()
        stuck = conn.execute(
            "SELECT id, kind::text, status::text FROM jobs "
            "WHERE status::text IN ('queued', 'running') AND created_at >= to_timestamp(%s)",
            [window.started],
        ).fetchall()
    vectors = milvus_counts(f"http://127.0.0.1:{stack.milvus.port}", image_ids)
    by_sha: dict[str, list[tuple[int, str, str | None]]] = {}
    for image_id, sha, status, error in images:
        by_sha.setdefault(sha, []).append((image_id, status, error))
    lost = duplicated = failed = 0
    reasons: Counter[str] = Counter()
    for sha, name in window.files.items():
        rows = by_sha.get(sha, [])
        if not rows:
            lost += 1
            details.append(f"lost: {name} was never stored")
            continue
        if len(rows) > 1:
            duplicated += 1
            details.append(f"duplicated: {name} stored as images {[r[0] for r in rows]}")
        image_id, status, error = rows[0]
        total, indexed = faces.get(image_id, (0, 0))
        in_index = vectors.get(image_id, 0)
        if status == "pending":
            lost += 1
            details.append(f"lost: image {image_id} ({name}) still pending")
        elif status == "failed":
            if error:
                failed += 1
                reasons[error[:120]] += 1
            else:
                lost += 1
                details.append(f"lost: image {image_id} ({name}) failed without a reason")
        elif status == "ready" and (total == 0 or indexed < total or in_index < total):
            lost += 1
            details.append(
                f"lost: image {image_id} ({name}): {total} faces, {indexed} indexed, "
                f"{in_index} vectors"
            )
        if in_index > total:
            duplicated += 1
            details.append(f"duplicated: image {image_id}: {total} faces, {in_index} vectors")
    details += [f"failed ({n}): {reason}" for reason, n in reasons.items()]
    details += [f"stuck: job {job_id} ({kind}) {status}" for job_id, kind, status in stuck]
    return Row(
        fault=window.fault,
        images=len(window.files),
        lost=lost,
        duplicated=duplicated,
        stuck=len(stuck),
        server_errors=window.statuses["5xx"],
        refused_503=window.statuses["503"],
        failed=failed,
        answers=sum(window.statuses.values()),
        searches=int(searches_row[0]) if searches_row else 0,
        recover_s=window.recover_s,
        note=window.note,
        details=details,
    )


# --- the run --------------------------------------------------------------------------------


class Run:
    def __init__(self, stack: Stack, traffic: Traffic) -> None:
        self.stack = stack
        self.traffic = traffic
        self.options = stack.options
        self.jobs: list[str] = []

    def reconcile_loop(self) -> None:
        """`facesearch reconcile` every few seconds, in this process."""
        from core.queue import make_celery, queue_deliveries  # noqa: PLC0415
        from core.settings import Settings  # noqa: PLC0415
        from models.db import make_engine, make_session_factory  # noqa: PLC0415
        from workers.reconcile import reconcile  # noqa: PLC0415

        env = self.stack.env
        settings = Settings(
            database_url=env["DATABASE_URL"],
            broker_url=env["BROKER_URL"],
            broker_visibility_timeout_s=self.options.visibility_timeout_s,
            data_dir=Path(env["DATA_DIR"]),
        )
        app = make_celery(settings)
        engine = make_engine(settings.database_url)
        sessions = make_session_factory(engine)

        def send_task(name: str, args: list[Any], kwargs: dict[str, Any]) -> None:
            app.send_task(name, args=args, kwargs=kwargs, retry=False)

        try:
            while not self.traffic.stop.wait(self.options.reconcile_every_s):
                try:
                    report = reconcile(
                        sessions=sessions,
                        send_task=send_task,
                        send_deliveries=lambda ids: queue_deliveries(app, ids),
                        stale_s=self.options.stale_s,
                        max_requeues=20,
                        batch=500,
                    )
                except Exception as exc:  # a dependency is down: next time
                    say(f"reconcile: {type(exc).__name__}")
                    continue
                if any(report.values()):
                    say(f"reconcile: {report}")
        finally:
            engine.dispose()
            app.close()

    def upload(self, client: httpx.Client, batch: list[tuple[str, str, bytes]]) -> None:
        # Keep the backlog short: the next request when at most one of ours is still live.
        deadline = time.monotonic() + self.options.window_timeout_s
        while len([job for job in self.jobs[-3:] if self.job_live(client, job)]) > 1:
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
        response = self.traffic.call(
            client,
            "POST",
            "/v1/images",
            files=[("file", (name, data, "image/jpeg")) for _, name, data in batch],
            data={"label": [label for label, _, _ in batch]},
            headers={"Idempotency-Key": uuid.uuid4().hex},
        )
        if response.status_code != 202:
            raise RuntimeError(f"upload answered {response.status_code}: {response.text[:500]}")
        self.jobs.append(response.json()["job_id"])

    def job_live(self, client: httpx.Client, job_id: str) -> bool:
        response = self.traffic.call(client, "GET", f"/v1/jobs/{job_id}")
        return response.status_code == 200 and response.json()["status"] in LIVE

    def wait_stage(self, stages: tuple[str, ...]) -> str:
        """Sample the worker's stack until it is in one of ``stages``; returns the stage."""
        deadline = time.monotonic() + self.options.stage_timeout_s
        while time.monotonic() < deadline:
            stage, _ = self.stack.stage()
            if stage in stages:
                return stage
            time.sleep(0.003)
        return "not observed"

    def inject(self, fault: str, window: Window) -> float:
        """Inject ``fault``; returns when the dependency is back (time.time())."""
        stack = self.stack
        if fault.startswith("kill-"):
            target = fault.removeprefix("kill-")
            seen = self.wait_stage((target,))
            worker = stack.worker
            assert worker is not None
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
            back = time.time()
            window.note = f"killed while {seen}"
            say(f"{fault}: SIGKILL (sampled stage: {seen})")
            stack.start_worker()
            return back
        seen = self.wait_stage(DEPENDENCY_STAGES)
        part = {"postgres": stack.pg, "redis": stack.redis, "s3": stack.s3, "milvus": stack.milvus}
        dependency = part[fault]
        say(f"{fault}: stopping (worker {seen})")
        if fault == "postgres":
            stack.pg.stop("fast")
        else:
            dependency.stop()  # type: ignore[attr-defined]
        time.sleep(self.options.down_s)
        dependency.start()  # type: ignore[attr-defined]
        window.note = f"down {self.options.down_s:.0f} s while the worker was {seen}"
        say(f"{fault}: back")
        return time.time()

    def run_window(self, window: Window, images: list[tuple[str, str, bytes]]) -> None:
        with self.traffic.lock:
            self.traffic.window = window
        for _, name, data in images:
            window.files[hashlib.sha256(data).hexdigest()] = name
        batches = [
            images[i : i + FILES_PER_REQUEST] for i in range(0, len(images), FILES_PER_REQUEST)
        ]
        errors: list[BaseException] = []

        def feed() -> None:
            try:
                with self.traffic.client() as client:
                    for batch in batches:
                        self.upload(client, batch)
            except BaseException as exc:
                errors.append(exc)

        feeding = threading.Thread(target=feed, daemon=True)
        feeding.start()
        back = self.inject(window.fault, window)
        # Recovered: every job made before the dependency was back has ended.
        deadline = time.monotonic() + self.options.window_timeout_s
        while time.monotonic() < deadline:
            try:
                if live_jobs(self.stack.pg.url, before=back) == 0:
                    window.recover_s = time.time() - back
                    break
            except psycopg.Error:
                pass
            time.sleep(0.5)
        feeding.join(self.options.window_timeout_s)
        if errors:
            raise RuntimeError(f"uploads failed: {errors[0]!r}")
        wait_until(
            lambda: live_jobs(self.stack.pg.url) == 0 or time.monotonic() > deadline,
            self.options.window_timeout_s + 10,
            "the window's jobs",
            poll_s=0.5,
        )


def format_table(rows: list[Row]) -> str:
    lines = [
        "| fault | images | searches | answers | lost | duplicated | stuck | 5xx | 503 | failed "
        "| recover_s | note |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        recover = "-" if r.recover_s is None else f"{r.recover_s:.1f}"
        lines.append(
            f"| {r.fault} | {r.images} | {r.searches} | {r.answers} | {r.lost} | "
            f"{r.duplicated} | {r.stuck} | "
            f"{r.server_errors} | {r.refused_503} | {r.failed} | {recover} | {r.note} |"
        )
    return "\n".join(lines)


def run(options: Options) -> list[Row]:
    """Start the stack, inject every fault of ``options`` in turn, check, stop everything."""
    unknown = set(options.faults) - set(ALL_FAULTS)
    if unknown:
        raise ValueError(f"unknown faults: {sorted(unknown)}; known: {', '.join(ALL_FAULTS)}")
    if not LFW_ARCHIVE.exists():
        raise FileNotFoundError(f"LFW is not at {LFW_ARCHIVE}")
    queries_n = 4
    pool = list(lfw_images(options.images + queries_n))
    queries = [(name, data) for _, name, data in pool[-queries_n:]]
    images = pool[:-queries_n]
    per_fault = max(1, len(images) // len(options.faults))
    rows: list[Row] = []
    with ExitStack() as cleanup:
        if options.folder is None:
            folder = Path(tempfile.mkdtemp(prefix="facesearch-faults-"))
            cleanup.callback(shutil.rmtree, folder, True)
        else:
            folder = options.folder
            folder.mkdir(parents=True, exist_ok=True)
        # The postgres user must reach its cluster inside (nothing secret is kept here).
        os.chmod(folder, 0o755)  # noqa: S103
        stack = Stack(folder, options)
        cleanup.callback(stack.stop)
        stack.start()
        traffic = Traffic(stack)
        runner = Run(stack, traffic)
        threads = [threading.Thread(target=runner.reconcile_loop, daemon=True)]
        if options.searches:
            threads.append(threading.Thread(target=traffic.search_loop, args=(queries,)))
        for thread in threads:
            thread.start()

        def stop_threads() -> None:
            traffic.stop.set()
            for thread in threads:
                thread.join(150)

        cleanup.callback(stop_threads)
        for n, fault in enumerate(options.faults):
            last = n == len(options.faults) - 1
            chunk = images[n * per_fault : None if last else (n + 1) * per_fault]
            window = Window(fault)
            say(f"== {fault}: {len(chunk)} images")
            runner.run_window(window, chunk)
            row = check_window(stack, window)
            rows.append(row)
            say(format_table([row]))
            for line in row.details[:20]:
                say(f"  {line}")
        if traffic.server_errors:
            say("server errors and connection errors: " + json.dumps(traffic.server_errors[:20]))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--faults", default="all", help=f"all, or some of: {','.join(ALL_FAULTS)}")
    parser.add_argument("--down-s", type=float, default=5.0)
    parser.add_argument("--keep", type=Path, default=None, help="keep the logs in this folder")
    parser.add_argument("--no-searches", action="store_true")
    args = parser.parse_args(argv)
    faults = list(ALL_FAULTS) if args.faults == "all" else args.faults.split(",")
    from core.logging import configure_logging  # noqa: PLC0415

    configure_logging(level="WARNING", json=False)  # this process's reconciler: warnings only
    started = time.monotonic()
    rows = run(
        Options(
            images=args.images,
            faults=faults,
            down_s=args.down_s,
            folder=args.keep,
            searches=not args.no_searches,
        )
    )
    print(format_table(rows))
    print(f"{sum(r.images for r in rows)} images, {time.monotonic() - started:.0f} s in all")
    bad = any(r.lost or r.duplicated or r.stuck or r.server_errors for r in rows)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
