"""core.memory: free heap pages really go back to the OS, and the pipeline does it per call."""

from __future__ import annotations

import gc

import numpy as np
import psutil
import pytest

from core import memory
from workers.pipeline import FacePipeline
from workers.pipeline import face_pipeline as pipeline_module

MB = 1024 * 1024

glibc_only = pytest.mark.skipif(
    not memory.heap_trim_available(), reason="malloc_trim is glibc's: not in this C library"
)


@glibc_only
def test_release_free_heap_returns_freed_pages_to_the_os() -> None:
    process = psutil.Process()
    # 3,000 blocks of 64 KB (below malloc's mmap threshold, so they live in the heap), each
    # followed by a small block that stays alive: once the big ones are freed, the holes are
    # pinned between live blocks, and malloc keeps them until it is told to trim.
    blocks = []
    keepers = []
    for _ in range(3000):
        blocks.append(bytearray(64 * 1024))
        keepers.append(bytearray(64))
    for block in blocks:
        block[::4096] = b"\x01" * len(block[::4096])  # touch every page: resident
    del blocks
    gc.collect()
    before = process.memory_info().rss

    assert memory.release_free_heap() is True

    released = before - process.memory_info().rss
    assert released > 100 * MB, f"only {released / MB:.0f} MB went back to the OS"
    assert len(keepers) == 3000  # the live blocks were untouched


def test_release_free_heap_is_harmless_when_nothing_is_free() -> None:
    memory.release_free_heap()
    # A second call right after finds nothing more to give back (or no glibc): never raises.
    assert memory.release_free_heap() in (True, False)


@pytest.mark.parametrize("release", [True, False])
def test_pipeline_releases_memory_after_each_call_unless_told_not_to(
    face_pipeline: FacePipeline, monkeypatch: pytest.MonkeyPatch, release: bool
) -> None:
    calls: list[int] = []
    monkeypatch.setattr(pipeline_module, "release_free_heap", lambda: calls.append(1) or True)
    monkeypatch.setattr(face_pipeline, "release_memory", release)
    blank = np.zeros((64, 64, 3), dtype=np.uint8)

    face_pipeline.process([blank])
    face_pipeline.process([blank, blank])

    assert len(calls) == (2 if release else 0)
