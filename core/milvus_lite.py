"""The embedded index: milvus-lite served inside this process, one process per path.

milvus-lite runs as a gRPC server on a loopback port, started by its own server manager (the
same one pymilvus uses for "*.db" URIs, so other code in the process that opens the same path
shares it instead of tripping over its lock). Several users in one process may share a path:
:func:`acquire` counts them and :func:`release` stops the server when the last one goes.
Another process holding the path is refused with a message that says what to do instead.

What milvus-lite needs beyond a Milvus server (a flush after each write, this lock) stays
here and behind ``VectorIndex.lite``; the index client reads like the Milvus docs. The flush
applies to ``milvus-lite server`` behind a URL too (:func:`is_lite` tells it from a Milvus
server): unflushed rows are brute-forced on every search, and one writer flushing after each
batch survived SIGKILL where unflushed writes were lost (FACTS). A Milvus server persists on
its own and is slowed by flushes, so it never gets one.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

__all__ = ["EmbeddedIndexError", "acquire", "is_lite", "release"]


class EmbeddedIndexError(RuntimeError):
    """The embedded index cannot be opened; the message says why and what to do."""


_lock = threading.Lock()
_users: dict[str, int] = {}
_ours: set[str] = set()  # paths whose server this module started (and so may stop)


def is_lite(server_version: str) -> bool:
    """Whether a server that reports ``server_version`` is milvus-lite: it says
    ``milvus_lite-3.2.2``; a Milvus server says ``v2.6.11`` (or ``v2.3.5-lite`` for the PyPI
    ``milvus`` package, a real standalone server despite the word)."""
    return server_version.strip().lower().startswith("milvus_lite")


def acquire(data_dir: Path) -> str:
    """Start (or share) the server for ``data_dir`` and return its local URI."""
    from milvus_lite.server_manager import server_manager_instance as manager  # noqa: PLC0415

    key = str(data_dir)
    try:
        data_dir.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EmbeddedIndexError(
            f"cannot create the folder of the embedded index {key}: {exc.strerror}"
        ) from exc
    with _lock:
        served_here = key in getattr(manager, "_servers", {})
        if not served_here and locked_by_another_process(data_dir):
            raise EmbeddedIndexError(locked_message(data_dir))
        local_uri = manager.start_and_get_uri(key)
        if local_uri is None:
            # milvus-lite logged the cause; name the likely one (a lost race for the lock).
            if locked_by_another_process(data_dir):
                raise EmbeddedIndexError(locked_message(data_dir))
            raise EmbeddedIndexError(
                f"cannot open the embedded Milvus index at {key} (milvus-lite failed to "
                "start; its log record above says why)"
            )
        if not served_here:
            _ours.add(key)
        _users[key] = _users.get(key, 0) + 1
        return str(local_uri)


def release(data_dir: Path) -> None:
    """One user of ``data_dir`` is done; the last one stops the server (and frees the lock
    for other processes), unless someone else in the process started it."""
    from milvus_lite.server_manager import server_manager_instance as manager  # noqa: PLC0415

    key = str(data_dir)
    with _lock:
        left = _users.get(key, 0) - 1
        if left > 0:
            _users[key] = left
            return
        _users.pop(key, None)
        if key in _ours:
            _ours.discard(key)
            manager.release_server(key)


def locked_by_another_process(data_dir: Path) -> bool:
    """Whether some process holds milvus-lite's ``LOCK`` on ``data_dir`` (an flock).

    Only asked when this process holds no server on that path (flock conflicts within one
    process too). Taking the lock for a moment is the only portable test; a process opening
    the index in that same microsecond would see it busy and fail, which is acceptable for
    an error path.
    """
    import fcntl  # noqa: PLC0415  (POSIX only; milvus-lite uses msvcrt on Windows)

    lock = data_dir / "LOCK"
    try:
        fd = os.open(lock, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def locked_message(data_dir: Path) -> str:
    return (
        f"the embedded Milvus index at {data_dir} is open in another process. "
        "milvus-lite lets only one process open an index path at a time; stop the other "
        "process (e.g. the worker), or serve the index to several processes with "
        "`milvus-lite server --data-dir <path> --host 127.0.0.1 --port 19530` and set "
        "MILVUS_URI=http://127.0.0.1:19530 (or use a Milvus server)."
    )
