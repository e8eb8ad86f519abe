"""Erasure: removing an image, a person or a whole gallery, with every derived copy."""

from __future__ import annotations

from sqlalchemy.orm import Session

from models import Gallery, Job, JobKind, utcnow


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
