"""Archive ingest: read an archive from the store member by member, and run the pipeline.

While the archive is being read (in a thread: decompression, hashing, object-store writes and
inserts, mostly waiting on I/O), the task's own thread already runs pipeline batches over the
members recorded so far, so reading costs little wall time (it was a fifth of LFW's ingest
when the two ran one after the other). The reader validates each member cheaply (a reduced
JPEG decode) and leaves its bytes to the pipeline (``HeldBytes``), which decodes it once
without fetching it back from the store.

One task run does a bounded amount of work (``budget_s``) and queues its own continuation,
so no run nears the task time limit whatever the archive's size, and a killed run costs at
most one scan batch or one pipeline batch. Everything is keyed so that a rerun finds its
own work: items by (job, position = member index), images by content hash, faces replaced
per image. Scanning twice therefore records each member once.

The pipeline part is :func:`workers.ingest.process_pending`, shared with plain uploads.
"""

from __future__ import annotations

import contextvars
import hashlib
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from core.archives import ArchiveError, Member, iter_members, sniff_format
from core.images import ImageInfo, InvalidImageError, inspect_image
from core.logging import get_logger
from core.settings import get_settings
from core.storage import ObjectNotFound, ObjectStore, content_key
from models import (
    MAX_LABEL,
    Image,
    ItemStatus,
    Job,
    JobItem,
    JobStatus,
    refresh_progress,
    skip_pending_items,
)
from models.db import session_scope
from services.content import deletions_mark, lock_objects
from services.images import add_known_image, images_by_digest, new_image, queued_elsewhere
from services.jobs import close_job
from workers.archive_reader import ReaderConfig, StopSignal, scan_in_process
from workers.held_bytes import BytesSink, HeldBytes
from workers.ingest import IndexRequest, process_pending
from workers.pipeline import FacePipeline
from workers.stages import STAGE_TIMES
from workers.webhooks import SendDeliveries

log = get_logger(__name__)

CANCELLED_REASON = "the job was cancelled before this member was processed"
BYTES_REMOVED_REASON = (
    "the member's bytes were removed while the archive was read (the same photo was erased "
    "meanwhile); ingest it again"
)
# Object-store requests a scan batch has in flight at once.
STORE_THREADS = 8
MAX_NAME = 255
# A commit that meets a concurrent writer (a duplicate delivery of this task, or an upload of
# the same bytes) is redone against what that writer committed.
COMMIT_ATTEMPTS = 3


@dataclass(frozen=True)
class Scanned:
    """A member read, checked and (when usable) stored; not yet recorded."""

    position: int
    name: str
    error: str | None = None
    sha256: str | None = None
    object_key: str | None = None
    info: ImageInfo | None = None
    size: int = 0
    label: str | None = None


def member_label(name: str, label_from: str) -> str | None:
    """The identity a member's path gives: LFW's ``Name/Name_0001.jpg`` -> ``Name``."""
    parts = [p for p in re.split(r"[\\/]+", name) if p]
    if label_from == "folder":
        label = parts[-2] if len(parts) >= 2 else None
    elif label_from == "filename":
        stem = parts[-1].rsplit(".", 1)[0] if parts else ""
        label = re.sub(r"[\s_-]*\d+$", "", stem) or None
    else:
        label = None
    return label[:MAX_LABEL] if label else None


