"""The ingest loop's loader: the next batch claimed, fetched and decoded while the model runs.

A model that waits for its input is wasted: on a GPU the surroundings would be the whole
cost. So one thread claims the next batch of pending items (in its own transaction, whose
row locks the model's thread later commits in), takes or fetches their bytes and decodes
them on a few CPU threads (Pillow and the object store's client release the GIL), while the
model works on the current batch. It stays exactly one batch ahead: it claims the next one
only once the model has taken the last, so at most two batches are in memory.

The loader never writes: on SQLite a second writer in one process would wait on the first.
Items it has handed over and that are not committed yet are left out of its claims (SQLite
has no SKIP LOCKED; on Postgres the row locks do it anyway).
"""

from __future__ import annotations

import contextvars
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import TracebackType

import numpy as np
from sqlalchemy import Connection, select
from sqlalchemy.orm import Session, sessionmaker

from core.images import InvalidImageError, decode_rgb
from core.logging import get_logger
from core.storage import ObjectNotFound, ObjectStore
from models import Image, ImageStatus, ItemStatus, Job, JobItem
from workers.held_bytes import HeldBytes
from workers.stages import STAGE_TIMES

log = get_logger(__name__)

NO_FACE_REASON = "no face found in the image"
DELETED_REASON = "the image was deleted before it was processed"
MISSING_REASON = "the stored image bytes are missing"

# Threads that fetch and decode one batch: enough to overlap the object store's round trips
# and to decode on every core while the model runs.
LOAD_THREADS = 4
# A batch's decoded pixels are capped (at 3 bytes a pixel, ~200 MB): 32 phone photos would
# otherwise take gigabytes, twice over with a batch loaded ahead. An LFW image is 62,500.
MAX_BATCH_PIXELS = 64_000_000
# With nothing pending while more will come (an archive being read), how long to wait
# before claiming again (its reader commits a batch every few hundred ms).
PENDING_POLL_S = 0.25


@dataclass(frozen=True)
class PendingItem:
    item_id: int
    image_id: int | None  # None: the image was deleted before it was processed
    object_key: str | None
    image_status: ImageStatus | None = None
    pixels: int = 0


@dataclass
class Loaded:
    """A claimed batch, ready for the model. Its session holds the items' row locks."""

    session: Session
    batch: list[PendingItem]
    # Items whose image another job processed meanwhile (the same bytes uploaded again
    # while they were pending): they take its outcome instead of being processed twice.
    settled: list[PendingItem] = field(default_factory=list)
    decoded: list[tuple[PendingItem, np.ndarray]] = field(default_factory=list)
    failures: list[tuple[PendingItem, str]] = field(default_factory=list)


def claim_pending(
    session: Session, job_id: str, limit: int, exclude: Sequence[int] = ()
) -> list[PendingItem]:
    """The next pending items, locked for this transaction. SKIP LOCKED lets several workers
    share one job (an archive) without taking the same items; SQLite ignores the clause,
    which is fine for its single embedded worker (``exclude``: what it already holds)."""
    statement = (
        select(JobItem.id, Image.id, Image.object_key, Image.status, Image.width * Image.height)
        .outerjoin(Image, JobItem.image_id == Image.id)
        .where(JobItem.job_id == job_id, JobItem.status == ItemStatus.PENDING)
        .order_by(JobItem.position)
        .limit(limit)
        .with_for_update(of=JobItem, skip_locked=True)
    )
    if exclude:
        statement = statement.where(JobItem.id.not_in(list(exclude)))
    rows = session.execute(statement).all()
    return [
        PendingItem(item_id, image_id, key, status, int(pixels or 0))
        for item_id, image_id, key, status, pixels in rows
    ]


def _within_pixels(batch: list[PendingItem], budget: int) -> list[PendingItem]:
    """The batch's head whose pixels fit ``budget`` (always at least one item)."""
    total = 0
    for n, pending in enumerate(batch):
        total += pending.pixels
        if n and total > budget:
            return batch[:n]
    return batch


