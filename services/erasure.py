"""Erasure: removing an image, a person or a whole gallery, with every derived copy; and the
expiry of searches.

Erasing images removes their rows (faces cascade), and every copy made from them: the
search matches that copied their label and box, the matches inside stored webhook payloads
(and the receivers' answers to those, which may echo them), the file names of the job items
that brought them in, and their ids in job results. Their bytes go in the same transaction,
before its commit (:func:`remove_unused_objects`): content-addressed bytes are kept while
another gallery's image or a search query has them. Their vectors go by a task to the index
writer (:func:`queue_vector_deletions`).

Every function here takes a session and never commits.
"""

from __future__ import annotations

import copy
import json
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import String, and_, case, cast, delete, exists, func, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from core.logging import get_logger
from core.storage import ObjectStore
from models import (
    ApiKey,
    DeliveryAttempt,
    Face,
    Gallery,
    Image,
    Job,
    JobItem,
    JobKind,
    JobStatus,
    Search,
    SearchFace,
    SearchMatch,
    VectorDeletion,
    WebhookDelivery,
    WebhookEvent,
    WebhookSubscription,
    utcnow,
)
from services.content import lock_objects, note_deletions
from services.jobs import close_job

log = get_logger(__name__)

# What an erased image's job item is called from then on, and the note on it.
ERASED_NAME = "(erased)"
ERASED_NOTE = "the image was erased"
CANCELLED_FOR_ERASURE = "the gallery is being erased"
# Ids per IN (...) list: far below any driver's limit on bound parameters.
CHUNK = 500
# Face ids per delete-vectors message.
VECTOR_CHUNK = 5000


