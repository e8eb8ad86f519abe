"""Searches while bulk work runs: search latency quiet and during an ingest of all of LFW, and
the ingest's images/s with and without the searches, on the distributed stack.

Each stack is fresh (see scripts/bench_ingest.py): a Postgres database, a Redis database, an
S3 server (nanio in a process of its own, or moto in this one with ``--s3 moto``) and a
``milvus-lite server`` on loopback, the API (``facesearch serve``) and the workers in the
layout under test:

- split (the default layout): ``facesearch worker``, one process per workload: search,
  ingest, io and index;
- shared (``--layout shared``): ``facesearch worker --role all``, every queue in one process,
  the layout before the queues were split.

Phases, each on its own stack:

1. quiet: a gallery of ``--gallery`` images, then ``--quiet-searches`` searches one after the
   other;
2. busy: the whole archive ingested through ``POST /v1/archives`` (what ``facesearch ingest``
   does) while a search is sent every ``--search-every`` seconds, one at a time;
3. alone: the same gallery, then the same archive on a fresh stack with no searches (skip with
   ``--skip-alone``): the gallery's images are in the archive and skipped on both stacks.

A search's latency is from the start of its upload to the search resource with its matches in
hand, as a client sees it: ``POST /v1/searches`` with ``Prefer: wait=30``, then (if the API
answered 202) polling its job every 20 ms. Queries are LFW images that are not in the gallery.

    .venv/bin/python scripts/bench_interactive.py                 # all of LFW (~30 min here)
    .venv/bin/python scripts/bench_interactive.py --limit 2000    # a quicker look
    .venv/bin/python scripts/bench_interactive.py --layout shared --limit 1000 --skip-alone
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from cli.ingest import upload  # noqa: E402
from cli.lfw import default_archive  # noqa: E402
from scripts.bench_ingest import (  # noqa: E402
    RssMonitor,
    Stack,
    add_s3_option,
    lfw_members,
    raise_priority,
    s3_server,
    say,
    stack,
    write_subset,
)

LAYOUTS: dict[str, list[tuple[list[str], int]]] = {
    # (`facesearch worker` arguments, Celery processes it starts)
    "split": [([], 4)],  # search, ingest, io, index (the server layout)
    "shared": [(["--role", "all"], 1)],
}
POLL_S = 0.02


@dataclass
class Latencies:
    samples_ms: list[float] = field(default_factory=list)
    failures: int = 0

    def summary(self) -> dict[str, float]:
        values = sorted(self.samples_ms)
        if not values:
            return {"n": 0}
        return {
            "n": len(values),
            "p50_ms": round(statistics.median(values), 1),
            "p90_ms": round(percentile(values, 0.90), 1),
            "p99_ms": round(percentile(values, 0.99), 1),
            "max_ms": round(values[-1], 1),
            "failures": self.failures,
        }


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile: with fewer than 100 samples p99 is the largest."""
    rank = max(1, round(q * len(sorted_values) + 0.5))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def search_once(client: httpx.Client, name: str, data: bytes) -> float | None:
    """One search, upload to result; its latency in ms, or None if it did not succeed."""
    started = time.perf_counter()
    response = client.post(
        "/v1/searches",
        files={"file": (name, data, "image/jpeg")},
        data={"top_k": "10"},
        headers={"Prefer": "wait=30"},
    )
    if response.status_code == 200:  # finished within the wait: the search resource
        body = response.json()
    elif response.status_code == 202:
        created = response.json()
        while True:
            job = client.get(f"/v1/jobs/{created['job_id']}").json()
            if job["status"] not in ("queued", "running"):
                break
            time.sleep(POLL_S)
        if job["status"] != "succeeded":
            return None
        body = client.get(created["search_url"]).json()
    else:
        say(f"search refused: {response.status_code} {response.text[:200]}")
        return None
    elapsed = (time.perf_counter() - started) * 1000
    return elapsed if body.get("faces") is not None else None


def ingest_archive(client: httpx.Client, archive: Path) -> tuple[dict, float]:
    """The archive through the API, followed to its end: (the job, wall seconds)."""
    started = time.monotonic()
    job_url = upload(client, archive, "folder", quiet=True)
    while True:
        job = client.get(job_url).json()
        if job["status"] not in ("queued", "running"):
            return job, time.monotonic() - started
        time.sleep(0.5)


