"""Benchmark archive ingest against a naive one-image-at-a-time loop, on the distributed stack.

Each phase gets its own fresh stack: a Postgres database, a Redis database, a bucket on an
S3 server on loopback (``s3_server``: nanio in a process of its own, or with ``--s3 moto``
moto inside this process, as the earlier figures were taken), a ``milvus-lite server`` on
loopback, the API under gunicorn (``facesearch serve``) and Celery workers
(``facesearch worker``):

- archive: ``facesearch ingest``'s code path: the archive streamed to ``POST /v1/archives``,
  then the job polled until it ends;
- naive: for each image of the same archive, one ``POST /v1/images`` with one file, then
  poll its job until it ends, then the next image (what a loop of curl calls does).

Printed per phase: images, faces, wall time, images/s, faces/s, and the peak RSS of the API
processes and of each worker process (sampled every 0.2 s with psutil), plus the first
worker's RSS along the way: its lowest and highest sample in each window of 1,000 finished
images. The lowest is the worker at rest between batches, the highest its peak within a
batch; a leak shows as either rising from the first window to the last.

    .venv/bin/python scripts/bench_ingest.py --limit 1000
    .venv/bin/python scripts/bench_ingest.py                    # all 13,233 LFW images
    .venv/bin/python scripts/bench_ingest.py --limit 1000 --skip-naive --pipeline-workers 2
    .venv/bin/python scripts/bench_ingest.py --naive-limit 2000  # naive loop: first 2,000 only

Needs Postgres and Redis on 127.0.0.1 (as the tests do) and the FaceNet weights in MODEL_DIR.
Each stack's database gets a write key for the default gallery, sent with every request.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import psycopg
import redis

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from cli.ingest import summary, upload  # noqa: E402
from cli.lfw import default_archive  # noqa: E402
from models import DEFAULT_GALLERY_NAME, Scope  # noqa: E402
from models.db import make_engine, make_session_factory, session_scope  # noqa: E402
from services.galleries import get_or_create_gallery  # noqa: E402
from services.keys import create_key  # noqa: E402

PG_ADMIN_URL = os.environ.get("TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
READY_TIMEOUT_S = 180
PYTHON = sys.executable
# The S3 credentials: the stacks' STORAGE_URL sends them, and nanio checks every signature.
S3_ACCESS_KEY = "bench"
S3_SECRET_KEY = "bench"  # noqa: S105 (a throwaway server on loopback)
S3_SERVERS = ("nanio", "moto")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def lfw_members(archive: Path, limit: int | None) -> Iterator[tuple[tarfile.TarInfo, bytes]]:
    """(TarInfo, bytes) of the archive's JPEG files, in order, streamed."""
    with tarfile.open(archive, mode="r|*") as tar:
        count = 0
        for member in tar:
            if not member.isfile() or not member.name.endswith(".jpg"):
                continue
            extracted = tar.extractfile(member)
            if extracted is None:
                continue
            yield member, extracted.read()
            count += 1
            if limit is not None and count >= limit:
                return


def write_subset(archive: Path, limit: int, target: Path) -> None:
    with tarfile.open(target, mode="w:gz") as out:
        for member, data in lfw_members(archive, limit):
            out.addfile(member, io.BytesIO(data))


# --- the stack ------------------------------------------------------------------------------


@dataclass
class Stack:
    url: str
    env: dict[str, str]
    api: subprocess.Popen[bytes]
    key: str
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def client(self, timeout: httpx.Timeout | float) -> httpx.Client:
        """An HTTP client of this stack's API that sends its key."""
        return httpx.Client(
            base_url=self.url, timeout=timeout, headers={"Authorization": f"Bearer {self.key}"}
        )


def make_key(database_url: str) -> str:
    """A write key for the default gallery, as `facesearch keys create` makes one."""
    engine = make_engine(database_url)
    try:
        with session_scope(make_session_factory(engine)) as session:
            gallery = get_or_create_gallery(session, DEFAULT_GALLERY_NAME)
            _, key = create_key(session, scope=Scope.WRITE, gallery=gallery, name="bench_ingest")
    finally:
        engine.dispose()
    return key


