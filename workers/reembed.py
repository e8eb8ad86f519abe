"""Re-embed every stored image with the configured face recipe, then serve searches from it.

A re-embed job (``facesearch reembed``, ``services.reembed``) goes through three phases, in
bounded runs on the bulk queue (each run queues its own continuation, as archives and
reindexes do), its state in the job's params:

1. **embed**: images in id order after a cursor, a batch per transaction: the stored bytes
   are fetched, decoded and run through the pipeline, and the faces written under the new
   version with the cursor and the counters in the same commit. A killed run resumes at the
   cursor; a batch is written under the job's row lock and only if the cursor is where the
   run read it, and the image's faces of the new version are replaced, never appended, so a
   redelivered or duplicated run writes nothing twice. Labels carry over: a new face takes
   the label of the old face it overlaps (box IoU >= 0.5), so a label set by hand survives;
   the image's label then goes to its prominent face if that face matched no old face and
   no face holds the label. An image whose bytes are gone (or no longer decode) is failed
   with the reason: it cannot be embedded again, and it does not hold up the switch.
2. **index**: once no image is left, it waits (re-queued with a delay) until the index
   writer has indexed every new face, then switches the served version
   (``models.embedding.ServedVersion``) in one commit. Until then every search is answered
   from the old version, its query embedded with the old recipe; from then on, from the new.
3. **drop**: the old versions' faces are deleted in batches (searches no longer read them),
   then their collections are dropped by the index writer, and the job closes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from core.images import InvalidImageError, decode_rgb
from core.logging import get_logger
from core.storage import ObjectNotFound, ObjectStore
from models import Face, Image, ImageStatus, Job, JobStatus, ServedVersion, utcnow
from models.db import session_scope
from models.embedding import model_of
from models.face import LABEL_IOU, iou, prominent_face
from services.jobs import close_job
from services.reembed import EMBEDDED_STATUSES
from workers.ingest import IndexRequest, _detect_isolating_failures, _face_rows
from workers.loader import NO_FACE_REASON
from workers.pipeline import FacePipeline
from workers.webhooks import SendDeliveries

log = get_logger(__name__)

__all__ = [
    "INDEX_WAIT_S",
    "MISSING_BYTES_REASON",
    "REEMBED_BUDGET_S",
    "carry_labels",
    "run_reembed",
]

# One run embeds this long, then queues its continuation (far below the task time limit).
REEMBED_BUDGET_S = 120.0
# While the index writer catches up, the job looks again after this many seconds.
INDEX_WAIT_S = 5.0
# Failures listed in the job's result (all are counted, and each image records its own).
FAILURES_LISTED = 100
MISSING_BYTES_REASON = "the stored image is missing: its faces could not be embedded again"

# Sends the index writer's task that drops these versions' collections.
DropCollections = Callable[[list[str]], None]
# Queues the job's next run after this many seconds.
ContinueLater = Callable[[float], None]

Box = Sequence[int]


def carry_labels(
    new: Sequence[Box],
    old: Sequence[tuple[Box, str | None]],
    *,
    image_label: str | None,
    width: int,
    height: int,
) -> list[str | None]:
    """The labels of an image's new faces (boxes ``new``) from its old faces (box, label):
    each old face goes to the new face it overlaps most (IoU >= ``LABEL_IOU``, best pairs
    first, one to one) and gives it its label, unlabelled included (a label removed by hand
    stays removed). Then, if no face holds ``image_label``, the prominent face takes it
    when it matched no old face (a face the old recipe did not find)."""
    labels: list[str | None] = [None] * len(new)
    pairs = sorted(
        (
            (iou(nb, ob), i, j)
            for i, nb in enumerate(new)
            for j, (ob, _) in enumerate(old)
            if iou(nb, ob) >= LABEL_IOU
        ),
        reverse=True,
    )
    matched_new: set[int] = set()
    matched_old: set[int] = set()
    for _, i, j in pairs:
        if i in matched_new or j in matched_old:
            continue
        matched_new.add(i)
        matched_old.add(j)
        labels[i] = old[j][1]
    if image_label is not None and image_label not in labels:
        chosen = prominent_face(new, width, height)
        if chosen is not None and chosen not in matched_new:
            labels[chosen] = image_label
    return labels


def run_reembed(
    job_id: str,
    *,
    sessions: sessionmaker[Session],
    store: ObjectStore,
    pipeline: FacePipeline,
    request_index: IndexRequest,
    drop_collections: DropCollections,
    batch_size: int,
    max_pixels: int,
    budget_s: float | None = None,
    continue_later: ContinueLater | None = None,
    send_deliveries: SendDeliveries | None = None,
) -> None:
    """One bounded run of a re-embed job. Without ``continue_later`` it embeds to the end
    in one call and returns where it would wait for the index writer (call it again)."""
    deadline = time.monotonic() + budget_s if budget_s is not None and continue_later else None
    with session_scope(sessions) as session:
        job = session.get(Job, job_id)
        if job is None or job.status.finished:
            return
        version = str(job.params["version"])
        if pipeline.embedding_version != version:
            # A worker of another recipe would write the wrong vectors under this name.
            reason = (
                f"this worker embeds {pipeline.embedding_version}, the job asks for {version}: "
                "configure every worker with the same recipe, then run facesearch reembed again"
            )
            deliveries = close_job(session, job, JobStatus.FAILED, error=reason)
            _send(send_deliveries, deliveries)
            return
        job.start()
    args: dict[str, Any] = {
        "sessions": sessions,
        "store": store,
        "pipeline": pipeline,
        "batch_size": batch_size,
        "max_pixels": max_pixels,
    }
    written = False
    while True:
        phase, after = _state(sessions, job_id)
        if phase is None:
            return
        if phase == "embed":
            done = _embed_batch(job_id, version, after, **args)
            written = written or bool(done)
            if done is None:
                _set_phase(sessions, job_id, "index")
                request_index(version, None)
                continue
        elif phase == "index":
            if not _switch_when_indexed(job_id, version, sessions=sessions):
                request_index(version, None)
                if continue_later is not None:
                    continue_later(INDEX_WAIT_S)
                return
        elif not _drop_batch(job_id, sessions=sessions, batch_size=batch_size):
            _finish(job_id, sessions, drop_collections, send_deliveries)
            return
        if deadline is not None and time.monotonic() >= deadline:
            assert continue_later is not None  # a deadline is only set with a continuation
            if written:
                request_index(version, None)  # what this run wrote is indexed meanwhile
            continue_later(0.0)
            return


def _send(send_deliveries: SendDeliveries | None, deliveries: list[str]) -> None:
    if deliveries and send_deliveries is not None:
        send_deliveries(deliveries)


def _state(sessions: sessionmaker[Session], job_id: str) -> tuple[str | None, int]:
    """The job's phase and cursor; phase None once the job has ended (cancelled, say)."""
    with session_scope(sessions) as session:
        job = session.get(Job, job_id)
        if job is None or job.status.finished:
            return None, 0
        return str(job.params.get("phase", "embed")), int(job.params.get("after", 0))