def check_member(
    member: Member,
    *,
    store: ObjectStore,
    label_from: str,
    max_bytes: int,
    max_pixels: int,
    held: BytesSink | None = None,
) -> Scanned:
    """Validate one member (``inspect_image``: it decodes, cheaply) and store its bytes
    content-addressed; ``held`` keeps them for this worker's pipeline, which then need not
    fetch them back."""
    name = member.name[:MAX_NAME]
    if member.error is not None or member.data is None:
        return Scanned(member.index, name, error=member.error or "the member could not be read")
    data = member.data
    if len(data) > max_bytes:
        return Scanned(member.index, name, error=f"the member is larger than {max_bytes:,} bytes")
    if sniff_format(data[:512]) is not None:
        return Scanned(
            member.index,
            name,
            error="the member is an archive; nested archives are not opened (upload it on its own)",
        )
    try:
        with STAGE_TIMES.timed("validate", 1):
            info = inspect_image(data, max_pixels=max_pixels)
    except InvalidImageError as exc:
        return Scanned(member.index, name, error=exc.message)
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        # Pillow can fail while still reading the header of a truncated file.
        return Scanned(member.index, name, error=f"the image data is truncated or corrupt ({exc})")
    with STAGE_TIMES.timed("store", 1):
        # Put without asking first (put_content asks): nearly every member of an archive is
        # new, and asking cost a round trip each. A repeated member is rewritten with the
        # same bytes, which its content address makes harmless.
        digest = hashlib.sha256(data).hexdigest()
        key = content_key(digest)
        store.put(key, data, content_type=info.content_type)
    if held is not None:
        held.put(key, data)
    return Scanned(
        member.index,
        name,
        sha256=digest,
        object_key=key,
        info=info,
        size=len(data),
        label=member_label(member.name, label_from),
    )


def _record(
    session: Session,
    job_id: str,
    gallery_id: int,
    scanned: Sequence[Scanned],
    *,
    still_stored: Callable[[str], bool],
    mark: int | None,
) -> int | None:
    """Item rows (and Image rows for new bytes, in the job's gallery) for a batch of members,
    skipping positions a previous run already recorded.

    The members' bytes were stored before this transaction. Under the objects' locks
    (services.content), a member whose bytes an erasure has removed since fails, instead of
    becoming an image whose bytes are gone. ``mark`` is where the deletion counter stood
    before the batch was stored: where it has not moved since, no bytes were deleted and the
    store is not asked (``still_stored``, a round trip per member). Returns the counter as it
    stands under the locks."""
    lock_objects(session, (s.object_key for s in scanned if s.object_key and s.error is None))
    positions = [s.position for s in scanned]
    done = set(
        session.scalars(
            select(JobItem.position).where(
                JobItem.job_id == job_id, JobItem.position.in_(positions)
            )
        )
    )
    with_bytes = [s for s in scanned if s.sha256]
    known = images_by_digest(
        session, gallery_id=gallery_id, digests=(s.sha256 for s in with_bytes if s.sha256)
    )
    in_job = set(
        session.scalars(
            select(JobItem.image_id).where(
                JobItem.job_id == job_id,
                JobItem.image_id.in_([image.id for image in known.values()]),
            )
        )
    )
    busy = queued_elsewhere(session, (image.id for image in known.values()), exclude_job_id=job_id)
    # The new bytes' presence, under the locks taken above: asked of the store (all at once,
    # a round trip each) only if an erasure has deleted bytes since they were stored.
    to_check = sorted(
        {
            s.object_key
            for s in scanned
            if s.object_key and s.error is None and s.position not in done and s.sha256 not in known
        }
    )
    now = deletions_mark(session)
    if mark is not None and now == mark:
        present = dict.fromkeys(to_check, True)
    else:
        with ThreadPoolExecutor(STORE_THREADS, thread_name_prefix="archive-check") as pool:
            present = dict(zip(to_check, pool.map(still_stored, to_check), strict=True))
    # The batch's new images first, all inserted by one flush (one statement, not a round
    # trip each): the first member with the bytes makes the image, as the loop below expects.
    fresh: dict[str, Image] = {}
    for s in scanned:
        if (
            s.position in done
            or s.error is not None
            or s.sha256 is None
            or s.info is None
            or s.object_key is None
            or s.sha256 in known
            or s.sha256 in fresh
            or not present.get(s.object_key, False)
        ):
            continue
        fresh[s.sha256] = new_image(
            session,
            gallery_id=gallery_id,
            sha256=s.sha256,
            object_key=s.object_key,
            info=s.info,
            size_bytes=s.size,
            filename=s.name,
            label=s.label,
        )
    if fresh:
        session.flush()
    for s in scanned:
        if s.position in done:
            continue
        item = JobItem(job_id=job_id, position=s.position, name=s.name)
        session.add(item)
        if s.error is not None or s.sha256 is None or s.info is None or s.object_key is None:
            item.status, item.error = ItemStatus.FAILED, s.error
            continue
        if (image := fresh.pop(s.sha256, None)) is not None:
            # Its first member; a later one with the same bytes is a repeat (known below).
            known[s.sha256] = image
            in_job.add(image.id)
            item.image_id = image.id
            continue
        if (known_image := known.get(s.sha256)) is not None:
            add_known_image(
                item,
                known_image,
                already_in_job=known_image.id in in_job,
                queued_in=busy.get(known_image.id),
            )
            in_job.add(known_image.id)
            continue
        item.status, item.error = ItemStatus.FAILED, BYTES_REMOVED_REASON
    return now