def wait_port(port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not listen on port {port}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def database() -> Iterator[str]:
    name = f"facesearch_bench_{secrets.token_hex(6)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + (
            f"/{name}"
        )
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def stack(
    folder: Path,
    s3_endpoint: str,
    redis_db: int,
    pipeline_workers: int,
    *,
    worker_commands: list[tuple[list[str], int]] | None = None,
    storage_url: str | None = None,
) -> Iterator[Stack]:
    """A fresh stack. Its workers: ``worker_commands`` ((`facesearch worker` arguments, how
    many Celery processes they start) each), or by default one worker with every queue and
    ``pipeline_workers - 1`` more ingest workers. ``storage_url`` replaces the S3 bucket."""
    folder.mkdir(parents=True, exist_ok=True)
    if worker_commands is None:
        # One worker owns every queue, the index writer's included (one Milvus writer); the
        # others run the bulk pipeline.
        worker_commands = [
            (["--role", "all" if n == 0 else "ingest"], 1) for n in range(pipeline_workers)
        ]
    broker = f"redis://127.0.0.1:6379/{redis_db}"
    redis.Redis.from_url(broker).flushdb()
    with ExitStack() as cleanup, database() as database_url:
        milvus_port = free_port()
        milvus_log = (folder / "milvus.log").open("wb")
        cleanup.callback(milvus_log.close)
        milvus = subprocess.Popen(
            [
                str(Path(PYTHON).parent / "milvus-lite"),
                "server",
                "--data-dir",
                str(folder / "milvus"),
                "--host",
                "127.0.0.1",
                "--port",
                str(milvus_port),
            ],
            stdout=milvus_log,
            stderr=subprocess.STDOUT,
        )
        cleanup.callback(stop, milvus)
        wait_port(milvus_port, milvus, "milvus-lite server")
        env = {
            **os.environ,
            "DATA_DIR": str(folder),
            "DATABASE_URL": database_url,
            "BROKER_URL": broker,
            "STORAGE_URL": storage_url
            or f"s3://{S3_ACCESS_KEY}:{S3_SECRET_KEY}@{s3_endpoint}/bench-{folder.name}",
            "MILVUS_URI": f"http://127.0.0.1:{milvus_port}",
            "LOG_LEVEL": "WARNING",
            "LOG_JSON": "true",
            "ARCHIVE_PARALLEL_TASKS": str(max(pipeline_workers, 1)),
        }
        subprocess.run(
            [PYTHON, "-m", "cli.main", "db", "upgrade"], env=env, cwd=PROJECT_ROOT, check=True
        )
        api_port = free_port()
        api_log = (folder / "api.log").open("wb")
        cleanup.callback(api_log.close)
        api = subprocess.Popen(
            [PYTHON, "-m", "cli.main", "serve", "--port", str(api_port), "--workers", "1"],
            env=env,
            cwd=PROJECT_ROOT,
            stdout=api_log,
            stderr=subprocess.STDOUT,
        )
        cleanup.callback(stop, api)
        wait_port(api_port, api, "the API")
        key = make_key(database_url)
        result = Stack(url=f"http://127.0.0.1:{api_port}", env=env, api=api, key=key)
        for n, (worker_args, processes) in enumerate(worker_commands):
            log_path = folder / f"worker{n}.log"
            log = log_path.open("wb")
            cleanup.callback(log.close)
            worker = subprocess.Popen(
                [PYTHON, "-m", "cli.main", "worker", *worker_args],
                env={**env, "LOG_LEVEL": "INFO"},
                cwd=PROJECT_ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            cleanup.callback(stop, worker)
            deadline = time.monotonic() + READY_TIMEOUT_S
            while log_path.read_bytes().count(b"ready.") < processes:
                if worker.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("worker failed: " + log_path.read_text()[-2000:])
                time.sleep(0.3)
            result.workers.append(worker)
        yield result


def add_s3_option(parser: argparse.ArgumentParser) -> None:
    """``--s3``: which S3 server the benchmark's stacks use (``s3_server``)."""
    parser.add_argument(
        "--s3",
        choices=S3_SERVERS,
        default="nanio",
        help="the S3 server: nanio in its own process, or moto in this one (earlier figures)",
    )


@dataclass
class S3Server:
    """The benchmarks' S3 server: ``endpoint`` (host:port) for ``stack``, and ``pid``, the
    process to count as the S3 server's CPU (None when it runs inside this process)."""

    endpoint: str
    pid: int | None


@contextmanager
def s3_server(kind: str, folder: Path) -> Iterator[S3Server]:
    """An S3 server on loopback for the stacks, its objects under ``folder``.

    nanio (the default) runs in a process of its own and costs about a fifth of moto's CPU a
    request, so its cost no longer hides in this process's figures; moto (``--s3 moto``) runs
    in a thread of this process, as the benchmarks' earlier figures were taken."""
    if kind == "moto":
        from moto.server import ThreadedMotoServer  # noqa: PLC0415 (dev dependency)

        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        moto.start()
        try:
            host, port = moto.get_host_and_port()
            yield S3Server(f"{host}:{port}", None)
        finally:
            moto.stop()
        return
    if kind != "nanio":
        raise ValueError(f"unknown S3 server {kind!r}: one of {', '.join(S3_SERVERS)}")
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    # nanio listens on every interface unless told otherwise; loopback is all a stack needs.
    command = [str(Path(PYTHON).parent / "nanio"), "serve", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--data-dir", str(folder / "data")]
    command += ["--no-access-log", "--log-level", "warning"]
    env = {**os.environ, "NANIO_ACCESS_KEY": S3_ACCESS_KEY, "NANIO_SECRET_KEY": S3_SECRET_KEY}
    with (folder / "nanio.log").open("wb") as log:
        proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_port(port, proc, "nanio")
            yield S3Server(f"127.0.0.1:{port}", proc.pid)
        finally:
            stop(proc)  # terminate, then kill if it has not exited within 30 s


# --- measuring ------------------------------------------------------------------------------


RSS_WINDOW = 1000  # images per window of the RSS-over-time report


class RssMonitor:
    """Peak RSS of each process (a process and its children: gunicorn's master + workers),
    and every sample of the top-level processes, timed, for the RSS-over-time report."""

    def __init__(self, groups: dict[str, int]) -> None:
        self.groups = groups
        self.peak: dict[str, int] = {}
        self.current: dict[str, int] = {}
        self.samples: dict[str, list[tuple[float, int]]] = {name: [] for name in groups}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        for name, pid in self.groups.items():
            try:
                root = psutil.Process(pid)
                procs = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
            for i, proc in enumerate(procs):
                label = name if i == 0 else f"{name}/child{i}"
                try:
                    rss = proc.memory_info().rss
                except psutil.NoSuchProcess:
                    continue
                self.current[label] = rss
                self.peak[label] = max(self.peak.get(label, 0), rss)
                if i == 0:
                    self.samples[name].append((time.monotonic(), rss))

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self._sample()

    def __enter__(self) -> RssMonitor:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class Result:
    name: str
    images: int = 0
    faces: int = 0
    wall_s: float = 0.0
    peak_rss: dict[str, int] = field(default_factory=dict)
    # (images finished, lowest RSS, highest RSS) of worker0 for each window of RSS_WINDOW images
    worker_rss_windows: list[tuple[int, int, int]] = field(default_factory=list)
    notes: str = ""


def rss_windows(
    samples: list[tuple[float, int]], marks: list[tuple[float, int]], window: int
) -> list[tuple[int, int, int]]:
    """Per window of ``window`` finished images: (images at its end, lowest RSS, highest RSS).

    ``marks`` are (time, images finished so far), from polling the job; ``samples`` are
    (time, RSS). A window ends at the first mark at or past its multiple of ``window`` (the
    last one at the last mark), and holds the samples taken since the previous window ended.
    """
    ends: list[tuple[float, int]] = []
    target = window
    for at, finished in marks:
        if finished >= target:
            ends.append((at, finished))
            target = (finished // window + 1) * window
    if marks and (not ends or ends[-1][1] < marks[-1][1]):
        ends.append(marks[-1])
    windows: list[tuple[int, int, int]] = []
    start = float("-inf")
    for end, finished in ends:
        inside = [rss for at, rss in samples if start < at <= end]
        if inside:
            windows.append((finished, min(inside), max(inside)))
        start = end
    return windows


def run_archive_phase(s: Stack, archive: Path, total: int) -> Result:
    result = Result("archive")
    groups = {"api": s.api.pid} | {f"worker{i}": w.pid for i, w in enumerate(s.workers)}
    timeout = httpx.Timeout(30.0, read=600.0)
    with RssMonitor(groups) as monitor, s.client(timeout) as client:
        started = time.monotonic()
        job_url = upload(client, archive, "folder", quiet=True)  # what `facesearch ingest` does
        say(f"archive stored in {time.monotonic() - started:.1f} s; job {job_url}")
        marks: list[tuple[float, int]] = []
        while True:
            job = client.get(job_url).json()
            progress = job["progress"]
            marks.append((time.monotonic(), progress["done"] + progress["failed"]))
            if job["status"] not in ("queued", "running"):
                break
            time.sleep(0.5)
        result.wall_s = time.monotonic() - started
        say(summary(client, job, result.wall_s))
    result.images = progress["done"] + progress["failed"]
    result.faces = int(job["result"].get("faces", 0))
    result.peak_rss = monitor.peak
    result.worker_rss_windows = rss_windows(monitor.samples["worker0"], marks, RSS_WINDOW)
    result.notes = f"status {job['status']}, failed {progress['failed']} (no face or unusable)"
    return result


def run_naive_phase(s: Stack, archive: Path, limit: int | None, total: int) -> Result:
    result = Result("naive")
    groups = {"api": s.api.pid} | {f"worker{i}": w.pid for i, w in enumerate(s.workers)}
    marks: list[tuple[float, int]] = []
    with RssMonitor(groups) as monitor, s.client(60) as client:
        started = time.monotonic()
        for n, (member, data) in enumerate(lfw_members(archive, limit), start=1):
            label = Path(member.name).parent.name
            response = client.post(
                "/v1/images",
                files={"file": (Path(member.name).name, data, "image/jpeg")},
                data={"label": label},
            )
            response.raise_for_status()
            job_url = response.headers["Location"]
            while True:
                job = client.get(job_url).json()
                if job["status"] not in ("queued", "running"):
                    break
                time.sleep(0.02)
            result.images += 1
            result.faces += int(job["result"].get("faces", 0))
            marks.append((time.monotonic(), n))
            if n % 100 == 0:
                say(f"naive: {n}/{total} images, {n / (time.monotonic() - started):.2f}/s")
        result.wall_s = time.monotonic() - started
    result.peak_rss = monitor.peak
    result.worker_rss_windows = rss_windows(monitor.samples["worker0"], marks, RSS_WINDOW)
    return result


def run_upload_only(s: Stack, archive: Path) -> None:
    """The API's memory while an archive streams in (no worker: the job just waits)."""
    with RssMonitor({"api": s.api.pid}) as monitor:
        timeout = httpx.Timeout(30.0, read=600.0)
        with s.client(timeout) as client:
            started = time.monotonic()
            upload(client, archive, "folder", quiet=True)
            wall = time.monotonic() - started
    size = archive.stat().st_size / 1e6
    print(f"== upload only: {size:.0f} MB in {wall:.1f} s ({size / wall:.0f} MB/s) ==")
    for name, rss in sorted(monitor.peak.items()):
        print(f"  peak RSS {name}: {rss / 1024 / 1024:.0f} MB")


def report(results: list[Result]) -> None:
    mb = 1024 * 1024
    for r in results:
        print(f"== {r.name} ==")
        print(f"  images {r.images}, faces {r.faces}, wall {r.wall_s:.1f} s")
        print(f"  {r.images / r.wall_s:.2f} images/s, {r.faces / r.wall_s:.2f} faces/s")
        for name, rss in sorted(r.peak_rss.items()):
            print(f"  peak RSS {name}: {rss / mb:.0f} MB")
        windows = r.worker_rss_windows
        if windows:
            print(f"  worker0 RSS (MB) per window of {RSS_WINDOW} images: lowest-highest sample")
            line = ", ".join(f"{n}: {low / mb:.0f}-{high / mb:.0f}" for n, low, high in windows)
            print(f"    {line}")
            for what, column in (("lowest (at rest)", 1), ("highest (in a batch)", 2)):
                values = [window[column] / mb for window in windows]
                print(
                    f"  worker0 {what}: first window {values[0]:.0f} MB, last {values[-1]:.0f} "
                    f"MB, range over the windows {min(values):.0f}-{max(values):.0f} MB"
                )
        if r.notes:
            print(f"  {r.notes}")
    if len(results) == 2 and results[1].wall_s:
        speedup = (results[0].images / results[0].wall_s) / (results[1].images / results[1].wall_s)
        print(f"archive / naive images/s: {speedup:.2f}x")


def raise_priority(by: int) -> None:
    """Favour this script and everything it starts afterwards over other work on the machine
    by ``by`` nice steps (needs root): on a machine shared with other work, the stack under
    test then gets the CPU first. Called once, before any thread or stack is started: threads
    and processes inherit their creator's nice value, so every part of every stack starts at
    the same offsets as in production (the ingest worker's own +10 above the search worker),
    whichever phase it serves.

    Two levers, as Linux schedules in two levels. With autogroups (``sched_autogroup_enabled``)
    the CPU is first shared fairly between sessions whatever their processes' nice values, so
    the session's own nice value is lowered (``/proc/self/autogroup``). Within the session,
    this thread's nice value is lowered (Linux keeps one per thread)."""
    # Without autogroups (or the right to), the thread nice value below still applies.
    with suppress(OSError):
        Path("/proc/self/autogroup").write_text(str(max(-20, -by)))
    os.setpriority(os.PRIO_PROCESS, 0, max(-20, os.getpriority(os.PRIO_PROCESS, 0) - by))


def run_phases(args: argparse.Namespace, work: Path, endpoint: str) -> None:
    archive: Path = args.archive
    if args.upload_only:
        with stack(work / "upload", endpoint, 11, 0) as s:
            run_upload_only(s, archive)
        return
    if args.limit:
        archive = work / f"lfw-first-{args.limit}.tgz"
        write_subset(args.archive, args.limit, archive)
    total = args.limit or sum(1 for _ in lfw_members(args.archive, None))
    say(f"{total} images in {archive} ({archive.stat().st_size / 1e6:.1f} MB)")
    results = []
    with stack(work / "archive", endpoint, 13, args.pipeline_workers) as s:
        say("archive phase")
        results.append(run_archive_phase(s, archive, total))
    if not args.skip_naive:
        with stack(work / "naive", endpoint, 12, args.pipeline_workers) as s:
            say("naive phase")
            naive_total = min(total, args.naive_limit or total)
            results.append(run_naive_phase(s, archive, naive_total, naive_total))
    report(results)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive", type=Path, default=default_archive())
    parser.add_argument("--limit", type=int, default=None, help="only the first N images")
    parser.add_argument("--pipeline-workers", type=int, default=1)
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument(
        "--naive-limit",
        type=int,
        default=None,
        help="the naive loop takes only the first N of the images (default: all of them)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    add_s3_option(parser)
    parser.add_argument(
        "--upload-only",
        action="store_true",
        help="only stream the whole archive to the API and report the API's peak RSS",
    )
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    say(f"work folder: {work}")
    try:
        with s3_server(args.s3, work / "s3") as s3:
            run_phases(args, work, s3.endpoint)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
