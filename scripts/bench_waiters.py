"""Benchmark: many requests waiting on jobs, and the API still answering everyone else.

Each configuration gets a fresh stack: a Postgres database, a Redis database (the broker,
so waiters are woken by pub/sub), objects in a temporary folder, and the API under gunicorn
started the way ``facesearch serve`` starts it. No worker runs: the jobs waited on stay
queued until this script ends them itself, through ``services.jobs.close_job`` (the one
way a job ends), in one commit.

Per configuration:

1. quiet: a probe client sends plain requests one after another (``GET /healthz`` and
   ``GET /v1/jobs/{id}`` of a job nobody waits on, in turn) for ``--probe-s`` seconds;
2. loaded: ``--waiters`` threads each long-poll a job of their own
   (``GET /v1/jobs/{id}?wait=30``), and once they are all sent the probe does the same as
   in 1; a waiter answered at once (this process already had its most waiters) asks again
   a second later, as a polling client would;
3. wake: five waited-on jobs are ended one at a time, each in its own commit, while the
   others still wait; then all the others in one commit. A waiter's wake-up latency runs
   from just before the commit that ends its job to its answer with the job ended.

Printed per configuration: the probe's p50, p99 and max (a request that got no answer within
``--probe-timeout-s`` counts as that long) and how many were answered, the waiters that were
answered at once, and the wake-up latencies: alone (p50, max) and all together (p50, p99).

    .venv/bin/python scripts/bench_waiters.py                      # before, after, over-cap
    .venv/bin/python scripts/bench_waiters.py --configs after --waiters 50

Configurations: ``before``: 2 processes x 4 threads and no cap (``facesearch serve`` before
waiting existed); ``after``: ``facesearch serve`` as it is (2 processes x 64 threads, at most
API_MAX_WAITERS = 48 waiters per process); ``over-cap``: the same with three times the
waiters.

Needs Postgres and Redis on 127.0.0.1 (as the tests do).
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import redis

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from core.settings import get_settings  # noqa: E402
from models import DEFAULT_GALLERY_ID, Gallery, Job, JobKind, JobStatus, Scope  # noqa: E402
from models.db import make_engine, make_session_factory  # noqa: E402
from services.jobs import close_job  # noqa: E402
from services.keys import create_key  # noqa: E402

PG_ADMIN_URL = os.environ.get("TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
PYTHON = sys.executable
READY_TIMEOUT_S = 120
WAIT_S = 30  # what each waiter asks for: the most the API grants
AT_ONCE_S = 1.0  # a long poll answered sooner than this, with its job not ended, did not wait
RETRY_S = 1.0  # how long a waiter that was answered at once waits before asking again
SINGLE_WAKES = 5  # jobs ended one at a time (while the others wait) before the rest at once


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@dataclass(frozen=True)
class Config:
    name: str
    threads: int | None  # None: `facesearch serve`'s default
    max_waiters: int | None  # None: the settings' default
    serve: bool  # started by `facesearch serve` (else gunicorn with the old arguments)
    waiters_factor: int = 1


CONFIGS = {
    "before": Config("before", threads=4, max_waiters=10_000, serve=False),
    "after": Config("after", threads=None, max_waiters=None, serve=True),
    "over-cap": Config("over-cap", threads=None, max_waiters=None, serve=True, waiters_factor=3),
}


# --- the stack ------------------------------------------------------------------------------


@contextmanager
def database() -> Iterator[str]:
    name = f"facesearch_bench_{secrets.token_hex(6)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + (
            f"/{name}"
        )
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the API exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the API did not answer")


@dataclass
class Stack:
    url: str
    key: str
    database_url: str
    jobs: list[str] = field(default_factory=list)  # waited on, one per waiter
    probe_job: str = ""


@contextmanager
def stack(
    config: Config, folder: Path, redis_db: int, waiters: int, processes: int
) -> Iterator[Stack]:
    broker = f"redis://127.0.0.1:6379/{redis_db}"
    redis.Redis.from_url(broker).flushdb()
    folder.mkdir(parents=True, exist_ok=True)
    with ExitStack() as cleanup, database() as database_url:
        env = {
            **os.environ,
            "DATA_DIR": str(folder),
            "DATABASE_URL": database_url,
            "BROKER_URL": broker,
            "STORAGE_URL": f"file://{folder / 'objects'}",
            "LOG_LEVEL": "WARNING",
            "LOG_JSON": "true",
            "RATE_LIMIT": "",  # the probe alone sends hundreds of requests a second
            "PROMETHEUS_MULTIPROC_DIR": tempfile.mkdtemp(prefix="metrics-", dir=folder),
        }
        if config.max_waiters is not None:
            env["API_MAX_WAITERS"] = str(config.max_waiters)
        subprocess.run(
            [PYTHON, "-m", "cli.main", "db", "upgrade"],
            env=env,
            cwd=PROJECT_ROOT,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        port = free_port()
        if config.serve:
            command = [PYTHON, "-m", "cli.main", "serve", "--port", str(port)]
            command += ["--workers", str(processes)]
            if config.threads is not None:
                command += ["--threads", str(config.threads)]
        else:  # what `facesearch serve` ran before: 4 threads a process
            command = [PYTHON, "-m", "gunicorn", "api.wsgi:app", "--bind", f"127.0.0.1:{port}"]
            command += ["--workers", str(processes), "--threads", str(config.threads)]
            command += ["--timeout", "120"]
        log = (folder / f"api-{config.name}.log").open("wb")
        cleanup.callback(log.close)
        api = subprocess.Popen(command, env=env, cwd=PROJECT_ROOT, stdout=log, stderr=log)
        cleanup.callback(stop, api)
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, api)

        engine = make_engine(database_url)
        cleanup.callback(engine.dispose)
        sessions = make_session_factory(engine)
        with sessions() as session:
            _, key = create_key(
                session,
                scope=Scope.SEARCH,
                gallery=session.get_one(Gallery, DEFAULT_GALLERY_ID),
                name="bench_waiters",
            )
            jobs = [
                Job(kind=JobKind.INGEST, gallery_id=DEFAULT_GALLERY_ID) for _ in range(waiters + 1)
            ]
            session.add_all(jobs)
            session.commit()
            ids = [job.id for job in jobs]
        yield Stack(url=url, key=key, database_url=database_url, jobs=ids[1:], probe_job=ids[0])


def end_jobs(database_url: str, broker: str, job_ids: list[str]) -> float:
    """End every job in one commit (their ids are published after it, as a worker's would
    be); returns the moment just before the commit."""
    os.environ["BROKER_URL"] = broker  # the publisher reads the broker from the settings
    get_settings.cache_clear()
    engine = make_engine(database_url)
    try:
        with make_session_factory(engine)() as session:
            for job_id in job_ids:
                close_job(session, session.get_one(Job, job_id), JobStatus.SUCCEEDED)
            session.flush()
            started = time.monotonic()
            session.commit()
    finally:
        engine.dispose()
    return started


# --- the clients ----------------------------------------------------------------------------


@dataclass
class Waiter:
    answered_at_once: int = 0
    ended_at: float | None = None
    errors: list[str] = field(default_factory=list)


def wait_on(
    url: str,
    key: str,
    job_id: str,
    *,
    stop: threading.Event,
    sent: threading.Semaphore,
    result: Waiter,
) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=url, headers=headers, timeout=WAIT_S + 60) as client:
        first = True
        while not stop.is_set():
            started = time.monotonic()
            if first:
                sent.release()
                first = False
            try:
                answer = client.get(f"/v1/jobs/{job_id}", params={"wait": WAIT_S})
            except httpx.HTTPError as exc:
                result.errors.append(type(exc).__name__)
                continue
            if answer.status_code != 200:
                result.errors.append(str(answer.status_code))
                time.sleep(RETRY_S)
                continue
            if answer.json()["status"] == "succeeded":
                result.ended_at = time.monotonic()
                return
            if time.monotonic() - started < AT_ONCE_S:
                result.answered_at_once += 1
                stop.wait(RETRY_S)


def probe(
    url: str, key: str, job_id: str, seconds: float, timeout_s: float
) -> tuple[list[float], int]:
    """Plain requests one after another for ``seconds``: their latencies in ms (``timeout_s``
    for one that got no answer), and how many got no answer. Each on a new connection, as
    from many clients: gunicorn's processes each accept their share (a kept-alive
    connection would stay with the process that accepted it)."""
    latencies: list[float] = []
    unanswered = 0
    headers = {"Authorization": f"Bearer {key}", "Connection": "close"}
    paths = ["/healthz", f"/v1/jobs/{job_id}"]
    deadline = time.monotonic() + seconds
    with httpx.Client(base_url=url, headers=headers, timeout=timeout_s) as client:
        n = 0
        while time.monotonic() < deadline:
            started = time.monotonic()
            try:
                client.get(paths[n % 2]).raise_for_status()
                latencies.append((time.monotonic() - started) * 1000)
            except httpx.TimeoutException:
                latencies.append(timeout_s * 1000)
                unanswered += 1
            n += 1
    return latencies, unanswered


def describe(latencies: list[float]) -> str:
    return (
        f"n={len(latencies)} p50={percentile(latencies, 0.5):.1f} ms "
        f"p99={percentile(latencies, 0.99):.1f} ms max={max(latencies):.1f} ms"
    )


def run(config: Config, args: argparse.Namespace, folder: Path) -> dict[str, str]:
    waiters = args.waiters * config.waiters_factor
    broker = f"redis://127.0.0.1:6379/{args.redis_db}"
    say(f"[{config.name}] starting the stack ({waiters} waiters)")
    with stack(config, folder / config.name, args.redis_db, waiters, args.processes) as s:
        probe(s.url, s.key, s.probe_job, 2, args.probe_timeout_s)  # warm both processes
        quiet, _ = probe(s.url, s.key, s.probe_job, args.probe_s, args.probe_timeout_s)
        say(f"[{config.name}] quiet: {describe(quiet)}")

        stop = threading.Event()
        sent = threading.Semaphore(0)
        results = [Waiter() for _ in s.jobs]
        threads = [
            threading.Thread(
                target=wait_on,
                args=(s.url, s.key, job_id),
                kwargs={"stop": stop, "sent": sent, "result": result},
                daemon=True,
            )
            for job_id, result in zip(s.jobs, results, strict=True)
        ]
        for thread in threads:
            thread.start()
        for _ in threads:
            sent.acquire()
        time.sleep(1.0)  # the last ones reach the server
        loaded, unanswered = probe(s.url, s.key, s.probe_job, args.probe_s, args.probe_timeout_s)
        say(
            f"[{config.name}] with {waiters} waiters: {describe(loaded)}, "
            f"{unanswered} without an answer"
        )

        # One job ended at a time while the others wait (a search that ends among many).
        alone = []
        for job_id, thread, result in list(zip(s.jobs, threads, results, strict=True))[
            :SINGLE_WAKES
        ]:
            began = end_jobs(s.database_url, broker, [job_id])
            thread.join(WAIT_S + 10)
            if result.ended_at is None:
                alone.append((WAIT_S + 10) * 1000)  # not woken: its request is still queued
            elif result.answered_at_once == 0:  # (one that polls is not woken, it asks)
                alone.append((result.ended_at - began) * 1000)
        say(f"[{config.name}] woken alone: {describe(alone) if alone else '-'}")
        rest = s.jobs[SINGLE_WAKES:]
        began = end_jobs(s.database_url, broker, rest)
        for thread in threads:
            thread.join(WAIT_S + 90)
        stop.set()
        woken = [
            (r.ended_at - began) * 1000 for r in results[SINGLE_WAKES:] if r.ended_at is not None
        ]
        at_once = sum(r.answered_at_once > 0 for r in results)
        errors = [e for r in results for e in r.errors]
        say(
            f"[{config.name}] woken: {len(woken)}/{waiters}, "
            f"{describe(woken) if woken else '-'}; answered at once: {at_once}; "
            f"errors: {len(errors)} {sorted(set(errors))}"
        )
    return {
        "config": config.name,
        "waiters": str(waiters),
        "quiet p50/p99": f"{percentile(quiet, 0.5):.1f} / {percentile(quiet, 0.99):.1f}",
        "loaded p50/p99 (max)": (
            f"{percentile(loaded, 0.5):.1f} / {percentile(loaded, 0.99):.1f} ({max(loaded):.0f})"
        ),
        "probe answered": f"{len(loaded) - unanswered} of {len(loaded)}",
        "at once": str(at_once),
        "woken alone p50/max": (
            f"{percentile(alone, 0.5):.0f} / {max(alone):.0f}" if alone else "-"
        ),
        "woken together p50/p99": (
            f"{percentile(woken, 0.5):.0f} / {percentile(woken, 0.99):.0f}" if woken else "-"
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default="before,after,over-cap")
    parser.add_argument("--waiters", type=int, default=50)
    parser.add_argument("--processes", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--probe-s", type=float, default=10.0)
    parser.add_argument("--probe-timeout-s", type=float, default=10.0)
    parser.add_argument("--redis-db", type=int, default=13)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-waiters-") as tmp:
        for name in args.configs.split(","):
            rows.append(run(CONFIGS[name], args, Path(tmp)))
    redis.Redis.from_url(f"redis://127.0.0.1:6379/{args.redis_db}").flushdb()
    columns = list(rows[0])
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(row[c] for c in columns) + " |")
    print("(latencies in ms; probe: GET /healthz and GET /v1/jobs/{id} in turn)")


if __name__ == "__main__":
    main()