def _add_to_progress(session: Session, job_id: str, positions: Sequence[int]) -> None:
    """Add the items just recorded at ``positions`` (not yet committed: no other transaction
    sees or changes them) to the job's counters, in one UPDATE.

    This is what refresh_progress would count, without recounting the whole job after each
    batch (its cost grew with every batch: quadratic over an archive). The UPDATE takes the
    job row's lock, as refresh_progress does, so a concurrent recount (the pipeline's) either
    sees these items or is added to; the scan's end recounts once anyway.
    """
    if not positions:
        return
    counts: dict[ItemStatus, int] = {
        status: int(n)
        for status, n in session.execute(
            select(JobItem.status, func.count())
            .where(JobItem.job_id == job_id, JobItem.position.in_(positions))
            .group_by(JobItem.status)
        )
    }
    session.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(
            total=Job.total + sum(counts.values()),
            done=Job.done + counts.get(ItemStatus.SUCCEEDED, 0),
            failed=Job.failed + counts.get(ItemStatus.FAILED, 0),
            skipped=Job.skipped + counts.get(ItemStatus.SKIPPED, 0),
        )
        .execution_options(synchronize_session=False)
    )


@dataclass(frozen=True)
class Recorded:
    """A scan batch committed; ``mark``: the deletion counter read under its locks."""

    mark: int | None


def _commit_batch(
    sessions: sessionmaker[Session],
    store: ObjectStore,
    job_id: str,
    scanned: list[Scanned],
    mark: int | None,
) -> Recorded | None:
    """Record a scanned batch (``mark``: the deletion counter before it was stored); None
    when the job is gone or finished (cancelled)."""
    for attempt in range(COMMIT_ATTEMPTS):
        try:
            with STAGE_TIMES.timed("scan_rows", len(scanned)), session_scope(sessions) as session:
                job = session.get(Job, job_id)
                if job is None or job.status.finished or job.gallery_id is None:
                    return None
                positions = [s.position for s in scanned]
                recorded = set(
                    session.scalars(
                        select(JobItem.position).where(
                            JobItem.job_id == job_id, JobItem.position.in_(positions)
                        )
                    )
                )
                now = _record(
                    session, job_id, job.gallery_id, scanned, still_stored=store.exists, mark=mark
                )
                session.flush()
                _add_to_progress(session, job_id, [p for p in positions if p not in recorded])
            return Recorded(now)
        except IntegrityError:
            if attempt == COMMIT_ATTEMPTS - 1:
                raise
            log.info("archive: concurrent writer, recording the batch again", job_id=job_id)
    return None  # unreachable: the last attempt returns or raises


def _mark_scanned(
    sessions: sessionmaker[Session],
    job_id: str,
    error: str | None,
    position: int,
    send_deliveries: SendDeliveries | None,
) -> None:
    """Record that the whole archive was read (or why not). An archive that could not be
    read at all ends its job; its webhook deliveries are sent after the commit."""
    deliveries = _record_scan_end(sessions, job_id, error, position)
    if deliveries and send_deliveries is not None:
        send_deliveries(deliveries)


