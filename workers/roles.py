"""What each worker process does: its queues, its pool, and the layout `facesearch worker`
starts by default. Pure rules, no Celery: the CLI checks a request against them before it
starts anything, and refuses one that breaks an invariant.

The invariants:
- the index queue has exactly one consumer, one task at a time (Milvus lost rows under
  concurrent writers, FACTS.md); across processes and hosts ``workers.writer_lock`` holds it;
- with an embedded index (a milvus-lite path, which one process only may open) the searches
  and the index writer share one process;
- the I/O role never loads TensorFlow.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from core.queue import (
    INDEX_QUEUE,
    INGEST_QUEUE,
    IO_QUEUE,
    LEGACY_PIPELINE_QUEUE,
    QUEUES,
    SEARCH_QUEUE,
)

# The queues whose tasks run the face pipeline: a process consuming any of them loads it.
PIPELINE_QUEUES = frozenset({SEARCH_QUEUE, INGEST_QUEUE, LEGACY_PIPELINE_QUEUE})
# Webhook deliveries wait on the network, not the CPU: threads, several at once.
IO_THREADS = 8


class Role(enum.StrEnum):
    AUTO = "auto"  # one process per workload, as the mode needs (the default)
    ALL = "all"  # every queue in one process: the smallest footprint, searches wait
    SEARCH = "search"
    INGEST = "ingest"
    IO = "io"
    INDEX = "index"


ROLE_QUEUES: dict[Role, tuple[str, ...]] = {
    Role.SEARCH: (SEARCH_QUEUE,),
    # The ingest role drains the queue that everything shared before the split, so messages
    # queued before an upgrade still run (any task can run where the model is loaded).
    Role.INGEST: (INGEST_QUEUE, LEGACY_PIPELINE_QUEUE),
    Role.IO: (IO_QUEUE,),
    Role.INDEX: (INDEX_QUEUE,),
    Role.ALL: (*QUEUES, LEGACY_PIPELINE_QUEUE),
}


class WorkerConfigError(ValueError):
    """A worker request that would break an invariant; the message says what to run instead."""


@dataclass(frozen=True)
class ProcessSpec:
    """One worker process: what it consumes and how it runs tasks."""

    name: str
    queues: tuple[str, ...]
    pool: str
    concurrency: int

    @property
    def loads_pipeline(self) -> bool:
        return bool(PIPELINE_QUEUES.intersection(self.queues))

    @property
    def writes_index(self) -> bool:
        return INDEX_QUEUE in self.queues

    @property
    def bulk_only(self) -> bool:
        """Only bulk work: nothing here is waited on by a person at that moment."""
        return set(self.queues) <= {INGEST_QUEUE, LEGACY_PIPELINE_QUEUE}


def default_pool(queues: tuple[str, ...]) -> tuple[str, int]:
    """Pool and concurrency for a process consuming ``queues`` when none is asked."""
    if queues == (IO_QUEUE,):
        return "threads", IO_THREADS
    # TensorFlow spreads one batch over every core already, and the index has one writer:
    # one task at a time. More throughput is more processes (replicas), not a wider pool.
    return "solo", 1


def auto_layout(*, embedded_index: bool) -> list[ProcessSpec]:
    """The processes `facesearch worker` starts by default: searches never wait behind bulk
    work, because they have a process of their own."""
    io = ProcessSpec("io", (IO_QUEUE,), "threads", IO_THREADS)
    ingest = ProcessSpec("ingest", ROLE_QUEUES[Role.INGEST], "solo", 1)
    if embedded_index:
        # One process only may open the milvus-lite path: the searches read the index where
        # it is written. Index batches are short, so searches wait seconds at most.
        return [ProcessSpec("search+index", (SEARCH_QUEUE, INDEX_QUEUE), "solo", 1), ingest, io]
    return [
        ProcessSpec("search", (SEARCH_QUEUE,), "solo", 1),
        ingest,
        io,
        ProcessSpec("index", (INDEX_QUEUE,), "solo", 1),
    ]


def parse_queues(text: str) -> tuple[str, ...]:
    queues = tuple(dict.fromkeys(q.strip() for q in text.split(",") if q.strip()))
    known = {*QUEUES, LEGACY_PIPELINE_QUEUE}
    unknown = [q for q in queues if q not in known]
    if unknown or not queues:
        raise WorkerConfigError(
            f"unknown queue(s) {', '.join(unknown) or '(none given)'}; "
            f"the queues are {', '.join(QUEUES)}"
        )
    return queues


def plan_process(
    role: Role,
    *,
    queues: str | None,
    pool: str | None,
    concurrency: int | None,
    embedded_index: bool,
) -> ProcessSpec:
    """The one process a role (or an explicit queue list) asks for, checked."""
    if role is Role.AUTO:
        raise WorkerConfigError("the auto role is a layout of several processes")
    chosen = parse_queues(queues) if queues else ROLE_QUEUES[role]
    default_pool_name, default_concurrency = default_pool(chosen)
    spec = ProcessSpec(
        name=role.value if not queues else "+".join(chosen),
        queues=chosen,
        pool=pool or default_pool_name,
        concurrency=concurrency
        or (default_concurrency if pool in (None, default_pool_name) else 0),
    )
    check(spec, embedded_index=embedded_index)
    return spec


def check(spec: ProcessSpec, *, embedded_index: bool) -> None:
    if spec.writes_index and (spec.pool != "solo" and spec.concurrency != 1):
        raise WorkerConfigError(
            "the index queue takes exactly one writer, one task at a time: run it with "
            "--pool solo (or --concurrency 1)"
        )
    if spec.pool == "solo" and spec.concurrency not in (0, 1):
        raise WorkerConfigError("--pool solo runs one task at a time: drop --concurrency")
    if embedded_index and SEARCH_QUEUE in spec.queues and INDEX_QUEUE not in spec.queues:
        raise WorkerConfigError(
            "with an embedded index (a milvus-lite path) one process only may open it: the "
            "searches must run where the index is written (`facesearch worker`, or --queues "
            "search,index); or set MILVUS_URI to a Milvus server"
        )
    if embedded_index and spec.writes_index and spec.pool == "prefork":
        raise WorkerConfigError(
            "with an embedded index the process that opens it runs tasks itself: --pool solo"
        )