@dataclass
class Erasure:
    """What an erasure removed, and what must go with it: the bytes under ``object_keys``
    (unless still used) and the vectors of ``vectors``, by model."""

    images: int = 0
    faces: int = 0
    matches: int = 0
    searches: int = 0
    webhook_events: int = 0
    job_items: int = 0
    vectors: dict[str, list[int]] = field(default_factory=dict)
    object_keys: set[str] = field(default_factory=set)

    def add(self, other: Erasure) -> None:
        for name in ("images", "faces", "matches", "searches", "webhook_events", "job_items"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for model_name, ids in other.vectors.items():
            self.vectors.setdefault(model_name, []).extend(ids)
        self.object_keys |= other.object_keys

    def counts(self) -> dict[str, int]:
        return {
            "images": self.images,
            "faces": self.faces,
            "matches": self.matches,
            "searches": self.searches,
            "webhook_events": self.webhook_events,
            "job_items": self.job_items,
        }


def _chunks(values: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


# --- images and people ----------------------------------------------------------------------


def erase_images(
    session: Session,
    *,
    gallery_id: int,
    image_ids: Collection[int],
    label: str | None = None,
    scrub_copies: bool = True,
) -> Erasure:
    """Erase the gallery's images among ``image_ids`` (others' are ignored) and every copy
    made from them. ``label`` also removes copies that name that person only by label (a
    match whose image was deleted before). ``scrub_copies=False`` leaves the searches, events
    and jobs alone: for a gallery's erasure, which deletes them next."""
    erasure = Erasure()
    # The bytes' locks first, then the rows: the order an upload of the same bytes takes
    # them in (services.content), so the two never wait on each other in a circle.
    lock_objects(
        session,
        session.scalars(
            select(Image.object_key).where(
                Image.gallery_id == gallery_id, Image.id.in_(list(image_ids))
            )
        ).all(),
    )
    # Rows locked next: a search that is writing matches of these images either committed
    # before (and its matches are found below) or waits, then finds them gone.
    images = session.execute(
        select(Image.id, Image.object_key)
        .where(Image.gallery_id == gallery_id, Image.id.in_(list(image_ids)))
        .order_by(Image.id)
        .with_for_update()
    ).all()
    if not images and label is None:
        return erasure
    ids = [row.id for row in images]
    faces = (
        session.execute(
            select(Face.id, Face.model_name)
            .where(Face.image_id.in_(ids))
            .order_by(Face.id)
            .with_for_update()
        ).all()
        if ids
        else []
    )
    face_ids = [row.id for row in faces]
    vectors: dict[str, list[int]] = defaultdict(list)
    for row in faces:
        vectors[row.model_name].append(row.id)

    if scrub_copies:
        erasure.matches, search_ids = _remove_matches(
            session, gallery_id=gallery_id, image_ids=ids, face_ids=face_ids, label=label
        )
        erasure.job_items, job_ids = _scrub_job_items(
            session, gallery_id=gallery_id, image_ids=ids, label=label
        )
        erasure.webhook_events = _scrub_events(
            session,
            gallery_id=gallery_id,
            search_ids=search_ids,
            job_ids=job_ids,
            image_ids=set(ids),
            face_ids=set(face_ids),
            label=label,
        )
    if ids:
        session.execute(
            delete(Image).where(Image.id.in_(ids)).execution_options(synchronize_session=False)
        )
    # In this same transaction: the deletion of their vectors is owed until the index
    # writer has done it, whatever happens to the message that asks for it.
    session.add_all(
        VectorDeletion(model_name=model_name, face_id=face_id)
        for model_name, model_face_ids in vectors.items()
        for face_id in model_face_ids
    )
    erasure.images = len(ids)
    erasure.faces = len(face_ids)
    erasure.vectors = dict(vectors)
    erasure.object_keys = {row.object_key for row in images}
    return erasure


def erase_label(session: Session, *, gallery_id: int, label: str) -> Erasure | None:
    """Erase a person from the gallery: every image where a face carries that label, every
    image uploaded with it (even if its faces were relabelled since: the uploader said the
    person is in it), and every copy that names them. The whole image goes, with any other
    face in it: its bytes show the person. None when no image of the gallery has that label."""
    on_a_face = (
        select(Face.image_id)
        .join(Image, Face.image_id == Image.id)
        .where(Image.gallery_id == gallery_id, Face.label == label)
    )
    image_ids = list(
        session.scalars(
            select(Image.id)
            .where(
                Image.gallery_id == gallery_id,
                or_(Image.label == label, Image.id.in_(on_a_face)),
            )
            .order_by(Image.id)
        )
    )
    if not image_ids:
        return None
    erasure = Erasure()
    for chunk in _chunks(image_ids):
        erasure.add(erase_images(session, gallery_id=gallery_id, image_ids=chunk, label=label))
    return erasure


def _remove_matches(
    session: Session,
    *,
    gallery_id: int,
    image_ids: Sequence[int],
    face_ids: Sequence[int],
    label: str | None,
) -> tuple[int, set[str]]:
    """Delete the stored matches of these images or faces (or, in the gallery, of ``label``)
    and close the gaps in the ranks they leave. Returns how many, and their searches."""
    named: list[ColumnElement[bool]] = [
        SearchMatch.image_id.in_(chunk) for chunk in _chunks(image_ids)
    ]
    named += [SearchMatch.face_id.in_(chunk) for chunk in _chunks(face_ids)]
    if label is not None:
        named.append(and_(SearchMatch.label == label, Search.gallery_id == gallery_id))
    if not named:
        return 0, set()
    rows = session.execute(
        select(SearchMatch.id, SearchMatch.search_face_id, SearchFace.search_id)
        .join(SearchFace, SearchMatch.search_face_id == SearchFace.id)
        .join(Search, SearchFace.search_id == Search.id)
        .where(or_(*named))
    ).all()
    if not rows:
        return 0, set()
    for chunk in _chunks([row.id for row in rows]):
        session.execute(
            delete(SearchMatch)
            .where(SearchMatch.id.in_(chunk))
            .execution_options(synchronize_session=False)
        )
    # Ranks stay 1..n: a gap would say that someone was there.
    for search_face_id in sorted({row.search_face_id for row in rows}):
        remaining = session.execute(
            select(SearchMatch.id, SearchMatch.rank)
            .where(SearchMatch.search_face_id == search_face_id)
            .order_by(SearchMatch.rank, SearchMatch.id)
        ).all()
        for rank, match in enumerate(remaining, start=1):
            if match.rank != rank:
                session.execute(
                    update(SearchMatch)
                    .where(SearchMatch.id == match.id)
                    .values(rank=rank)
                    .execution_options(synchronize_session=False)
                )
    return len(rows), {row.search_id for row in rows}


def _scrub_job_items(
    session: Session, *, gallery_id: int, image_ids: Sequence[int], label: str | None
) -> tuple[int, set[str]]:
    """Job items of these images lose their file name and image; jobs' results lose the
    ids. With ``label``, an archive member filed under the person's folder (``label/...``)
    that never became an image loses its name too. Returns how many items, and their jobs."""
    named: list[ColumnElement[bool]] = [JobItem.image_id.in_(chunk) for chunk in _chunks(image_ids)]
    if label is not None:
        named.append(
            and_(
                JobItem.image_id.is_(None),
                JobItem.name.like(f"{_like_escape(label)}/%", escape="\\"),
                JobItem.job_id.in_(select(Job.id).where(Job.gallery_id == gallery_id)),
            )
        )
    if not named:
        return 0, set()
    rows = session.execute(select(JobItem.id, JobItem.job_id).where(or_(*named))).all()
    for chunk in _chunks([row.id for row in rows]):
        session.execute(
            update(JobItem)
            .where(JobItem.id.in_(chunk))
            .values(
                name=ERASED_NAME,
                image_id=None,
                error=case((JobItem.error.is_(None), None), else_=ERASED_NOTE),
            )
            .execution_options(synchronize_session=False)
        )
    job_ids = {row.job_id for row in rows}
    erased = set(image_ids)
    for job in session.scalars(select(Job).where(Job.id.in_(job_ids))):
        listed = (job.result or {}).get("image_ids")
        if isinstance(listed, list) and erased.intersection(listed):
            job.result = {**job.result, "image_ids": [i for i in listed if i not in erased]}
    return len(rows), job_ids


def _scrub_events(
    session: Session,
    *,
    gallery_id: int,
    search_ids: Collection[str],
    job_ids: Collection[str],
    image_ids: set[int],
    face_ids: set[int],
    label: str | None,
) -> int:
    """Remove the erased matches (and image ids) from the gallery's stored webhook payloads,
    and the receivers' answers to them. Returns how many events changed."""
    candidates = [
        WebhookEvent.payload[("data", "search_id")].as_string().in_(chunk)
        for chunk in _chunks(sorted(search_ids))
    ]
    candidates += [
        WebhookEvent.payload[("data", "job_id")].as_string().in_(chunk)
        for chunk in _chunks(sorted(job_ids))
    ]
    if label is not None:
        # A payload that names the person only by label: found in its text, however the
        # database spells the JSON (Postgres keeps UTF-8, SQLite stores \u escapes).
        text = cast(WebhookEvent.payload, String)
        spellings = {json.dumps(label)[1:-1], json.dumps(label, ensure_ascii=False)[1:-1]}
        candidates += [text.contains(s, autoescape=True) for s in spellings]
    if not candidates:
        return 0
    changed: list[str] = []
    events = session.scalars(
        select(WebhookEvent)
        .where(WebhookEvent.gallery_id == gallery_id, or_(*candidates))
        .with_for_update()
    )
    for event in events:
        scrubbed = scrub_payload(event.payload, image_ids=image_ids, face_ids=face_ids, label=label)
        if scrubbed is not None:
            event.payload = scrubbed
            changed.append(event.id)
    session.flush()
    for chunk in _chunks(changed):
        session.execute(
            update(DeliveryAttempt)
            .where(
                DeliveryAttempt.delivery_id.in_(
                    select(WebhookDelivery.id).where(WebhookDelivery.event_id.in_(chunk))
                )
            )
            .values(response_excerpt=None)
            .execution_options(synchronize_session=False)
        )
    return len(changed)


def scrub_payload(
    payload: dict[str, Any],
    *,
    image_ids: Collection[int],
    face_ids: Collection[int],
    label: str | None = None,
) -> dict[str, Any] | None:
    """A copy of a webhook payload without the matches of these images, faces or label
    (ranks closed up, counts corrected), and without these images in a job's result or
    items; None when nothing in it names them."""
    result = copy.deepcopy(payload)
    data = result.get("data")
    if not isinstance(data, dict):
        return None

    def named(match: Any) -> bool:
        return isinstance(match, dict) and (
            match.get("image_id") in image_ids
            or match.get("face_id") in face_ids
            or (label is not None and match.get("label") == label)
        )

    changed = _scrub_faces(data, named)
    changed = _scrub_items(data, image_ids) or changed
    changed = _scrub_result(data, image_ids) or changed
    return result if changed else None


def _scrub_faces(data: dict[str, Any], named: Callable[[Any], bool]) -> bool:
    faces = data.get("faces")
    if not isinstance(faces, list):
        return False
    changed = False
    for face in faces:
        matches = face.get("matches") if isinstance(face, dict) else None
        if not isinstance(matches, list) or not any(named(m) for m in matches):
            continue
        kept = [m for m in matches if not named(m)]
        for rank, match in enumerate(kept, start=1):
            if isinstance(match, dict) and "rank" in match:
                match["rank"] = rank
        face["matches"] = kept
        changed = True
    if changed and "match_count" in data:
        data["match_count"] = sum(len(f.get("matches") or []) for f in faces if isinstance(f, dict))
    return changed


def _scrub_items(data: dict[str, Any], image_ids: Collection[int]) -> bool:
    items = data.get("items")
    if not isinstance(items, list):
        return False
    changed = False
    for item in items:
        if isinstance(item, dict) and item.get("image_id") in image_ids:
            item.update(name=ERASED_NAME, image_id=None)
            if item.get("error") is not None:
                item["error"] = ERASED_NOTE
            changed = True
    return changed


def _scrub_result(data: dict[str, Any], image_ids: Collection[int]) -> bool:
    job_result = data.get("result")
    if not isinstance(job_result, dict) or not isinstance(job_result.get("image_ids"), list):
        return False
    listed = job_result["image_ids"]
    if not any(i in image_ids for i in listed):
        return False
    job_result["image_ids"] = [i for i in listed if i not in image_ids]
    return True


# --- searches: expiry and erasure -------------------------------------------------------------


def erase_searches(session: Session, search_ids: Collection[str]) -> Erasure:
    """Delete these searches with their jobs, faces, matches, callbacks and the webhook
    events about them (deliveries and attempts cascade). Their query bytes are in
    ``object_keys``, for :func:`remove_unused_objects`."""
    erasure = Erasure()
    rows = session.execute(
        select(Search.id, Search.job_id, Search.query_object_key)
        .where(Search.id.in_(list(search_ids)))
        .with_for_update()
    ).all()
    if not rows:
        return erasure
    ids = [row.id for row in rows]
    job_ids = [row.job_id for row in rows]
    erasure.matches = int(
        session.scalar(
            select(func.count(SearchMatch.id))
            .join(SearchFace, SearchMatch.search_face_id == SearchFace.id)
            .where(SearchFace.search_id.in_(ids))
        )
        or 0
    )
    about = [WebhookEvent.payload[("data", "search_id")].as_string().in_(ids)]
    about.append(WebhookEvent.payload[("data", "job_id")].as_string().in_(job_ids))
    events = session.execute(
        delete(WebhookEvent).where(or_(*about)).execution_options(synchronize_session=False)
    )
    erasure.webhook_events = int(getattr(events, "rowcount", 0) or 0)
    # The job cascades to its search, the search to its faces, matches and callback.
    session.execute(
        delete(Search).where(Search.id.in_(ids)).execution_options(synchronize_session=False)
    )
    session.execute(
        delete(Job)
        .where(Job.id.in_(job_ids), Job.kind == JobKind.SEARCH)
        .execution_options(synchronize_session=False)
    )
    erasure.searches = len(ids)
    erasure.object_keys = {row.query_object_key for row in rows}
    return erasure


def purge_expired_searches(
    session: Session, *, retention_days: int, limit: int, now: datetime | None = None
) -> Erasure:
    """Erase up to ``limit`` searches older than ``retention_days`` (oldest first)."""
    cutoff = (now or utcnow()) - timedelta(days=retention_days)
    ids = list(
        session.scalars(
            select(Search.id)
            .where(Search.created_at < cutoff)
            .order_by(Search.created_at, Search.id)
            .limit(limit)
        )
    )
    return erase_searches(session, ids)


# --- bytes and vectors ----------------------------------------------------------------------


def object_in_use(session: Session, key: str) -> bool:
    """Whether any image (of any gallery) or search query still has the bytes at ``key``."""
    return bool(
        session.scalar(
            select(
                or_(
                    exists().where(Image.object_key == key),
                    exists().where(Search.query_object_key == key),
                )
            )
        )
    )


def remove_unused_objects(session: Session, store: ObjectStore, keys: Iterable[str]) -> int:
    """Delete the objects that no row uses any more; returns how many. Call it in the
    erasing transaction, after its rows are deleted and before the commit: a store error
    then rolls the rows back (a retry redoes it all), so no object outlives its rows."""
    wanted = sorted(set(keys))
    # An upload of the same bytes waits until this transaction ends (services.content).
    lock_objects(session, wanted)
    removed = 0
    for key in wanted:
        if not object_in_use(session, key):
            store.delete(key)
            removed += 1
    if removed:
        # After the deletions: a reader whose mark predates this one then checks its bytes.
        note_deletions(session)
    return removed


SendTask = Callable[[str, list[int]], None]


def queue_vector_deletions(send: SendTask, vectors: dict[str, list[int]]) -> bool:
    """Ask the index writer to drop these vectors; False if the broker refused. They are
    owed in ``vector_deletions`` (written with the erasure), so the reconciler asks again
    for any the writer has not done; meanwhile searches drop hits whose rows are gone."""
    ok = True
    for model_name, face_ids in sorted(vectors.items()):
        for chunk in _chunks(sorted(face_ids), VECTOR_CHUNK):
            try:
                send(model_name, list(chunk))
            except Exception:  # kombu raises several types for "broker unreachable"
                log.exception("could not queue vector deletion", model=model_name)
                ok = False
    return ok


# --- galleries ----------------------------------------------------------------------------------


def start_gallery_erasure(session: Session, gallery: Gallery) -> Job:
    """Hide the gallery at once (404, keys refused) and make the job that erases it.
    Flushed, not committed; the caller sends the task after its commit."""
    gallery.erasing_since = utcnow()
    job = Job(
        kind=JobKind.ERASE_GALLERY,
        gallery_id=gallery.id,
        total=1,
        params={"gallery_id": gallery.id, "gallery_name": gallery.name},
    )
    session.add(job)
    session.flush()
    return job


@dataclass
class GalleryStep:
    """One bounded step of a gallery's erasure: what it removed (counted into the job's
    result) and the bytes and vectors that must go with it."""

    removed: dict[str, int]
    erasure: Erasure = field(default_factory=Erasure)
    finished: bool = False


@dataclass(frozen=True)
class _Target:
    gallery_id: int
    erase_job_id: str
    batch: int

    @property
    def other_jobs(self) -> ColumnElement[bool]:
        return and_(Job.gallery_id == self.gallery_id, Job.id != self.erase_job_id)


def _cancel_running_jobs(session: Session, t: _Target) -> GalleryStep | None:
    running = list(
        session.scalars(
            select(Job).where(t.other_jobs, Job.status.in_([JobStatus.QUEUED, JobStatus.RUNNING]))
        )
    )
    for job in running:
        # The one way a job ends; its events are not sent (the gallery's subscriptions and
        # events are erased by the steps that follow).
        close_job(session, job, JobStatus.CANCELLED, error=CANCELLED_FOR_ERASURE)
    return GalleryStep({"jobs_cancelled": len(running)}) if running else None


def _erase_some_images(session: Session, t: _Target) -> GalleryStep | None:
    image_ids = list(
        session.scalars(
            select(Image.id)
            .where(Image.gallery_id == t.gallery_id)
            .order_by(Image.id)
            .limit(t.batch)
        )
    )
    if not image_ids:
        return None
    # Its searches, events and jobs are deleted next: no copy in them needs scrubbing.
    erasure = erase_images(
        session, gallery_id=t.gallery_id, image_ids=image_ids, scrub_copies=False
    )
    return GalleryStep({"images": erasure.images, "faces": erasure.faces}, erasure)


def _erase_some_searches(session: Session, t: _Target) -> GalleryStep | None:
    search_ids = list(
        session.scalars(select(Search.id).where(Search.gallery_id == t.gallery_id).limit(t.batch))
    )
    if not search_ids:
        return None
    erasure = erase_searches(session, search_ids)
    return GalleryStep(
        {"searches": erasure.searches, "webhook_events": erasure.webhook_events}, erasure
    )


def _erase_some_events(session: Session, t: _Target) -> GalleryStep | None:
    event_ids = list(
        session.scalars(
            select(WebhookEvent.id).where(WebhookEvent.gallery_id == t.gallery_id).limit(t.batch)
        )
    )
    if not event_ids:
        return None
    # Deliveries and their attempts cascade.
    session.execute(
        delete(WebhookEvent)
        .where(WebhookEvent.id.in_(event_ids))
        .execution_options(synchronize_session=False)
    )
    return GalleryStep({"webhook_events": len(event_ids)})


def _erase_subscriptions(session: Session, t: _Target) -> GalleryStep | None:
    result = session.execute(
        delete(WebhookSubscription)
        .where(WebhookSubscription.gallery_id == t.gallery_id)
        .execution_options(synchronize_session=False)
    )
    count = int(getattr(result, "rowcount", 0) or 0)
    return GalleryStep({"webhook_subscriptions": count}) if count else None


def _erase_some_jobs(session: Session, t: _Target) -> GalleryStep | None:
    jobs = session.execute(
        select(Job.id, Job.kind, Job.params).where(t.other_jobs).limit(t.batch)
    ).all()
    if not jobs:
        return None
    erasure = Erasure()
    # An uploaded archive is the job's own copy (one named by the client is theirs).
    erasure.object_keys = {
        str(row.params["object_key"])
        for row in jobs
        if row.kind == JobKind.ARCHIVE
        and (row.params or {}).get("uploaded")
        and row.params.get("object_key")
    }
    # Their items cascade.
    session.execute(
        delete(Job)
        .where(Job.id.in_([row.id for row in jobs]))
        .execution_options(synchronize_session=False)
    )
    return GalleryStep({"jobs": len(jobs)}, erasure)


def _erase_keys(session: Session, t: _Target) -> GalleryStep | None:
    result = session.execute(
        delete(ApiKey)
        .where(ApiKey.gallery_id == t.gallery_id)
        .execution_options(synchronize_session=False)
    )
    count = int(getattr(result, "rowcount", 0) or 0)
    return GalleryStep({"keys": count}) if count else None


def _erase_gallery_row(session: Session, t: _Target) -> GalleryStep:
    # Under the gallery row's lock (a new row that names the gallery waits for it): if
    # anything arrived meanwhile, the next step takes it.
    gallery = session.get(Gallery, t.gallery_id, with_for_update=True)
    if gallery is None:
        return GalleryStep({}, finished=True)
    leftovers = [
        exists().where(Image.gallery_id == t.gallery_id),
        exists().where(Search.gallery_id == t.gallery_id),
        exists().where(WebhookEvent.gallery_id == t.gallery_id),
        exists().where(WebhookSubscription.gallery_id == t.gallery_id),
        exists().where(t.other_jobs),
        exists().where(ApiKey.gallery_id == t.gallery_id),
    ]
    if session.scalar(select(or_(*leftovers))):
        return GalleryStep({})
    session.execute(
        update(Job)
        .where(Job.id == t.erase_job_id)
        .values(gallery_id=None)
        .execution_options(synchronize_session=False)
    )
    session.delete(gallery)
    return GalleryStep({"galleries": 1}, finished=True)


_GALLERY_STEPS = (
    _cancel_running_jobs,
    _erase_some_images,
    _erase_some_searches,
    _erase_some_events,
    _erase_subscriptions,
    _erase_some_jobs,
    _erase_keys,
)


def erase_gallery_step(
    session: Session, *, gallery_id: int, erase_job_id: str, batch: int
) -> GalleryStep:
    """The next bounded step of erasing a gallery, in an order that leaves no dangling row:
    stop its running jobs, then its images, searches, webhook events and subscriptions,
    jobs (all but ``erase_job_id``), keys and finally the gallery row. Each step finds its
    work afresh, so a step repeated after a crash does nothing twice."""
    target = _Target(gallery_id, erase_job_id, batch)
    for step in _GALLERY_STEPS:
        if (done := step(session, target)) is not None:
            return done
    return _erase_gallery_row(session, target)