class BatchLoader:
    """Claims, fetches and decodes batches in a thread, one ahead of the model.

    Use as a context manager; ``next()`` gives the next batch, or None at the end (then
    ``drained`` says whether nothing was left pending). Leaving the context stops the thread
    and rolls back a batch loaded and not taken.
    """

    def __init__(
        self,
        job_id: str,
        *,
        sessions: sessionmaker[Session],
        store: ObjectStore,
        batch_size: int,
        max_pixels: int,
        held: HeldBytes | None = None,
        more_coming: Callable[[], bool] | None = None,
        deadline: float | None = None,
        max_batch_pixels: int = MAX_BATCH_PIXELS,
    ) -> None:
        self.job_id = job_id
        self.sessions = sessions
        self.store = store
        self.batch_size = batch_size
        self.max_pixels = max_pixels
        self.max_batch_pixels = max_batch_pixels
        self.held = held
        self.more_coming = more_coming
        self.deadline = deadline
        self.drained = False
        self.loaded = 0  # batches handed over so far
        self._ready: queue.Queue[Loaded | BaseException | None] = queue.Queue(maxsize=1)
        self._may_claim = threading.Semaphore(1)  # released when the model takes a batch
        self._stop = threading.Event()
        self._in_flight: set[int] = set()
        self._in_flight_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(LOAD_THREADS, thread_name_prefix="ingest-load")
        self._thread: threading.Thread | None = None
        # Sessions bound to one connection (the tests' savepoints) cannot hold two
        # transactions at once: then each batch is claimed when it is asked for.
        self.ahead = not isinstance(sessions.kw.get("bind"), Connection)

    # --- the model's side --------------------------------------------------------------

    def __enter__(self) -> BatchLoader:
        if not self.ahead:
            return self
        # copy_context: the loader's log lines carry the task's job and task ids too.
        context = contextvars.copy_context()
        self._thread = threading.Thread(
            target=context.run, args=(self._run,), name="ingest-loader", daemon=True
        )
        self._thread.start()
        return self

    def next(self) -> Loaded | None:
        if not self.ahead:
            return self._claim_next()
        item = self._ready.get()
        self._may_claim.release()
        if isinstance(item, BaseException):
            raise item
        return item

    def done_with(self, loaded: Loaded) -> None:
        """The batch is committed (or given up): its items may be claimed again."""
        with self._in_flight_lock:
            self._in_flight.difference_update(p.item_id for p in loaded.batch)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._may_claim.release()  # a loader waiting to claim sees the stop
        while self._thread is not None and self._thread.is_alive():
            self._discard_ready()
            self._thread.join(timeout=0.05)
        self._discard_ready()
        self._pool.shutdown(wait=True)

    def _discard_ready(self) -> None:
        try:
            item = self._ready.get_nowait()
        except queue.Empty:
            return
        if isinstance(item, Loaded):
            # Loaded and never processed: rolled back, its items pending again.
            item.session.rollback()
            item.session.close()

    # --- the loader thread ---------------------------------------------------------------

    def _put(self, item: Loaded | BaseException | None) -> None:
        while not self._stop.is_set():
            try:
                self._ready.put(item, timeout=0.1)
                return
            except queue.Full:
                continue
        if isinstance(item, Loaded):
            item.session.rollback()
            item.session.close()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._may_claim.acquire()
                if self._stop.is_set():
                    return
                loaded = self._claim_next()
                self._put(loaded)
                if loaded is None:
                    return
        except BaseException as exc:  # handed to the model's thread, which raises it
            self._put(exc)

    def _claim_next(self) -> Loaded | None:
        """The next batch; None when there is none (``drained`` says why)."""
        while not self._stop.is_set():
            # A run does at least one batch, however short its budget: it always advances.
            if self.loaded and self.deadline is not None and time.monotonic() >= self.deadline:
                break
            # Asked before claiming: a reader that is done by now has committed everything,
            # so an empty claim after a "no" really is the end.
            coming = self.more_coming() if self.more_coming is not None else False
            session = self.sessions()
            try:
                with STAGE_TIMES.timed("claim"):
                    job = session.get(Job, self.job_id)
                    if job is None or job.status.finished:
                        break  # deleted or cancelled: what was done is kept
                    with self._in_flight_lock:
                        exclude = sorted(self._in_flight)
                    batch = claim_pending(session, self.job_id, self.batch_size, exclude)
                if batch:
                    batch = _within_pixels(batch, self.max_batch_pixels)
                    with self._in_flight_lock:
                        self._in_flight.update(p.item_id for p in batch)
                    loaded = Loaded(session, batch)
                    self._load(loaded)
                    self.loaded += 1
                    session = None  # type: ignore[assignment]  # handed over with the batch
                    return loaded
            finally:
                if session is not None:
                    session.rollback()
                    session.close()
            if not coming:
                self.drained = True
                break
            self._stop.wait(PENDING_POLL_S)
        return None

    def _load(self, loaded: Loaded) -> None:
        to_load: list[PendingItem] = []
        for pending in loaded.batch:
            if pending.image_status in (ImageStatus.READY, ImageStatus.NO_FACE):
                loaded.settled.append(pending)
            elif pending.object_key is None:
                loaded.failures.append((pending, DELETED_REASON))
            else:
                to_load.append(pending)
        for pending, outcome in zip(to_load, self._pool.map(self._load_one, to_load), strict=True):
            if isinstance(outcome, str):
                loaded.failures.append((pending, outcome))
            else:
                loaded.decoded.append((pending, outcome))

    def _load_one(self, pending: PendingItem) -> np.ndarray | str:
        """The item's pixels, or why it has none (an error of the store itself is raised)."""
        assert pending.object_key is not None
        data = self.held.take(pending.object_key) if self.held is not None else None
        if data is None:
            try:
                with STAGE_TIMES.timed("fetch", 1):
                    data = self.store.get(pending.object_key)
            except ObjectNotFound:
                return MISSING_REASON
        try:
            with STAGE_TIMES.timed("decode", 1):
                return decode_rgb(data, max_pixels=self.max_pixels)
        except InvalidImageError as exc:
            return exc.message