def _record_scan_end(
    sessions: sessionmaker[Session], job_id: str, error: str | None, position: int
) -> list[str]:
    with session_scope(sessions) as session:
        job = session.get(Job, job_id)
        if job is None or job.status.finished or job.params.get("scanned"):
            return []  # gone, cancelled, or a duplicate delivery already finished the scan
        if error is not None:
            has_items = session.scalar(
                select(func.count()).select_from(JobItem).where(JobItem.job_id == job_id)
            )
            if not has_items:
                return close_job(session, job, JobStatus.FAILED, error=error)
            # The members before the damage are kept; the damage itself is a failed item so
            # that it is listed with the other failures and the job ends partial.
            session.add(
                JobItem(
                    job_id=job_id,
                    position=position,
                    name="(archive)",
                    status=ItemStatus.FAILED,
                    error=error,
                )
            )
            job.error = error
        job.params = {**job.params, "scanned": True}
        session.flush()
        refresh_progress(session, job)
    return []


class _Recorder:
    """Commits a scan's batches on a thread of its own (``rows``) while the next batch is
    read: the reader stood still for every commit before. One batch at a time, in order, so
    positions are recorded as they come and a rerun's "last recorded position" still holds.

    It also keeps each batch's deletion mark (``_record``): the counter as it stood before
    the batch's first member was stored. The first two batches take the scan's initial mark;
    a later batch takes what its last-but-one batch read under its locks, because that
    commit had ended before this batch was begun.
    """

    def __init__(
        self,
        rows: ThreadPoolExecutor,
        commit: Callable[[list[Scanned], int | None], Recorded | None],
        mark: int | None,
    ) -> None:
        self._rows = rows
        self._commit = commit
        self._committing: Future[Recorded | None] | None = None
        self.mark = mark  # the batch being read now
        self._next_mark = mark  # the batch after it

    def hand_off(self, batch: list[Future[Scanned]]) -> bool:
        """Commit ``batch`` in the background, once the one before it is committed; False
        when the job is gone or finished (cancelled)."""
        if self._committing is not None:
            if (recorded := self._committing.result()) is None:
                return False
            self._next_mark = recorded.mark
        run = partial(self._commit_now, batch, self.mark)
        self._committing = self._rows.submit(contextvars.copy_context().run, run)
        self.mark = self._next_mark
        return True

    def wait(self) -> bool:
        """The batch in flight is committed (its error raised here); False when the job is
        gone or finished."""
        return self._committing is None or self._committing.result() is not None

    def finish(self, batch: list[Future[Scanned]]) -> bool:
        """The batch in flight, then the last (partial) batch, committed here."""
        if not self.wait():
            return False
        return not batch or self._commit_now(batch, self.mark) is not None

    def _commit_now(self, batch: list[Future[Scanned]], mark: int | None) -> Recorded | None:
        return self._commit([f.result() for f in batch], mark)


