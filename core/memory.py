"""Handing freed heap memory back to the operating system.

A face-pipeline batch allocates hundreds of MB of short-lived buffers (MTCNN's image
pyramids, the stages' candidate patches, TensorFlow tensors), of sizes that change with every
batch. glibc's malloc keeps what is freed in its arenas for reuse, and with sizes that never
repeat exactly, that reserve grows and wanders: a worker looping the pipeline over LFW sat
between 1,525 and 1,653 MB RSS, up and down from one thousand images to the next, which is
indistinguishable from a leak and costs a third more memory than needed. ``malloc_trim(0)``
after each batch returns the free pages: the same loop held 1,011-1,023 MB over 5,000
images (``scripts/bench_ingest.py`` reports the worker's RSS along the way).

Only glibc has ``malloc_trim``; elsewhere (musl, macOS) this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from functools import lru_cache
from typing import Any

__all__ = ["heap_trim_available", "release_free_heap"]


@lru_cache(maxsize=1)
def _malloc_trim() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc (e.g. musl has no malloc_trim)
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def heap_trim_available() -> bool:
    """Whether this process's C library can give free heap pages back (glibc)."""
    return _malloc_trim() is not None


def release_free_heap() -> bool:
    """Give the C heap's free pages back to the OS. True when some memory was released."""
    trim = _malloc_trim()
    if trim is None:
        return False
    # 0: keep no padding at the top of the heap; also trims every arena, not only the main one.
    return bool(trim(0))
