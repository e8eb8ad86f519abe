"""Fault injection, in the form that fits CI: a private stack (its own Postgres cluster,
redis-server, S3 server, milvus-lite server, API and worker), a small LFW ingest with a stream
of searches, and three faults in turn: Redis restarted (every queued message gone), Postgres
restarted, the worker killed with SIGKILL mid-batch (while MTCNN runs). Nothing may be lost,
duplicated or left running, and no answer may be a 5xx other than the documented 503.

The full run (500 images, every fault) is ``scripts/fault_injection.py`` (README: Benchmarks).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from types import ModuleType

import pytest

from cli.lfw import PROJECT_ROOT

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def _load_script() -> ModuleType:
    path = PROJECT_ROOT / "scripts" / "fault_injection.py"
    spec = importlib.util.spec_from_file_location("fault_injection", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


faults = _load_script()


def _missing() -> str | None:
    if not faults.LFW_ARCHIVE.exists():
        return f"LFW is not at {faults.LFW_ARCHIVE}"
    for tool in ("initdb", "pg_ctl"):
        if not (faults.PG_BIN / tool).exists():
            return f"{tool} is not in {faults.PG_BIN} (PG_BIN)"
    if shutil.which("redis-server") is None:
        return "redis-server is not installed"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root needs runuser to make the cluster as postgres"
    return None


def test_stage_is_read_from_the_worker_stack() -> None:
    dump = (
        'Thread 0x00007f (most recent call first):\n  File "/x/threading.py", line 1 in wait\n\n'
        "Current thread 0x00007e (most recent call first):\n"
        '  File "/app/workers/pipeline/detector.py", line 250 in _run_mtcnn\n'
        '  File "/app/workers/pipeline/face_pipeline.py", line 160 in process\n'
        '  File "/app/workers/ingest.py", line 220 in process_pending\n'
    )
    assert faults.stage_of(dump) == "detecting"
    assert faults.stage_of(dump.replace("detector.py", "embedder.py")) == "embedding"
    reading = '  File "/app/core/storage.py", line 9 in get\n  File "/app/workers/ingest.py", '
    assert faults.stage_of(reading + "line 90 in _load_batch\n") == "reading"
    assert faults.stage_of('  File "/app/workers/indexing.py", line 5 in index_pending\n') == (
        "indexing"
    )
    assert faults.stage_of('  File "/x/kombu/asynchronous/hub.py", line 1 in poll\n') is None


def test_nothing_lost_nothing_stuck() -> None:
    missing = _missing()
    if missing:
        pytest.skip(missing)
    rows = faults.run(
        faults.Options(
            images=96,
            faults=["redis", "postgres", "kill-detecting"],
            down_s=4.0,
        )
    )
    table = faults.format_table(rows)
    details = "\n".join(f"{row.fault}: {line}" for row in rows for line in row.details)
    assert [row.fault for row in rows] == ["redis", "postgres", "kill-detecting"], table
    assert sum(row.images for row in rows) == 96, table  # the searches use 4 more
    for row in rows:
        assert (row.lost, row.duplicated, row.stuck, row.server_errors) == (0, 0, 0, 0), (
            f"{table}\n{details}"
        )
        assert row.recover_s is not None, table
    # The kill landed while the worker was detecting faces, as the stack sample said.
    assert rows[2].note == "killed while detecting", table
