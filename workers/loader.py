"""The ingest loop's loader: the next batch claimed, fetched and decoded while the model runs.

A model that waits for its input is wasted: on a GPU the surroundings would be the whole
cost. So as soon as the model takes a batch, the next one is claimed (in a transaction of
its own, whose row locks are committed with its outcome later) and its bytes are taken from
what the worker holds or fetched, and decoded, on a few CPU threads (Pillow and the object
store's client release the GIL) while the model works. It stays exactly one batch ahead, so
at most two batches are in memory.

All database work stays in the caller's thread: only fetching and decoding run elsewhere (a
connection that a dependency's outage breaks must not be met by two threads). Items claimed
and not committed yet are left out of the next claim (SQLite has no SKIP LOCKED; on
Postgres the row locks do it anyway).
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
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


@dataclass
class _Claim:
    """A batch claimed ahead, its bytes loading on the pool's threads."""

    loaded: Loaded
    to_load: list[PendingItem]
    loading: list[Future[np.ndarray | str]]


class BatchLoader:
    """Batches claimed one ahead of the model, their bytes fetched and decoded meanwhile.

    Use as a context manager; ``next()`` gives the next batch, or None at the end (then
    ``drained`` says whether nothing was left pending). Every database call is made in the
    caller's thread; only fetching and decoding run on the pool's threads. Leaving the
    context rolls back a batch claimed and not taken (its items are pending again).
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
        self._ahead: _Claim | None = None
        self._ended = False
        self._in_flight: set[int] = set()
        self._pool = ThreadPoolExecutor(LOAD_THREADS, thread_name_prefix="ingest-load")
        # Sessions bound to one connection (the tests' savepoints) cannot hold two
        # transactions at once: then a batch is claimed only when it is asked for.
        self.ahead = not isinstance(sessions.kw.get("bind"), Connection)

    def __enter__(self) -> BatchLoader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._ahead is not None:
                claim, self._ahead = self._ahead, None
                for future in claim.loading:
                    future.cancel()
                # Claimed and never processed: rolled back, its items pending again.
                claim.loaded.session.rollback()
                claim.loaded.session.close()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def next(self) -> Loaded | None:
        """The next batch, loaded; None when there is none (``drained`` says why)."""
        claim = self._ahead if self._ahead is not None else self._claim(wait=True)
        self._ahead = None
        if claim is None:
            return None
        loaded = self._finish(claim)
        self.loaded += 1
        if self.ahead and not self._ended:
            # The next batch loads while the model works on this one.
            self._ahead = self._claim(wait=False)
        return loaded

    def done_with(self, loaded: Loaded) -> None:
        """The batch is committed (or given up): its items may be claimed again."""
        self._in_flight.difference_update(p.item_id for p in loaded.batch)

    def _claim(self, *, wait: bool) -> _Claim | None:
        """Claim a batch and start loading it. Without ``wait``, None when nothing is
        pending yet (asked again at the next call); with it, None only at the end."""
        while not self._ended:
            # A run does at least one batch, however short its budget: it always advances.
            if self.loaded and self.deadline is not None and time.monotonic() >= self.deadline:
                self._ended = True
                break
            # Asked before claiming: a reader that is done by now has committed everything,
            # so an empty claim after a "no" really is the end.
            coming = self.more_coming() if self.more_coming is not None else False
            session = self.sessions()
            try:
                with STAGE_TIMES.timed("claim"):
                    job = session.get(Job, self.job_id)
                    if job is None or job.status.finished:
                        self._ended = True  # deleted or cancelled: what was done is kept
                        break
                    batch = claim_pending(
                        session, self.job_id, self.batch_size, sorted(self._in_flight)
                    )
                if batch:
                    claim = self._start(session, _within_pixels(batch, self.max_batch_pixels))
                    session = None  # type: ignore[assignment]  # handed over with the batch
                    return claim
            finally:
                if session is not None:
                    session.rollback()
                    session.close()
            if not coming:
                self.drained = self._ended = True
                break
            if not wait:
                return None
            time.sleep(PENDING_POLL_S)
        return None

    def _start(self, session: Session, batch: list[PendingItem]) -> _Claim:
        self._in_flight.update(p.item_id for p in batch)
        loaded = Loaded(session, batch)
        to_load: list[PendingItem] = []
        for pending in batch:
            if pending.image_status in (ImageStatus.READY, ImageStatus.NO_FACE):
                loaded.settled.append(pending)
            elif pending.object_key is None:
                loaded.failures.append((pending, DELETED_REASON))
            else:
                to_load.append(pending)
        # copy_context: log lines from the pool's threads carry the task's ids too.
        loading = [
            self._pool.submit(contextvars.copy_context().run, self._load_one, pending)
            for pending in to_load
        ]
        return _Claim(loaded, to_load, loading)

    def _finish(self, claim: _Claim) -> Loaded:
        """Wait for the claim's loading; an error of the store itself is raised here (the
        batch rolled back)."""
        loaded = claim.loaded
        try:
            for pending, future in zip(claim.to_load, claim.loading, strict=True):
                outcome = future.result()
                if isinstance(outcome, str):
                    loaded.failures.append((pending, outcome))
                else:
                    loaded.decoded.append((pending, outcome))
        except BaseException:
            loaded.session.rollback()
            loaded.session.close()
            raise
        return loaded

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