class Searcher(threading.Thread):
    """Sends one search every ``every_s`` seconds (one at a time) until stopped."""

    def __init__(self, s: Stack, queries: list[tuple[str, bytes]], every_s: float) -> None:
        super().__init__(daemon=True)
        self.stack, self.queries, self.every_s = s, queries, every_s
        self.latencies = Latencies()
        self.stopped = threading.Event()

    def run(self) -> None:
        with self.stack.client(httpx.Timeout(60.0)) as client:
            n = 0
            while not self.stopped.is_set():
                slot = time.monotonic()
                name, data = self.queries[n % len(self.queries)]
                latency = search_once(client, name, data)
                if latency is None:
                    self.latencies.failures += 1
                else:
                    self.latencies.samples_ms.append(latency)
                n += 1
                self.stopped.wait(max(0.0, slot + self.every_s - time.monotonic()))


class CpuAccount:
    """CPU seconds (user + system) spent by each part of the stack between two snapshots,
    from /proc: this script (the HTTP client, and moto's S3 server when it runs in it), the
    S3 server in a process of its own (``s3_pid``), the API, each worker process by its
    workload, milvus-lite, Postgres, Redis, and the rest of the machine. Where the searches'
    cost lands, and whether the ingest had the CPU it wanted (``idle_s``: both cores' idle
    time)."""

    def __init__(self, s: Stack, s3_pid: int | None) -> None:
        self.stack = s
        self.s3_pid = s3_pid
        self.start: dict[int, tuple[str, float]] = {}
        self.start_system: tuple[float, float] = (0.0, 0.0)

    def _label(self, proc: psutil.Process) -> str | None:  # noqa: PLR0911 (one per part)
        me = os.getpid()
        if proc.pid == me:
            return "bench (client)" if self.s3_pid is not None else "bench (client, S3)"
        if proc.pid == self.s3_pid:
            return "s3 server"
        name = proc.name()
        if name.startswith("postgres"):
            return "postgres"
        if name.startswith("redis"):
            return "redis"
        if "milvus" in name:
            return "milvus-lite"
        try:
            parents = {p.pid for p in proc.parents()}
        except psutil.NoSuchProcess:
            return None
        if proc.pid == self.stack.api.pid or self.stack.api.pid in parents:
            return "api"
        workers = {w.pid for w in self.stack.workers}
        if proc.pid in workers:
            return "worker supervisor"
        if workers & parents:
            return "worker " + proc.environ().get("FACESEARCH_WORKER_NAME", "?")
        return None

    def _snapshot(self) -> dict[int, tuple[str, float]]:
        taken: dict[int, tuple[str, float]] = {}
        for proc in psutil.process_iter():
            try:
                label = self._label(proc)
                times = proc.cpu_times()
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            if label is not None:
                taken[proc.pid] = (label, times.user + times.system)
        return taken

    @staticmethod
    def _system() -> tuple[float, float]:
        times = psutil.cpu_times()
        return sum(times) - times.idle - times.iowait, times.idle + times.iowait

    def __enter__(self) -> CpuAccount:
        self.start = self._snapshot()
        self.start_system = self._system()
        return self

    def __exit__(self, *_: object) -> None:
        end = self._snapshot()
        busy, idle = self._system()
        spent: dict[str, float] = {}
        for pid, (label, seconds) in end.items():
            before = self.start.get(pid)
            spent[label] = spent.get(label, 0.0) + seconds - (before[1] if before else 0.0)
        self.figures = {k: round(v, 1) for k, v in sorted(spent.items())}
        rest = busy - self.start_system[0] - sum(spent.values())
        self.figures["rest of the machine"] = round(rest, 1)
        self.figures["idle_s"] = round(idle - self.start_system[1], 1)


def images_per_s(job: dict, wall_s: float) -> float:
    progress = job["progress"]
    return (progress["done"] + progress["failed"] + progress["skipped"]) / wall_s


def quiet_and_busy(
    s: Stack,
    args: argparse.Namespace,
    gallery: Path,
    archive: Path,
    queries: list[tuple[str, bytes]],
    *,
    s3_pid: int | None,
) -> dict[str, object]:
    """Phases 1 and 2 on one stack."""
    with s.client(httpx.Timeout(30.0, read=600.0)) as client:
        say(f"quiet: a gallery of {args.gallery} images")
        ingest_archive(client, gallery)
        quiet = Latencies()
        for n in range(args.quiet_searches):
            latency = search_once(client, *queries[n % len(queries)])
            if latency is None:
                quiet.failures += 1
            else:
                quiet.samples_ms.append(latency)
        say(f"quiet searches: {quiet.summary()}")

        say(f"busy: the archive with a search every {args.search_every} s")
        searcher = Searcher(s, queries, args.search_every)
        groups = {"api": s.api.pid} | {f"worker{i}": w.pid for i, w in enumerate(s.workers)}
        with RssMonitor(groups) as monitor, CpuAccount(s, s3_pid) as cpu:
            searcher.start()
            job, wall = ingest_archive(client, archive)
            searcher.stopped.set()
            searcher.join()
    busy = {
        "searches": searcher.latencies.summary(),
        "ingest_images_per_s": round(images_per_s(job, wall), 2),
        "ingest_wall_s": round(wall, 1),
        "ingest_status": job["status"],
        "peak_rss_mb": {k: round(v / 2**20) for k, v in sorted(monitor.peak.items())},
        "cpu_s": cpu.figures,
    }
    say(f"busy: {busy}")
    return {"quiet": quiet.summary(), "busy": busy}