def _set_phase(sessions: sessionmaker[Session], job_id: str, phase: str, **extra: Any) -> None:
    with session_scope(sessions) as session:
        job = session.get_one(Job, job_id, with_for_update=True)
        job.params = {**job.params, "phase": phase, **extra}


def _embed_batch(
    job_id: str,
    version: str,
    after: int,
    *,
    sessions: sessionmaker[Session],
    store: ObjectStore,
    pipeline: FacePipeline,
    batch_size: int,
    max_pixels: int,
) -> bool | None:
    """Embed the next batch of images after ``after``; None when none is left, else whether
    it wrote (False: another run of the job wrote this batch first)."""
    with session_scope(sessions) as session:
        images = session.execute(
            select(Image.id, Image.object_key)
            .where(Image.id > after, Image.status.in_(EMBEDDED_STATUSES))
            .order_by(Image.id)
            .limit(batch_size)
        ).all()
        if not images:
            return None
        # Images a worker of the new recipe has embedded already (uploads since it changed).
        covered = set(
            session.scalars(
                select(Face.image_id).where(
                    Face.image_id.in_([i.id for i in images]), Face.model_name == version
                )
            )
        )
    failures: dict[int, str] = {}
    decoded: list[tuple[int, Any]] = []
    for image_id, key in images:
        if image_id in covered:
            continue
        try:
            decoded.append((image_id, decode_rgb(store.get(key), max_pixels=max_pixels)))
        except ObjectNotFound:
            failures[image_id] = MISSING_BYTES_REASON
        except InvalidImageError as exc:
            failures[image_id] = f"the stored image no longer decodes: {exc.message}"
    results = _detect_isolating_failures(pipeline, [array for _, array in decoded])
    found: dict[int, list[dict[str, object]]] = {}
    for (image_id, _), result in zip(decoded, results, strict=True):
        if isinstance(result, Exception):
            failures[image_id] = f"the face pipeline could not process it: {result}"
        else:
            found[image_id] = _face_rows(image_id, result, version)
    with session_scope(sessions) as session:
        job = session.get(Job, job_id, with_for_update=True)
        if job is None or job.status.finished or int(job.params.get("after", 0)) != after:
            return False  # a duplicate run got here first: its commit stands
        _write(session, version, found, failures)
        listed = list(job.params.get("failures", []))
        room = FAILURES_LISTED - len(listed)
        listed += [{"image_id": i, "error": e} for i, e in sorted(failures.items())][:room]
        job.params = {**job.params, "after": images[-1].id, "failures": listed}
        job.done += len(found)
        job.failed += len(failures)
        job.total = max(job.total, job.done + job.failed)
    log.info(
        "reembed: batch done",
        job_id=job_id,
        images=len(found),
        failed=len(failures),
        covered=len(covered),
        after=images[-1].id,
    )
    return True


