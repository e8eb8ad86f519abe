"""An archive's reader in a process of its own, beside the process that runs the model.

Reading an archive is mostly Python holding the GIL: the object-store client signing and
sending each member, the rows of each scan batch, the reduced decode that validates a member.
In the model's process it shared one GIL with the model's own Python (detection's boxes,
crops, the loader), so a worker on two cores used barely more than one of them while it read
(the stand-in model's archive path: the worker used 0.8 of a core while a core stood idle).
In its own process the reader has a GIL of its own.

The child is started with ``spawn`` (never ``fork``: the parent has TensorFlow's threads) and
lives as long as one task run. It writes its rows and objects itself, through its own engine
and store opened from the same URLs, and sends back through a pipe:

- each member's bytes, for the parent's :class:`~workers.held_bytes.HeldBytes` (the pipeline
  then need not fetch them back from the store),
- its stage times (read, validate, store, scan_rows), so the worker's ``stage_s`` still covers
  the whole path,
- its outcome: whether the archive is fully recorded and the webhook deliveries to send, or
  its error, rebuilt in the parent with its type (a database or store that is away stays an
  error worth retrying, see ``workers.base.TRANSIENT_ERRORS``).

A stop asked of the parent (deadline, cancel, an error in the pipeline) reaches the child
through an Event; a parent that dies outright is noticed by the child, which then stops
after its current batch as on any stop.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, Protocol

import sqlalchemy.exc
import structlog

from core.logging import bind_context, configure_logging, get_logger
from core.settings import Settings
from core.storage import open_store
from models.db import make_engine, make_session_factory
from workers.held_bytes import BytesSink
from workers.stages import STAGE_TIMES

log = get_logger(__name__)

# The child sends its stage times at most this often (and once at its end).
STAGES_EVERY_S = 1.0
# How often the parent looks at its stop event while it waits for the child's messages.
POLL_S = 0.1


@dataclass(frozen=True)
class ReaderConfig:
    """Where the child opens its own database and store, and how it logs: picklable, unlike
    an engine or a client. The scan's limits are the caller's, as on a thread."""

    database_url: str
    storage_url: str
    log_level: str = "INFO"
    log_json: bool | None = None


def reader_config(settings: Settings) -> ReaderConfig:
    """The child's configuration: the worker's own database, store and logging."""
    return ReaderConfig(
        database_url=settings.database_url,
        storage_url=settings.storage_url,
        log_level=settings.log_level,
        log_json=settings.log_json,
    )


class StopSignal(Protocol):
    """A threading.Event, a multiprocessing one, or anything else that says when to stop."""

    def is_set(self) -> bool: ...


@dataclass
class _StopOrOrphaned:
    """Set when the parent asks, or when the parent is gone (the child is then adopted)."""

    asked: StopSignal
    parent_pid: int

    def is_set(self) -> bool:
        return self.asked.is_set() or os.getppid() != self.parent_pid


class ParentGoneError(Exception):
    """The parent's end of the pipe is closed: it died (a SIGKILL'd worker)."""


class _Sender(BytesSink):
    """The child's end of the pipe. The store threads send members' bytes concurrently: one
    lock keeps each message whole."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._lock = threading.Lock()
        self._sent_stages: dict[str, tuple[float, int]] = {}
        self._stages_at = time.monotonic()

    def send(self, message: tuple[Any, ...]) -> None:
        with self._lock:
            try:
                self._conn.send(message)
            except (BrokenPipeError, ConnectionResetError) as exc:
                raise ParentGoneError from exc

    def put(self, key: str, data: bytes) -> None:
        self.send(("held", key, data))
        if time.monotonic() - self._stages_at >= STAGES_EVERY_S:
            self.send_stages()

    def send_stages(self) -> None:
        """The stage times added since the last send (the parent adds them to its own)."""
        seconds, items = STAGE_TIMES.seconds(), STAGE_TIMES.items()
        delta: dict[str, tuple[float, int]] = {}
        for stage, total in seconds.items():
            sent_s, sent_n = self._sent_stages.get(stage, (0.0, 0))
            n = items.get(stage, 0)
            if total > sent_s or n > sent_n:
                delta[stage] = (total - sent_s, n - sent_n)
            self._sent_stages[stage] = (total, n)
        self._stages_at = time.monotonic()
        if delta:
            self.send(("stages", delta))


def _portable(exc: BaseException) -> BaseException:
    """``exc``, or the nearest exception that survives the pipe with its meaning to the
    retry policy: the same type, else its nearest base class that does, with its text (a
    driver's own error inside a database error, say, may not unpickle)."""

    def survives(candidate: BaseException) -> bool:
        try:
            pickle.loads(pickle.dumps(candidate))  # noqa: S301 (our own object, just made)
        except Exception:  # any failure means: not this one
            return False
        return True

    if survives(exc):
        return exc
    for cls in type(exc).__mro__:
        if not issubclass(cls, BaseException):
            continue
        rebuilt: BaseException
        try:
            if isinstance(exc, sqlalchemy.exc.DBAPIError) and issubclass(
                cls, sqlalchemy.exc.DBAPIError
            ):
                rebuilt = cls(exc.statement, None, RuntimeError(str(exc.orig)))
            else:
                rebuilt = cls(str(exc))
        except Exception:  # noqa: S112 (a constructor with other arguments: the next class)
            continue
        if survives(rebuilt):
            return rebuilt
    return RuntimeError(f"{type(exc).__name__}: {exc}")