def scan_archive(
    job_id: str,
    *,
    sessions: sessionmaker[Session],
    store: ObjectStore,
    max_member_bytes: int,
    max_pixels: int,
    scan_batch: int,
    deadline: float | None = None,
    stop: StopSignal | None = None,
    max_members: int | None = None,
    max_zip_directory_bytes: int | None = None,
    send_deliveries: SendDeliveries | None = None,
    held: BytesSink | None = None,
) -> bool:
    """Record every member of the job's archive as an item; True once the whole archive is
    recorded (or unreadable: the job says why), False when stopped early (deadline, cancel,
    ``stop`` set).

    A rerun passes over the members already recorded without reading their bytes. The
    archive's bounds (None: MAX_ARCHIVE_MEMBERS and MAX_ZIP_DIRECTORY_BYTES) are checked as
    it is read: past one, the members before are kept and the job says why.
    """
    settings = get_settings()
    if max_members is None:
        max_members = settings.max_archive_members
    if max_zip_directory_bytes is None:
        max_zip_directory_bytes = settings.max_zip_directory_bytes
    with session_scope(sessions) as session:
        job = session.get_one(Job, job_id)
        if job.params.get("scanned"):
            return True
        key = str(job.params["object_key"])
        uploaded = bool(job.params.get("uploaded"))
        label_from = str(job.params.get("label_from") or "folder")
        last = session.scalar(select(func.max(JobItem.position)).where(JobItem.job_id == job_id))
        # The deletion counter before anything is stored: the first two batches' mark. A
        # later batch's is the one its last-but-one batch read while committing, which
        # ended before this batch's first member was stored (see below).
        mark = deletions_mark(session)
    skip_through = -1 if last is None else int(last)
    batch: list[Future[Scanned]] = []
    error: str | None = None
    position = skip_through
    check = partial(
        check_member,
        store=store,
        label_from=label_from,
        max_bytes=max_member_bytes,
        max_pixels=max_pixels,
        held=held,
    )
    # Members are checked and stored on a few threads (each store is a round trip or two),
    # at most 2 x STORE_THREADS at a time: no more members' bytes than that are held.
    slots = threading.BoundedSemaphore(2 * STORE_THREADS)
    with (
        ThreadPoolExecutor(1, thread_name_prefix="archive-rows") as rows,
        ThreadPoolExecutor(STORE_THREADS, thread_name_prefix="archive-store") as pool,
    ):
        recorder = _Recorder(rows, partial(_commit_batch, sessions, store, job_id), mark)
        try:
            with store.open(key) as stream:
                members = iter_members(
                    stream,
                    max_member_bytes=max_member_bytes,
                    skip_through=skip_through,
                    max_members=max_members,
                    max_zip_directory_bytes=max_zip_directory_bytes,
                )
                for member in _timed(members, "read"):
                    position = member.index
                    slots.acquire()
                    checking = pool.submit(check, member)
                    checking.add_done_callback(lambda _: slots.release())
                    batch.append(checking)
                    if len(batch) >= scan_batch:
                        if not recorder.hand_off(batch):
                            return False
                        batch = []
                        if (deadline is not None and time.monotonic() >= deadline) or (
                            stop is not None and stop.is_set()
                        ):
                            recorder.wait()  # recorded (or its error raised) first
                            return False
        except ObjectNotFound:
            error = f"the archive {key!r} is not in the object store"
        except ArchiveError as exc:
            error = str(exc)
        if not recorder.finish(batch):
            return False
    _mark_scanned(sessions, job_id, error, position + 1, send_deliveries)
    if uploaded:
        # Every member is now its own content-addressed object: the uploaded copy of the
        # archive is no longer needed (an archive named by object_key is the client's: kept).
        store.delete(key)
    log.info("archive: scanned", job_id=job_id, error=error)
    return True


def _timed(members: Iterator[Member], stage: str) -> Iterator[Member]:
    """The members, the time spent reading each one added to ``stage``."""
    while True:
        started = time.perf_counter()
        member = next(members, None)
        STAGE_TIMES.add(stage, time.perf_counter() - started, 1 if member is not None else 0)
        if member is None:
            return
        yield member


def _cancel_leftovers(sessions: sessionmaker[Session], job_id: str) -> None:
    """A cancelled job keeps what was done; whatever is still pending becomes skipped."""
    with session_scope(sessions) as session:
        job = session.get(Job, job_id)
        if job is None or job.status != JobStatus.CANCELLED:
            return
        skip_pending_items(session, job_id, CANCELLED_REASON)
        refresh_progress(session, job)