def _write(
    session: Session,
    version: str,
    found: dict[int, list[dict[str, object]]],
    failures: dict[int, str],
) -> None:
    """A batch's faces (labels carried over), image statuses and failures, in this
    transaction."""
    ids = list(found)
    images = {
        row.id: row
        for row in session.execute(
            # Locked: a face relabelled meanwhile (services.faces.set_face_label, which
            # locks the image too) is either read here or sees these faces once committed.
            select(Image.id, Image.label, Image.width, Image.height)
            .where(Image.id.in_(ids))
            .order_by(Image.id)
            .with_for_update()
        )
    }
    old: dict[int, list[tuple[Box, str | None]]] = {}
    for face in session.execute(
        select(Face.image_id, Face.box_x, Face.box_y, Face.box_w, Face.box_h, Face.label).where(
            Face.image_id.in_(ids), Face.model_name != version
        )
    ):
        old.setdefault(face.image_id, []).append(
            ((face.box_x, face.box_y, face.box_w, face.box_h), face.label)
        )
    # Replace, never append: the cursor and the faces commit together, so this batch has no
    # faces of the version yet, unless some were written since it was read (by a run of a
    # job made by hand, say): these take their place.
    session.execute(delete(Face).where(Face.image_id.in_(ids), Face.model_name == version))
    rows: list[dict[str, object]] = []
    statuses = []
    for image_id, faces in found.items():
        image = images.get(image_id)
        if image is None:
            continue  # deleted while it was embedded
        labels = carry_labels(
            [(f["box_x"], f["box_y"], f["box_w"], f["box_h"]) for f in faces],  # type: ignore[misc]
            old.get(image_id, []),
            image_label=image.label,
            width=image.width,
            height=image.height,
        )
        for row, label in zip(faces, labels, strict=True):
            row["label"] = label
        rows.extend(faces)
        statuses.append(
            {"id": image_id, "status": ImageStatus.READY, "error": None}
            if faces
            else {"id": image_id, "status": ImageStatus.NO_FACE, "error": NO_FACE_REASON}
        )
    statuses += [
        {"id": image_id, "status": ImageStatus.FAILED, "error": reason}
        for image_id, reason in failures.items()
    ]
    if rows:
        session.execute(insert(Face), rows)
    live = set(session.scalars(select(Image.id).where(Image.id.in_([s["id"] for s in statuses]))))
    statuses = [s for s in statuses if s["id"] in live]
    if statuses:
        session.execute(update(Image), statuses)


