"""Where an ingest worker's time goes, by stage: wall seconds and item counts, per process.

The stages are the plumbing around the model (read, store, fetch, decode, rows, progress,
index requests) and the model itself (detect, embed). Each worker thread adds to the same
process-wide totals, which the ingest loop logs with every batch (``stage_s``), so a
benchmark reads a worker's profile from its last log line without a profiler attached.
A stage timed in two threads at once counts both: the totals are thread time, not wall time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

# The stages, in the order an image meets them; anything else is refused (a typo would
# silently make a new stage).
STAGES = (
    "read",  # an archive's member out of the stream (decompression)
    "validate",  # the cheap check before storing (headers; a reduced JPEG decode)
    "store",  # bytes into the object store
    "scan_rows",  # item and image rows of an archive's members
    "claim",  # pending items claimed for a batch
    "fetch",  # bytes back from the object store (not needed when the worker holds them)
    "decode",  # the one full decode to pixels
    "detect",
    "crop",
    "embed",
    "rows",  # faces, images and items of a batch written
    "progress",  # the job's counters
    "commit",
    "index",  # index requests sent
)


class StageTimes:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seconds: dict[str, float] = dict.fromkeys(STAGES, 0.0)
        self._items: dict[str, int] = dict.fromkeys(STAGES, 0)

    def add(self, stage: str, seconds: float, items: int = 0) -> None:
        if stage not in self._seconds:
            raise ValueError(f"unknown stage {stage!r}; the stages are {', '.join(STAGES)}")
        with self._lock:
            self._seconds[stage] += seconds
            self._items[stage] += items

    @contextmanager
    def timed(self, stage: str, items: int = 0) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.add(stage, time.perf_counter() - started, items)

    def seconds(self) -> dict[str, float]:
        """The totals so far, rounded for a log line; stages not yet met are left out."""
        with self._lock:
            return {stage: round(s, 4) for stage, s in self._seconds.items() if s}

    def items(self) -> dict[str, int]:
        with self._lock:
            return {stage: n for stage, n in self._items.items() if n}

    def reset(self) -> None:
        with self._lock:
            for stage in STAGES:
                self._seconds[stage] = 0.0
                self._items[stage] = 0


# One per process: the worker's threads (reader, loader, model) all add to it.
STAGE_TIMES = StageTimes()