def run_archive(
    job_id: str,
    *,
    sessions: sessionmaker[Session],
    store: ObjectStore,
    pipeline: FacePipeline,
    request_index: IndexRequest,
    continue_later: Callable[[], None],
    batch_size: int,
    max_pixels: int,
    max_member_bytes: int,
    scan_batch: int,
    budget_s: float,
    parallel_tasks: int = 1,
    send_deliveries: SendDeliveries | None = None,
    reader: ReaderConfig | None = None,
) -> None:
    """One bounded run of an archive job: scan (if not done), then pipeline batches.
    ``send_deliveries`` queues the webhook deliveries of a job that ends here. With
    ``reader``, the archive is read in a process of its own (``workers.archive_reader``),
    opened from those URLs; without, on a thread of this one, with ``sessions`` and ``store``."""
    deadline = time.monotonic() + budget_s
    with session_scope(sessions) as session:
        job = session.get(Job, job_id)
        if job is None or job.status.finished:
            log.info("archive: nothing to do", job_id=job_id)
            return
        job.start()
        scanned = bool(job.params.get("scanned"))
    # The reader's bytes, handed to this run's pipeline instead of fetched back.
    held = HeldBytes()
    process_batches = partial(
        process_pending,
        job_id,
        sessions=sessions,
        store=store,
        pipeline=pipeline,
        request_index=request_index,
        batch_size=batch_size,
        max_pixels=max_pixels,
        deadline=deadline,
        held=held,
    )
    if not scanned:
        # The same scan on a thread of this process or in a child (``reader``).
        scan_options: dict[str, Any] = {
            "max_member_bytes": max_member_bytes,
            "max_pixels": max_pixels,
            "scan_batch": scan_batch,
            "deadline": deadline,
            "send_deliveries": send_deliveries,
            "held": held,
        }
        complete, drained = _scan_while_processing(
            job_id,
            scan=(
                partial(scan_archive, job_id, sessions=sessions, store=store, **scan_options)
                if reader is None
                else partial(scan_in_process, job_id, reader, **scan_options)
            ),
            process=process_batches,
            # Read to the end: other pipeline workers may now share the batches.
            when_read=partial(_continue_n, continue_later, parallel_tasks - 1),
            deadline=deadline,
        )
        if not complete:
            _continue_unless_finished(sessions, job_id, continue_later)
            return
        if drained is None:  # no time was left to run the pipeline beside the reader
            drained = process_batches()
    else:
        drained = process_batches()
    if drained:
        # The indexer closes the job once its faces are searchable (a job that failed as a
        # whole, e.g. not an archive, is already closed and stays as it is).
        request_index(pipeline.embedding_version, job_id)
    else:
        _continue_unless_finished(sessions, job_id, continue_later)


def _continue_n(continue_later: Callable[[], None], n: int) -> None:
    for _ in range(n):
        continue_later()


def _scan_while_processing(
    job_id: str,
    *,
    scan: Callable[..., bool],
    process: Callable[..., bool],
    when_read: Callable[[], None],
    deadline: float,
) -> tuple[bool, bool | None]:
    """Run ``scan(stop=event)`` in a thread (the event is set when it should stop: its
    current batch recorded, it returns) while ``process`` runs pipeline batches here, over the
    members recorded so far and those still to come; (scan complete, pipeline drained, or
    None when the deadline had passed before it could start).

    ``when_read`` runs here once the whole archive is recorded. The reader thread is always
    finished when this returns (a continuation task must never meet a second reader of the
    same job), and its exception, if any, is raised here.
    """
    stop = threading.Event()
    # copy_context: the reader's log lines carry the task's job and task ids too.
    context = contextvars.copy_context()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="archive-reader") as pool:
        reading: Future[bool] = pool.submit(context.run, partial(scan, stop=stop))
        told = False

        def more_coming() -> bool:
            if reading.done():
                reading.result()  # the reader's error ends the pipeline's run too
                return False
            return True

        def after_batch() -> None:
            nonlocal told
            if not told and reading.done() and reading.exception() is None and reading.result():
                told = True
                when_read()

        drained: bool | None = None
        try:
            if time.monotonic() < deadline:
                drained = process(more_coming=more_coming, between_batches=after_batch)
        finally:
            # On an error here (or the task's soft time limit), the reader stops after its
            # current batch instead of reading on to the deadline.
            stop.set()
        complete = reading.result()
    log.info("archive: read while processing", job_id=job_id, complete=complete)
    return complete, drained


def _job_finished(sessions: sessionmaker[Session], job_id: str) -> bool:
    with session_scope(sessions) as session:
        job = session.get(Job, job_id)
        return job is None or job.status.finished


def _continue_unless_finished(
    sessions: sessionmaker[Session], job_id: str, continue_later: Callable[[], None]
) -> None:
    if _job_finished(sessions, job_id):
        _cancel_leftovers(sessions, job_id)
    else:
        continue_later()