def _switch_when_indexed(job_id: str, version: str, *, sessions: sessionmaker[Session]) -> bool:
    """Switch the served version once every image is covered and every new face indexed;
    False while that is not yet so (the job touched, so it is not taken for stranded)."""
    with session_scope(sessions) as session:
        job = session.get_one(Job, job_id, with_for_update=True)
        after = int(job.params.get("after", 0))
        newer = session.scalar(
            select(Image.id).where(Image.id > after, Image.status.in_(EMBEDDED_STATUSES)).limit(1)
        )
        if newer is not None:
            # Images stored meanwhile (by a worker of the old recipe): embed them first.
            job.params = {**job.params, "phase": "embed"}
            return True
        unindexed = int(
            session.scalar(
                select(func.count(Face.id)).where(
                    Face.model_name == version, Face.indexed_at.is_(None)
                )
            )
            or 0
        )
        if unindexed:
            # A new value each time: the row is written, so the job shows it is alive.
            waits = int(job.params.get("index_waits", 0)) + 1
            job.params = {**job.params, "unindexed": unindexed, "index_waits": waits}
            return False
        model = model_of(version)
        served = session.get(ServedVersion, model, with_for_update=True)
        if served is None:
            session.add(ServedVersion(model_name=model, version=version))
        else:
            served.version, served.switched_at = version, utcnow()
        old = session.scalars(
            select(Face.model_name)
            .where(
                Face.model_name != version,
                (Face.model_name == model) | Face.model_name.startswith(model + "+"),
            )
            .distinct()
        ).all()
        job.params = {**job.params, "phase": "drop", "old": sorted(old), "unindexed": 0}
    log.info("reembed: searches now served from the new version", version=version, old=old)
    return True


def _drop_batch(job_id: str, *, sessions: sessionmaker[Session], batch_size: int) -> int:
    """Delete a batch of the old versions' faces; how many."""
    with session_scope(sessions) as session:
        job = session.get_one(Job, job_id)
        old = list(job.params.get("old", []))
        if not old:
            return 0
        ids = session.scalars(
            select(Face.id).where(Face.model_name.in_(old)).order_by(Face.id).limit(batch_size)
        ).all()
        if ids:
            session.execute(delete(Face).where(Face.id.in_(list(ids))))
            job.params = {**job.params, "dropped": int(job.params.get("dropped", 0)) + len(ids)}
    return len(ids)


def _finish(
    job_id: str,
    sessions: sessionmaker[Session],
    drop_collections: DropCollections,
    send_deliveries: SendDeliveries | None,
) -> None:
    with session_scope(sessions) as session:
        job = session.get_one(Job, job_id)
        if job.status.finished:
            return
        old = list(job.params.get("old", []))
        job.result = {
            "version": job.params["version"],
            "previous": job.params.get("from"),
            "images": job.done,
            "failed": job.failed,
            "failures": job.params.get("failures", []),
            "faces_removed": int(job.params.get("dropped", 0)),
        }
        deliveries = close_job(session, job)
    if old:
        # After the commit: the old faces are gone from Postgres, and no search reads them.
        drop_collections(old)
    _send(send_deliveries, deliveries)
    log.info("reembed: done", job_id=job_id, dropped=old)