def alone(s: Stack, gallery: Path, archive: Path, s3_pid: int | None) -> dict[str, object]:
    """Phase 3: the gallery, then the archive with no searches."""
    with s.client(httpx.Timeout(30.0, read=600.0)) as client:
        # The same gallery first, as in phases 1 and 2: its images are in the archive, and
        # the archive skips them on both stacks, so both ingests do the same work.
        ingest_archive(client, gallery)
        say("alone: the archive, no searches")
        with CpuAccount(s, s3_pid) as cpu:
            job, wall = ingest_archive(client, archive)
    figures = {
        "ingest_images_per_s": round(images_per_s(job, wall), 2),
        "ingest_wall_s": round(wall, 1),
        "ingest_status": job["status"],
        "cpu_s": cpu.figures,
    }
    say(f"alone: {figures}")
    return {"alone": figures}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive", type=Path, default=default_archive())
    parser.add_argument("--limit", type=int, default=None, help="only the first N images")
    parser.add_argument("--layout", choices=sorted(LAYOUTS), default="split")
    parser.add_argument("--gallery", type=int, default=500, help="images before quiet searches")
    parser.add_argument("--quiet-searches", type=int, default=50)
    parser.add_argument("--search-every", type=float, default=2.0, help="seconds, during ingest")
    parser.add_argument("--queries", type=int, default=100, help="distinct query images")
    parser.add_argument("--skip-alone", action="store_true")
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    add_s3_option(parser)
    parser.add_argument(
        "--priority",
        type=int,
        default=0,
        help="lower the stack's nice values by this much (root; for a machine shared with "
        "other work: the figures then say what the stack does when it gets the CPU first)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # A stop signal unwinds the stacks (their processes and databases), like Ctrl-C: a killed
    # run must not leave workers consuming the next run's Redis database.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.priority:
        raise_priority(args.priority)

    work = Path(tempfile.mkdtemp(prefix="bench-interactive-"))
    say(f"work folder: {work}")
    workers = LAYOUTS[args.layout]
    figures: dict[str, object] = {
        "layout": args.layout,
        "s3": args.s3,
        "search_every_s": args.search_every,
        "priority": args.priority,
        "load_average_at_start": os.getloadavg()[0],
    }
    try:
        archive: Path = args.archive
        if args.limit:
            archive = work / f"lfw-first-{args.limit}.tgz"
            write_subset(args.archive, args.limit, archive)
        members = list(lfw_members(args.archive, None))
        total = min(len(members), args.limit or len(members))
        # Queries: images past the archive's end when it is cut, else every 97th image (in
        # the gallery by then: the search still runs the whole path).
        pool = members[total:] or members[::97]
        queries = [(Path(m.name).name, data) for m, data in pool[: args.queries]]
        gallery = work / "gallery.tgz"
        write_subset(args.archive, args.gallery, gallery)
        figures["images"] = total

        with s3_server(args.s3, work / "s3") as s3:
            with stack(work / "busy", s3.endpoint, 10, 0, worker_commands=workers) as s:
                figures |= quiet_and_busy(s, args, gallery, archive, queries, s3_pid=s3.pid)
            if not args.skip_alone:
                with stack(work / "alone", s3.endpoint, 9, 0, worker_commands=workers) as s:
                    figures |= alone(s, gallery, archive, s3.pid)
        if not args.skip_alone:
            busy_rate = figures["busy"]["ingest_images_per_s"]  # type: ignore[index]
            alone_rate = figures["alone"]["ingest_images_per_s"]  # type: ignore[index]
            figures["ingest_lost_to_searches_pct"] = round(100 * (1 - busy_rate / alone_rate), 1)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(figures, indent=2))
    if args.out:
        args.out.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