def _child(
    *,
    job_id: str,
    config: ReaderConfig,
    limits: dict[str, int | None],
    deadline: float | None,
    stop: StopSignal,
    conn: Connection,
    context: dict[str, Any],
    parent_pid: int,
) -> None:
    """The child's whole life: scan, then say how it went."""
    from workers.archives import scan_archive  # noqa: PLC0415 (the child's own import)

    # A Ctrl-C or a stop sent to the worker's whole process group is the worker's to handle:
    # it stops this child through ``stop`` (or the child sees it gone) after the batch in
    # hand, instead of dying mid-commit and failing the run.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)

    configure_logging(level=config.log_level, json=config.log_json)
    bind_context(**context)
    sender = _Sender(conn)
    engine = make_engine(config.database_url)
    try:
        deliveries: list[str] = []
        complete = scan_archive(
            job_id,
            sessions=make_session_factory(engine),
            store=open_store(config.storage_url),
            deadline=deadline,
            stop=_StopOrOrphaned(stop, parent_pid),
            send_deliveries=deliveries.extend,
            held=sender,
            **limits,  # type: ignore[arg-type]
        )
        sender.send_stages()
        sender.send(("done", complete, deliveries))
    except ParentGoneError:
        # What the child had recorded is committed; the parent's redelivered task reruns
        # the scan from there.
        log.warning("archive reader: the worker is gone, stopping", job_id=job_id)
    except BaseException as exc:  # every error is the parent's to raise
        with contextlib.suppress(ParentGoneError):
            sender.send_stages()
            sender.send(("error", _portable(exc)))
    finally:
        engine.dispose()
        conn.close()


class ReaderExitedError(RuntimeError):
    """The child ended without saying how its scan went (killed, out of memory). Worth a
    retry (``workers.base.TRANSIENT_ERRORS``): a rerun resumes after what it recorded."""


def _take(message: tuple[Any, ...], held: BytesSink | None) -> None:
    """A message from the child on its way: a member's bytes, or stage times."""
    if message[0] == "held":
        if held is not None:
            held.put(message[1], message[2])
    elif message[0] == "stages":
        for stage, (seconds, items) in message[1].items():
            STAGE_TIMES.add(stage, seconds, items)


def scan_in_process(
    job_id: str,
    config: ReaderConfig,
    *,
    deadline: float | None,
    stop: threading.Event,
    held: BytesSink | None,
    max_member_bytes: int,
    max_pixels: int,
    scan_batch: int,
    max_members: int | None = None,
    max_zip_directory_bytes: int | None = None,
    send_deliveries: Callable[[list[str]], None] | None = None,
) -> bool:
    """``workers.archives.scan_archive`` in a child process, with the same limits (None:
    the settings'): True once the archive is fully recorded, False when stopped early. The
    child's error is raised here; so is :class:`ReaderExitedError` when it ends without a
    word. The child has always ended on return."""
    spawn = multiprocessing.get_context("spawn")
    receiving, sending = spawn.Pipe(duplex=False)
    asked = spawn.Event()
    child = spawn.Process(
        target=_child,
        name=f"archive-reader-{job_id}",
        kwargs={
            "job_id": job_id,
            "config": config,
            "limits": {
                "max_member_bytes": max_member_bytes,
                "max_pixels": max_pixels,
                "scan_batch": scan_batch,
                "max_members": max_members,
                "max_zip_directory_bytes": max_zip_directory_bytes,
            },
            "deadline": deadline,
            "stop": asked,
            "conn": sending,
            "context": structlog.contextvars.get_contextvars(),
            "parent_pid": os.getpid(),
        },
        daemon=True,
    )
    child.start()
    sending.close()  # the child holds the only sending end: its exit ends the pipe
    outcome: tuple[Any, ...] | None = None
    try:
        while outcome is None:
            if stop.is_set():
                asked.set()
            if not receiving.poll(POLL_S):
                continue
            try:
                message = receiving.recv()
            except EOFError:
                break  # the child is gone without a last word
            if message[0] in ("done", "error"):
                outcome = message
            else:
                _take(message, held)
    finally:
        asked.set()
        child.join(timeout=30)
        if child.is_alive():  # it never ignores its stop this long unless stuck: end it
            child.kill()
            child.join()
        receiving.close()
    if outcome is None:
        raise ReaderExitedError(
            f"the archive reader process ended without finishing (exit code {child.exitcode})"
        )
    if outcome[0] == "error":
        raise outcome[1]
    _, complete, deliveries = outcome
    if deliveries and send_deliveries is not None:
        send_deliveries(deliveries)
    return bool(complete)
