"""Recording webhook events and their deliveries, in the transaction that finishes what they
report (a search's result, a job's end). Used by the workers and by the API (jobs it closes
itself). Sending happens after the commit (``core.queue.queue_deliveries``); delivering is
the workers' job (``workers/webhooks.py``).

An event's data is the resource as the API renders it (``services.render``), so a receiver
reads the same fields in a payload as in an answer.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from models import (
    EventType,
    Job,
    JobStatus,
    Search,
    SearchCallback,
    SearchFace,
    WebhookDelivery,
    WebhookEvent,
    WebhookSubscription,
    utcnow,
)
from models.job import new_uuid
from services.render import render_job, render_search

# Above this size (serialized), a search.completed payload leaves out its faces and matches
# and the receiver reads them at `search_url`. 256 KiB stays under common request limits
# (many gateways refuse bodies of 1 MB) while holding a typical result (~300 bytes a match).
MAX_INLINE_RESULT_BYTES = 256 * 1024


def record_event(
    session: Session,
    event_type: EventType,
    data: dict[str, Any],
    *,
    gallery_id: int | None,
    callback: SearchCallback | None = None,
) -> list[str]:
    """Record an event of ``gallery_id`` and one delivery per interested destination of that
    gallery; return their ids. Other galleries' subscriptions never hear of it.

    Nothing is recorded when no one listens (most searches have no subscriber), nor for an
    event without a gallery (an erased gallery's last job: its subscriptions are gone)."""
    if gallery_id is None:
        return []
    subscriptions = [
        s
        for s in session.scalars(
            select(WebhookSubscription).where(
                WebhookSubscription.active.is_(True), WebhookSubscription.gallery_id == gallery_id
            )
        )
        if event_type.value in s.events
    ]
    if not subscriptions and callback is None:
        return []
    now = utcnow()
    event = WebhookEvent(
        id=new_uuid(),
        type=event_type,
        gallery_id=gallery_id,
        payload={
            "id": None,  # filled below: the event id is the payload's id
            "type": event_type.value,
            "created": int(now.timestamp()),
            "data": data,
        },
        created_at=now,
    )
    event.payload["id"] = event.id
    deliveries = [
        WebhookDelivery(id=new_uuid(), event=event, subscription=s, url=s.url, next_attempt_at=now)
        for s in subscriptions
    ]
    if callback is not None:
        deliveries.append(
            WebhookDelivery(
                id=new_uuid(),
                event=event,
                callback_search_id=callback.search_id,
                url=callback.url,
                next_attempt_at=now,
            )
        )
    session.add(event)
    session.add_all(deliveries)
    return [d.id for d in deliveries]


def _jsonable(value: Any) -> Any:
    """A rendering with its datetimes as ISO 8601 text, as the API writes them."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def job_data(job: Job) -> dict[str, Any]:
    """What job.completed says: the job as the API renders it, and its id as ``job_id``."""
    return _jsonable({"job_id": job.id, **render_job(job)})


def record_job_event(session: Session, job: Job) -> list[str]:
    """job.completed for a job that just reached a final status."""
    return record_event(session, EventType.JOB_COMPLETED, job_data(job), gallery_id=job.gallery_id)


def search_result_data(session: Session, search: Search) -> dict[str, Any]:
    """What a search event says: the search as the API renders it (its id also as
    ``search_id``) and, unless too large, its faces and matches."""
    session.flush()  # the faces were just added by id, not through the relationship
    faces = session.scalars(
        select(SearchFace)
        .where(SearchFace.search_id == search.id)
        .options(selectinload(SearchFace.matches))
        .order_by(SearchFace.face_index)
    ).all()
    rendered = _jsonable(render_search(search, faces))
    inline = len(json.dumps(rendered["faces"])) <= MAX_INLINE_RESULT_BYTES
    return {
        "search_id": search.id,
        **rendered,
        "face_count": len(faces),
        "match_count": sum(len(face.matches) for face in faces),
        "faces_included": inline,
        "faces": rendered["faces"] if inline else None,
    }


def record_search_events(session: Session, search: Search) -> list[str]:
    """The events of a search that just finished: search.completed or search.failed (to the
    subscribers and the search's callback_url) and job.completed for its job."""
    event_type = (
        EventType.SEARCH_COMPLETED
        if search.status == JobStatus.SUCCEEDED
        else EventType.SEARCH_FAILED
    )
    callback = session.get(SearchCallback, search.id)
    ids = record_event(
        session,
        event_type,
        search_result_data(session, search),
        gallery_id=search.gallery_id,
        callback=callback,
    )
    ids += record_job_event(session, search.job)
    return ids
