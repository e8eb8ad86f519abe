"""Benchmark the plumbing around the face model: the pipeline alone, end to end, and end to end
with a fixed-cost stand-in model, on both ingest paths, in one run.

Phases (each end-to-end phase on a fresh distributed stack of ``bench_ingest.stack``: a
Postgres database, a Redis database, a bucket on the S3 server (``bench_ingest.s3_server``:
nanio in a process of its own, or with ``--s3 moto`` moto inside this process, as the
earlier figures were taken), a ``milvus-lite server``, the API under ``facesearch serve``
and two workers, ``--role ingest`` and ``--role index``):

- pipeline: the face pipeline alone (``FacePipeline.process``, batches of 32) over the same
  images, decoded beforehand: the model's own rate;
- archive: ``facesearch ingest``'s path, the archive streamed to ``POST /v1/archives`` and the
  job followed until it ends (its faces indexed);
- upload: the images sent as multi-file ``POST /v1/images`` requests (``--files`` a request,
  ``--clients`` requests at a time), every job followed until it ends;
- standin-archive, standin-upload: the same with the model replaced by the stand-in
  (``workers.pipeline.standin``: one centred face, a hash-seeded vector, ``--standin`` ms):
  the plumbing's own ceiling.

Printed per phase: images/s, faces, wall time, the CPU seconds of every process of the stack
(API, each worker, milvus-lite, the Postgres backends of its database, the S3 server, and
this process, which runs the clients, and with ``--s3 moto`` the S3 server too), the ingest
worker's time by stage (its last ``ingest: batch done`` line), and its RSS: peak, and
lowest-highest per window of 1,000 images (memory stays flat when neither rises from the
first window to the last).

    .venv/bin/python scripts/bench_plumbing.py                        # all of LFW, every phase
    .venv/bin/python scripts/bench_plumbing.py --limit 2000 --phases standin-archive
    .venv/bin/python scripts/bench_plumbing.py --standin detect_ms=2,embed_ms=1 --out f.json
    .venv/bin/python scripts/bench_plumbing.py --s3 moto --phases standin-upload   # as before

Needs Postgres and Redis on 127.0.0.1 and the FaceNet weights in MODEL_DIR (not for the
stand-in phases).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

SCRIPTS = Path(__file__).resolve().parent
PROJECT_ROOT = SCRIPTS.parent
sys.path.insert(0, str(PROJECT_ROOT))
sys.path.insert(0, str(SCRIPTS))

from bench_ingest import (  # noqa: E402
    RSS_WINDOW,
    RssMonitor,
    S3Server,
    Stack,
    add_s3_option,
    lfw_members,
    raise_priority,
    rss_windows,
    s3_server,
    stack,
    write_subset,
)

from cli.ingest import upload  # noqa: E402
from cli.lfw import default_archive  # noqa: E402

PHASES = ("pipeline", "archive", "upload", "standin-archive", "standin-upload")
# The stand-in phases again with the objects in a local folder instead of the S3 server (nanio
# and moto, in Python, cost milliseconds of CPU a request): what the rest of the plumbing reaches.
LOCAL_PHASES = ("standin-archive-local", "standin-upload-local")
REDIS_DB = 7
STANDIN_ENV = "FACESEARCH_STANDIN_MODEL"  # workers.runtime.STANDIN_ENV
WORKERS: list[tuple[list[str], int]] = [(["--role", "ingest"], 1), (["--role", "index"], 1)]
POLL_S = 0.25
MB = 1024 * 1024


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class Figures:
    phase: str
    images: int = 0
    faces: int = 0
    failed: int = 0
    wall_s: float = 0.0
    images_per_s: float = 0.0
    cpu_s: dict[str, float] = field(default_factory=dict)
    stage_s: dict[str, float] = field(default_factory=dict)
    peak_rss_mb: dict[str, int] = field(default_factory=dict)
    # (images finished, lowest MB, highest MB) of the ingest worker per window
    worker_rss_mb: list[tuple[int, int, int]] = field(default_factory=list)
    notes: str = ""


# --- the pipeline alone ---------------------------------------------------------------------


def pipeline_alone(archive: Path, limit: int | None, batch: int) -> Figures:
    """In this process: the model's own rate, the images decoded beforehand (not timed)."""
    from core.images import decode_rgb  # noqa: PLC0415
    from core.settings import get_settings  # noqa: PLC0415
    from workers.runtime import build_pipeline  # noqa: PLC0415

    settings = get_settings()
    # The workers' own pipeline (the configured recipe: margin, alignment, flip, second
    # pass), at the batch size asked.
    pipeline = build_pipeline(settings)
    pipeline.batch_size = batch
    pipeline.load()
    figures = Figures("pipeline")
    chunk: list[Any] = []
    warmed = False

    def run(images: list[Any]) -> None:
        nonlocal warmed
        if not warmed:  # first calls allocate and trace: not what a running worker sees
            pipeline.process(images[:8])
            warmed = True
        started = time.perf_counter()
        found = pipeline.process(images)
        figures.wall_s += time.perf_counter() - started
        figures.images += len(images)
        figures.faces += sum(len(faces) for faces in found)

    for _, data in lfw_members(archive, limit):
        chunk.append(decode_rgb(data, max_pixels=settings.max_image_pixels))
        if len(chunk) == batch:
            run(chunk)
            chunk = []
    if chunk:
        run(chunk)
    figures.images_per_s = figures.images / figures.wall_s
    figures.peak_rss_mb = {"this process": psutil.Process().memory_info().rss // MB}
    return figures


# --- measuring a stack ----------------------------------------------------------------------


class CpuMonitor:
    """CPU seconds (user + system) of each group of processes while the phase runs: every
    process seen is sampled twice a second, and counts from its first sample to its last.
    An S3 server in a process of its own is a group ("s3 server"); one in this process
    (moto) is counted with the clients."""

    def __init__(self, stack_: Stack, database: str, s3_pid: int | None) -> None:
        self.groups: dict[str, list[int]] = {"api": [stack_.api.pid]}
        for n, worker in enumerate(stack_.workers):
            self.groups[f"worker {WORKERS[n][0][-1]}"] = [worker.pid]
        if s3_pid is not None:
            self.groups["s3 server"] = [s3_pid]
        self.me = "bench (clients)" if s3_pid is not None else "bench (S3 server, clients)"
        self.database = database
        self.first: dict[tuple[str, int], float] = {}
        self.last: dict[tuple[str, int], float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.started = time.time()

    def _processes(self) -> Iterator[tuple[str, psutil.Process]]:
        for name, pids in self.groups.items():
            for pid in pids:
                try:
                    root = psutil.Process(pid)
                    yield name, root
                    for child in root.children(recursive=True):
                        yield name, child
                except psutil.NoSuchProcess:
                    continue
        yield self.me, psutil.Process()
        for proc in psutil.process_iter(["cmdline"]):
            cmdline = " ".join(proc.info["cmdline"] or [])
            if "milvus-lite" in cmdline and "server" in cmdline and self.milvus_dir in cmdline:
                yield "milvus-lite", proc
            elif cmdline.startswith("postgres:") and self.database in cmdline:
                yield "postgres", proc

    milvus_dir = ""

    def sample(self) -> None:
        for name, proc in self._processes():
            try:
                times = proc.cpu_times()
            except psutil.NoSuchProcess:
                continue
            key = (name, proc.pid)
            try:
                # A process born while the phase runs (an archive's reader) counts from zero.
                born_during = proc.create_time() > self.started
            except psutil.NoSuchProcess:
                continue
            self.first.setdefault(key, 0.0 if born_during else times.user + times.system)
            self.last[key] = times.user + times.system

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self.sample()

    def totals(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for key, last in self.last.items():
            out[key[0]] = out.get(key[0], 0.0) + last - self.first[key]
        return {name: round(seconds, 1) for name, seconds in sorted(out.items())}

    def __enter__(self) -> CpuMonitor:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


def last_stages(log_path: Path) -> dict[str, float]:
    """The ingest worker's stage totals: its last ``ingest: batch done`` line."""
    stages: dict[str, float] = {}
    for line in log_path.read_text(errors="replace").splitlines():
        if '"stage_s"' not in line:
            continue
        try:
            stages = json.loads(line[line.index("{") :])["stage_s"]
        except (ValueError, KeyError):
            continue
    return stages


class Progress:
    """Polls jobs in a thread: (time, images finished) marks for the RSS windows."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client
        self.jobs: list[str] = []
        self.finished: dict[str, dict[str, Any]] = {}
        self.marks: list[tuple[float, int]] = []
        self.refused = 0
        self.lock = threading.Lock()

    def add(self, job_url: str) -> None:
        with self.lock:
            self.jobs.append(job_url)

    def poll_until_done(self, expected_jobs: int, stop: threading.Event) -> None:
        """Each sweep asks about the open jobs in the order they were made and stops at the
        first one still queued or running: one ingest worker takes them in that order, so
        the ones behind it are waiting too. Asking about every open job every sweep (400 of
        them in the upload phase) cost the API and this process more CPU than the worker's
        own plumbing, taken from the model on the same two cores."""
        counts: dict[str, int] = {}
        while not stop.is_set():
            with self.lock:
                open_jobs = [j for j in self.jobs if j not in self.finished]
            for job_url in open_jobs:
                response = self.client.get(job_url)
                if response.status_code != 200:  # e.g. 429 from the rate limit: ask later
                    self.refused += 1
                    break
                job = response.json()
                progress = job["progress"]
                counts[job_url] = progress["done"] + progress["failed"] + progress["skipped"]
                if job["status"] in ("queued", "running"):
                    break
                self.finished[job_url] = job
            self.marks.append((time.monotonic(), sum(counts.values())))
            if len(self.finished) >= expected_jobs:
                return
            time.sleep(POLL_S)


@dataclass
class Run:
    """One end-to-end phase on its stack."""

    s: Stack
    database: str
    folder: Path
    phase: str
    s3: S3Server


def measure(run: Run, send: Any, *, expected_jobs: int) -> Figures:
    """Run ``send`` (in a thread: it adds the jobs it makes) and follow every job to its end."""
    s, folder = run.s, run.folder
    figures = Figures(run.phase)
    groups = {"api": s.api.pid} | {f"worker{i}": w.pid for i, w in enumerate(s.workers)}
    if run.s3.pid is not None:
        groups["s3 server"] = run.s3.pid
    timeout = httpx.Timeout(30.0, read=600.0)
    cpu = CpuMonitor(s, run.database, run.s3.pid)
    cpu.milvus_dir = str(folder / "milvus")
    with RssMonitor(groups) as rss, cpu, s.client(timeout) as client:
        progress = Progress(client)
        stop = threading.Event()
        started = time.monotonic()
        sender = threading.Thread(target=send, args=(s, progress), daemon=True)
        sender.start()
        progress.poll_until_done(expected_jobs, stop)
        sender.join()
        figures.wall_s = time.monotonic() - started
    jobs = list(progress.finished.values())
    figures.images = sum(j["progress"]["done"] + j["progress"]["failed"] for j in jobs)
    figures.failed = sum(j["progress"]["failed"] for j in jobs)
    figures.faces = sum(int(j["result"].get("faces", 0)) for j in jobs)
    figures.images_per_s = round(figures.images / figures.wall_s, 1)
    figures.cpu_s = cpu.totals()
    figures.stage_s = last_stages(folder / "worker0.log")
    figures.peak_rss_mb = {name: rss // MB for name, rss in sorted(rss.peak.items())}
    figures.worker_rss_mb = [
        (n, low // MB, high // MB)
        for n, low, high in rss_windows(rss.samples["worker0"], progress.marks, RSS_WINDOW)
    ]
    statuses = sorted({j["status"] for j in jobs})
    figures.notes = f"{len(jobs)} job(s), status {', '.join(statuses)}"
    return figures


def archive_phase(run: Run, archive: Path) -> Figures:
    def send(s: Stack, progress: Progress) -> None:
        with s.client(httpx.Timeout(30.0, read=600.0)) as client:
            progress.add(upload(client, archive, "folder", quiet=True))

    return measure(run, send, expected_jobs=1)


def upload_phase(
    run: Run, archive: Path, *, limit: int | None, files: int, clients: int
) -> Figures:
    requests: list[list[tuple[str, bytes, str]]] = [[]]
    for member, data in lfw_members(archive, limit):
        if len(requests[-1]) == files:
            requests.append([])
        path = Path(member.name)
        requests[-1].append((path.name, data, path.parent.name))

    def post(s: Stack, progress: Progress, chunk: list[tuple[str, bytes, str]]) -> None:
        with s.client(httpx.Timeout(30.0, read=600.0)) as client:
            response = client.post(
                "/v1/images",
                files=[("file", (name, data, "image/jpeg")) for name, data, _ in chunk],
                data={"label": [label for _, _, label in chunk]},
            )
            response.raise_for_status()
            progress.add(response.headers["Location"])

    def send(s: Stack, progress: Progress) -> None:
        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(lambda chunk: post(s, progress, chunk), requests))

    return measure(run, send, expected_jobs=len(requests))


# --- the run --------------------------------------------------------------------------------


@contextmanager
def standin(costs: str | None) -> Iterator[None]:
    """The stand-in model for the stacks started inside (their processes inherit it)."""
    if costs is None:
        yield
        return
    os.environ[STANDIN_ENV] = costs
    try:
        yield
    finally:
        os.environ.pop(STANDIN_ENV, None)


def report(all_figures: list[Figures]) -> None:
    by_phase = {f.phase: f for f in all_figures}
    print(f"{'phase':<16} {'images':>7} {'faces':>7} {'wall s':>8} {'images/s':>9}")
    for f in all_figures:
        print(f"{f.phase:<16} {f.images:>7} {f.faces:>7} {f.wall_s:>8.1f} {f.images_per_s:>9.1f}")
    pipeline = by_phase.get("pipeline")
    for path in ("archive", "upload"):
        if pipeline and path in by_phase:
            share = by_phase[path].images_per_s / pipeline.images_per_s
            print(f"{path} / pipeline alone: {100 * share:.0f}%")
    for f in all_figures:
        if not f.cpu_s and not f.stage_s:
            continue
        print(f"== {f.phase}: CPU seconds by process ==")
        print("  " + ", ".join(f"{name} {s:.1f}" for name, s in f.cpu_s.items()))
        print(f"== {f.phase}: ingest worker, seconds by stage (thread time) ==")
        print("  " + ", ".join(f"{name} {s:.1f}" for name, s in f.stage_s.items()))
        print(f"== {f.phase}: RSS ==")
        print("  peak " + ", ".join(f"{n} {mb} MB" for n, mb in f.peak_rss_mb.items()))
        if f.worker_rss_mb:
            windows = ", ".join(f"{n}: {low}-{high}" for n, low, high in f.worker_rss_mb)
            print(f"  ingest worker per {RSS_WINDOW} images (lowest-highest MB): {windows}")
        print(f"  {f.notes}")


def run_phases(
    args: argparse.Namespace, archive: Path, work: Path, s3: S3Server, loads: dict[str, float]
) -> list[Figures]:
    results: list[Figures] = []
    for phase in args.phases:
        say(f"phase {phase} (load average {os.getloadavg()[0]:.2f})")
        loads[f"load average before {phase}"] = os.getloadavg()[0]
        if phase == "pipeline":
            out = work / "pipeline.json"
            command = [sys.executable, __file__, "--archive", str(archive)]
            command += ["--batch", str(args.batch), "--pipeline-json", str(out)]
            subprocess.run(command, check=True, cwd=PROJECT_ROOT)
            results.append(Figures(**json.loads(out.read_text())))
            say(f"  {results[-1].images_per_s:.1f} images/s")
            continue
        folder = work / phase
        costs = args.standin if phase.startswith("standin") else None
        local = f"file://{folder / 'objects'}?fsync=false" if phase.endswith("-local") else None
        with (
            standin(costs),
            stack(
                folder, s3.endpoint, args.redis_db, 0, worker_commands=WORKERS, storage_url=local
            ) as s,
        ):
            run = Run(s, s.env["DATABASE_URL"].rsplit("/", 1)[-1], folder, phase, s3)
            if "archive" in phase:
                figures = archive_phase(run, archive)
            else:
                figures = upload_phase(
                    run, archive, limit=args.limit, files=args.files, clients=args.clients
                )
        results.append(figures)
        say(f"  {figures.images_per_s:.1f} images/s ({figures.notes})")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive", type=Path, default=default_archive())
    parser.add_argument("--limit", type=int, default=None, help="only the first N images")
    parser.add_argument(
        "--phases", nargs="+", choices=PHASES + LOCAL_PHASES, default=list(PHASES + LOCAL_PHASES)
    )
    parser.add_argument("--standin", default="detect_ms=0,embed_ms=0", help="the stand-in's costs")
    parser.add_argument("--files", type=int, default=32, help="files per upload request")
    parser.add_argument("--clients", type=int, default=2, help="upload requests at a time")
    parser.add_argument("--batch", type=int, default=32, help="the pipeline phase's batch")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here too")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    add_s3_option(parser)
    parser.add_argument(
        "--redis-db",
        type=int,
        default=REDIS_DB,
        help="the stacks' Redis database: each stack empties it, so two runs at a time need "
        "two (else their workers take each other's tasks)",
    )
    parser.add_argument(
        "--priority",
        type=int,
        default=0,
        help="favour the benchmark (and every stack it starts) by this many nice steps over "
        "the machine's other work (needs root; bench_ingest.raise_priority)",
    )
    parser.add_argument("--pipeline-json", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.pipeline_json:  # the pipeline phase, in a process of its own (its GB freed after)
        figures = pipeline_alone(args.archive, args.limit, args.batch)
        args.pipeline_json.write_text(json.dumps(asdict(figures)))
        return 0

    # A stop signal unwinds the stacks (their processes and databases), like Ctrl-C.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.priority:  # once, before anything starts: every process inherits it
        raise_priority(args.priority)

    # One key sends every request here (its jobs polled four times a second): the API's
    # per-key rate limit is not what is measured. The stacks inherit the environment.
    os.environ.setdefault("RATE_LIMIT", "1000000/minute;100000/second")

    work = Path(tempfile.mkdtemp(prefix="bench-plumbing-"))
    say(f"work folder: {work}")
    loads = {"load average at start": os.getloadavg()[0]}
    try:
        archive: Path = args.archive
        if args.limit:
            archive = work / f"lfw-first-{args.limit}.tgz"
            write_subset(args.archive, args.limit, archive)
        with s3_server(args.s3, work / "s3") as s3:
            results = run_phases(args, archive, work, s3, loads)
        loads["load average at end"] = os.getloadavg()[0]
        report(results)
        for name, value in loads.items():
            print(f"{name}: {value:.2f}")
        if args.out:
            args.out.write_text(
                json.dumps(
                    {
                        "standin": args.standin,
                        "priority": args.priority,
                        "s3": args.s3,
                        "loads": loads,
                        "phases": [asdict(f) for f in results],
                    },
                    indent=2,
                )
                + "\n"
            )
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
