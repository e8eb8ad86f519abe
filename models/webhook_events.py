"""Recording webhook events and their deliveries, in the transaction that finishes what they
report. Used by the workers (searches, jobs they close) and by the API (jobs it closes
itself: a cancellation, an upload with nothing new). Sending happens after the commit
(``core.queue.queue_deliveries``); delivering is the workers' job (``workers/webhooks.py``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.base import utcnow
from models.job import Job, new_uuid
from models.webhook import (
    EventType,
    SearchCallback,
    WebhookDelivery,
    WebhookEvent,
    WebhookSubscription,
)


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


def job_data(job: Job) -> dict[str, Any]:
    return {
        "job_id": job.id,
        "kind": job.kind.value,
        "status": job.status.value,
        "error": job.error,
        "progress": {
            "total": job.total,
            "done": job.done,
            "failed": job.failed,
            "skipped": job.skipped,
        },
        "result": job.result or {},
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
        "job_url": f"/v1/jobs/{job.id}",
    }


def record_job_event(session: Session, job: Job) -> list[str]:
    """job.completed for a job that just reached a final status."""
    return record_event(session, EventType.JOB_COMPLETED, job_data(job), gallery_id=job.gallery_id)
