"""Bytes a worker already holds, so that it does not fetch them back from the object store.

An archive's reader stores each member and, in the same process, the pipeline then needs
those very bytes: fetching them back cost a round trip to the store per image. The reader
leaves them here and the pipeline takes them. The keys are content addresses, so held bytes
are the stored bytes by construction. Bounded by size: when the reader runs far ahead of the
model (it usually does), what does not fit is not held, and is fetched from the store as
before. The oldest are kept rather than the newest: the pipeline takes members in order, so
the oldest are the next it needs.
"""

from __future__ import annotations

import threading
from typing import Protocol

# A few thousand LFW-sized photos, or a few dozen phone photos.
DEFAULT_MAX_BYTES = 64 * 1024 * 1024


class BytesSink(Protocol):
    """Where a reader leaves the bytes it stored: this process's HeldBytes, or the pipe to
    the model's process when the reader runs in a process of its own."""

    def put(self, key: str, data: bytes) -> None: ...


class HeldBytes:
    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._items: dict[str, bytes] = {}
        self._size = 0
        self.hits = 0
        self.misses = 0

    def put(self, key: str, data: bytes) -> None:
        with self._lock:
            if key in self._items or self._size + len(data) > self.max_bytes:
                return
            self._items[key] = data
            self._size += len(data)

    def take(self, key: str) -> bytes | None:
        """The bytes under ``key``, forgotten here (each is read once); None if not held."""
        with self._lock:
            data = self._items.pop(key, None)
            if data is None:
                self.misses += 1
                return None
            self._size -= len(data)
            self.hits += 1
            return data

    @property
    def size(self) -> int:
        with self._lock:
            return self._size

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
