"""`facesearch worker` with no role: one child process per workload, watched together.

Each child is `facesearch worker --queues ... --pool ...` (a plain Celery worker). A stop
signal is passed on to every child, which finishes its task (Celery's warm shutdown); if one
child dies, the others are stopped too and the supervisor exits with its code, so whatever
runs the supervisor (systemd, a container runtime) restarts the whole set, never half of it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from types import FrameType

from core.logging import get_logger
from workers.roles import ProcessSpec

log = get_logger(__name__)

# A child that does not end this long after the stop signal is killed (its task comes back
# through the broker's redelivery: tasks are acknowledged late).
STOP_GRACE_S = 60.0


def child_argv(spec: ProcessSpec) -> list[str]:
    argv = [sys.executable, "-m", "cli.main", "worker", "--queues", ",".join(spec.queues)]
    argv += ["--pool", spec.pool]
    if spec.concurrency and spec.pool != "solo":
        argv += ["--concurrency", str(spec.concurrency)]
    return argv


def child_env(spec: ProcessSpec, position: int, env: dict[str, str]) -> dict[str, str]:
    """Each child serves its own metrics: WORKER_METRICS_PORT, then the next ports in order."""
    child = dict(env)
    base = int(env.get("WORKER_METRICS_PORT") or 0)
    if base:
        child["WORKER_METRICS_PORT"] = str(base + position)
    child["FACESEARCH_WORKER_NAME"] = spec.name
    return child


def supervise(specs: Sequence[ProcessSpec]) -> int:
    """Run the children until a stop signal or until one ends; return the exit code."""
    children: list[tuple[ProcessSpec, subprocess.Popen[bytes]]] = []
    stopping = False

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for _, child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for position, spec in enumerate(specs):
        child = subprocess.Popen(child_argv(spec), env=child_env(spec, position, dict(os.environ)))
        children.append((spec, child))
        log.info(
            "worker: started",
            process=spec.name,
            pid=child.pid,
            queues=",".join(spec.queues),
            pool=spec.pool,
        )
    code = 0
    while not stopping:
        ended = [(spec, child) for spec, child in children if child.poll() is not None]
        if ended:
            spec, child = ended[0]
            code = child.returncode or 1
            log.error("worker: a process ended; stopping the others", process=spec.name, code=code)
            stop(signal.SIGTERM, None)
            break
        time.sleep(0.5)
    deadline = time.monotonic() + STOP_GRACE_S
    for _, child in children:
        try:
            child.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    return code
