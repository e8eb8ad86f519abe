"""Re-embedding the gallery with a new face recipe: what it would do, and its job.

Changing how faces are embedded is a model change: the faces of every stored image are
embedded again, from the stored bytes, under the new embedding version, while searches keep
being answered from the version recorded as served (``models.embedding``). When every image
is covered and the new faces are indexed, the served version switches, and the old version's
faces and collection are removed (``workers.reembed`` does the work, on the bulk queue, in
bounded runs). This module is what the CLI needs and imports no face pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, exists, func, select
from sqlalchemy.orm import Session

from core.queue import REEMBED_TASK  # the bulk queue: its workers hold the face pipeline
from models import DEFAULT_GALLERY_ID, Face, Image, ImageStatus, Job, JobKind
from models.embedding import model_of, served_version
from services.jobs import LIVE_STATUSES

__all__ = [
    "EMBEDDED_STATUSES",
    "REEMBED_TASK",
    "Plan",
    "ReembedRefusedError",
    "create_reembed_job",
    "plan",
]

# Images a re-embed takes: those the pipeline has processed. Pending ones are the ingest's
# (its workers embed with the configured recipe already); failed ones have nothing to redo.
EMBEDDED_STATUSES = (ImageStatus.READY, ImageStatus.NO_FACE)


class ReembedRefusedError(Exception):
    """A re-embed that cannot start; the message says why."""


@dataclass(frozen=True)
class Plan:
    version: str  # what the faces will be
    served: str | None  # what searches are answered from now
    images: int  # images to embed again (no face of ``version`` yet)
    faces: int  # faces of other versions of the model, to be replaced


def _images_without(version: str) -> ColumnElement[bool]:
    return ~exists().where(Face.image_id == Image.id, Face.model_name == version)


def plan(session: Session, version: str) -> Plan:
    """What re-embedding with ``version`` would do now."""
    images = session.scalar(
        select(func.count(Image.id)).where(
            Image.status.in_(EMBEDDED_STATUSES), _images_without(version)
        )
    )
    model = model_of(version)
    faces = session.scalar(
        select(func.count(Face.id)).where(
            Face.model_name != version,
            (Face.model_name == model) | Face.model_name.startswith(model + "+"),
        )
    )
    return Plan(
        version=version,
        served=served_version(session, model),
        images=int(images or 0),
        faces=int(faces or 0),
    )


def create_reembed_job(session: Session, version: str) -> Job:
    """The job of a re-embed to ``version`` (the caller sends ``REEMBED_TASK`` after the
    commit). One at a time: two would race to switch the served version."""
    running = session.scalar(
        select(Job.id).where(Job.kind == JobKind.REEMBED, Job.status.in_(LIVE_STATUSES)).limit(1)
    )
    if running is not None:
        raise ReembedRefusedError(f"re-embed job {running} is still running; wait for it to end")
    found = plan(session, version)
    # The gallery is every gallery's; the job is filed under the default one, as a reindex.
    job = Job(
        kind=JobKind.REEMBED,
        gallery_id=DEFAULT_GALLERY_ID,
        total=found.images,
        params={"version": version, "from": found.served, "phase": "embed", "after": 0},
    )
    session.add(job)
    session.flush()
    return job
