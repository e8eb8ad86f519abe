"""Adding images to a gallery: one rule for uploads and archives alike.

The same bytes are one image per gallery (content-addressed): a repeat becomes an item
pointing at the image that has them, never a second copy. It is a ``skipped`` item when that
image was processed, or when a live job will still process it; when it is failed, or pending
with no live job left to process it, the new item is pending and its job processes the image
(again): a re-upload is how a stranded or failed image is retried.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.images import ImageInfo, InvalidImageError
from core.storage import ObjectStore, content_key
from models import (
    Image,
    ImageStatus,
    ItemStatus,
    Job,
    JobItem,
    JobKind,
    JobStatus,
    refresh_progress,
)
from services.content import lock_objects

MAX_FILENAME = 255


@dataclass(frozen=True)
class UploadedFile:
    """A file sent to the API, read and checked: valid (``info`` set) or refused (``error``)."""

    filename: str
    data: bytes
    sha256: str
    info: ImageInfo | None = None
    error: InvalidImageError | None = None


def duplicate_reason(image_id: int) -> str:
    return f"the same image is already in the gallery (image {image_id})"


def images_by_digest(
    session: Session, *, gallery_id: int, digests: Iterable[str]
) -> dict[str, Image]:
    """Images of the gallery that have these bytes, by their sha256."""
    wanted = set(digests)
    if not wanted:
        return {}
    images = session.scalars(
        select(Image).where(Image.gallery_id == gallery_id, Image.sha256.in_(wanted))
    )
    return {image.sha256: image for image in images}


def queued_elsewhere(
    session: Session, image_ids: Iterable[int], *, exclude_job_id: str | None = None
) -> dict[int, str]:
    """For each of these images that a live job (queued or running) still has to process,
    that job's id: its work must not be duplicated (two jobs processing one image at once
    would both replace its faces)."""
    ids = set(image_ids)
    if not ids:
        return {}
    statement = (
        select(JobItem.image_id, JobItem.job_id)
        .join(Job, Job.id == JobItem.job_id)
        .where(
            JobItem.image_id.in_(ids),
            JobItem.status == ItemStatus.PENDING,
            Job.status.in_([JobStatus.QUEUED, JobStatus.RUNNING]),
        )
    )
    if exclude_job_id is not None:
        statement = statement.where(JobItem.job_id != exclude_job_id)
    return {image_id: job_id for image_id, job_id in session.execute(statement) if image_id}


def add_known_image(
    item: JobItem, image: Image, *, already_in_job: bool, queued_in: str | None
) -> None:
    """Point ``item`` at an image the gallery already has. An image still pending or failed
    is processed (again) by the item's job, unless this job already has it or another live
    job (``queued_in``) will; a processed one makes the item a skipped repeat."""
    item.image_id = image.id
    if queued_in is not None and not already_in_job:
        item.status = ItemStatus.SKIPPED
        item.error = f"the same image is already queued for processing (job {queued_in})"
        return
    if not already_in_job and image.status in (ImageStatus.PENDING, ImageStatus.FAILED):
        image.status, image.error = ImageStatus.PENDING, None
        item.status, item.error = ItemStatus.PENDING, None
        return
    item.status, item.error = ItemStatus.SKIPPED, duplicate_reason(image.id)


def new_image(
    session: Session,
    *,
    gallery_id: int,
    sha256: str,
    object_key: str,
    info: ImageInfo,
    size_bytes: int,
    filename: str,
    label: str | None,
) -> Image:
    """A pending image row, waiting for the pipeline; added, not flushed: a caller adds a
    batch's images and flushes them together (one INSERT, not a round trip each), after
    which they have their ids."""
    image = Image(
        gallery_id=gallery_id,
        sha256=sha256,
        object_key=object_key,
        content_type=info.content_type,
        size_bytes=size_bytes,
        width=info.width,
        height=info.height,
        filename=re.split(r"[\\/]", filename)[-1][:MAX_FILENAME],
        label=label,
    )
    session.add(image)
    return image


# Object-store requests one upload request has in flight at once: a request of many files
# would otherwise wait for each file's round trips one after another.
STORE_THREADS = 8


def store_files(
    store: ObjectStore, uploads: Sequence[UploadedFile], *, ask_first: bool = True
) -> None:
    """Store each upload's bytes (content-addressed), several at a time; the first error of
    the store is raised. ``ask_first``: see store_file."""
    store_one = partial(store_file, store, ask_first=ask_first)
    if len(uploads) <= 1:
        for upload in uploads:
            store_one(upload)
        return
    with ThreadPoolExecutor(min(STORE_THREADS, len(uploads))) as pool:
        for _ in pool.map(store_one, uploads):
            pass


def store_file(store: ObjectStore, upload: UploadedFile, *, ask_first: bool = True) -> str:
    """Store the bytes under their content address, return the key. ``ask_first``: only if
    the store does not have them yet (a round trip); without, they are put at once, which
    their content address makes harmless if they were there: the cheaper way for bytes that
    are almost surely new."""
    assert upload.info is not None
    key = content_key(upload.sha256)
    if not ask_first or not store.exists(key):
        store.put(key, upload.data, content_type=upload.info.content_type)
    return key


def create_ingest_job(
    session: Session,
    *,
    gallery_id: int,
    store: ObjectStore,
    uploads: Sequence[UploadedFile],
    labels: Sequence[str | None],
    idempotency_key: str | None,
) -> Job:
    """An ingest job with one item per file: refused files fail, repeats of processed images
    are skipped, the rest are stored and get pending images (new, or known ones queued again:
    ``add_known_image``). Flushed, not committed."""
    job = Job(kind=JobKind.INGEST, gallery_id=gallery_id, idempotency_key=idempotency_key)
    session.add(job)
    # The bytes are stored and their rows recorded under the objects' locks: an erasure of
    # the same bytes either finishes first (and they are stored again) or sees these rows.
    lock_objects(session, (content_key(u.sha256) for u in uploads if u.error is None))
    known = images_by_digest(
        session, gallery_id=gallery_id, digests=(u.sha256 for u in uploads if u.error is None)
    )
    busy = queued_elsewhere(session, (image.id for image in known.values()))
    # The request's new images first, all inserted by one flush (not a round trip each); the
    # first file with the bytes makes the image, a repeat in the same request is skipped.
    fresh: dict[str, Image] = {}
    # New to the gallery: put without asking whether the store has the bytes (almost never:
    # another gallery's copy). Queued again: asked first (their bytes are usually there).
    to_store: list[UploadedFile] = []
    to_restore: list[UploadedFile] = []
    for position, upload in enumerate(uploads):
        if upload.error is not None or upload.sha256 in known or upload.sha256 in fresh:
            continue
        assert upload.info is not None
        to_store.append(upload)
        fresh[upload.sha256] = new_image(
            session,
            gallery_id=gallery_id,
            sha256=upload.sha256,
            object_key=content_key(upload.sha256),
            info=upload.info,
            size_bytes=len(upload.data),
            filename=upload.filename,
            label=labels[position],
        )
    if fresh:
        session.flush()
    in_job: set[int] = set()
    for position, upload in enumerate(uploads):
        item = JobItem(position=position, name=upload.filename)
        job.items.append(item)
        if upload.error is not None:
            item.status, item.error = ItemStatus.FAILED, upload.error.message
            continue
        if (image := fresh.pop(upload.sha256, None)) is not None:
            known[upload.sha256] = image
            in_job.add(image.id)
            item.image_id = image.id
            continue
        known_image = known[upload.sha256]
        add_known_image(
            item,
            known_image,
            already_in_job=known_image.id in in_job,
            queued_in=busy.get(known_image.id),
        )
        if item.status == ItemStatus.PENDING:
            to_restore.append(upload)  # a failed image's bytes may be what was missing
        in_job.add(known_image.id)
    store_files(store, to_store, ask_first=False)
    store_files(store, to_restore)
    session.flush()
    refresh_progress(session, job)
    return job


def create_archive_job(
    session: Session,
    *,
    job_id: str,
    gallery_id: int,
    params: dict[str, Any],
    label_from: str,
    idempotency_key: str | None,
) -> Job:
    """An archive job of ``gallery_id``: ``params`` say where the archive is (its object key,
    whether it was uploaded); items are recorded as it is read. Flushed, not committed."""
    job = Job(
        id=job_id,
        kind=JobKind.ARCHIVE,
        gallery_id=gallery_id,
        idempotency_key=idempotency_key,
        params={**params, "label_from": label_from},
    )
    session.add(job)
    session.flush()
    return job
