"""Webhook subscriptions: made within a gallery's cap, and their secrets rotated."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.webhook_signing import new_secret
from models import Gallery, WebhookSubscription, utcnow


class TooManySubscriptionsError(Exception):
    """The gallery already has as many subscriptions as it may."""

    def __init__(self, count: int, cap: int) -> None:
        super().__init__(f"{count} subscriptions, the cap is {cap}")
        self.count = count
        self.cap = cap


def subscribe(
    session: Session, *, gallery_id: int, url: str, events: Iterable[str], cap: int
) -> WebhookSubscription:
    """A new subscription of ``gallery_id`` with a fresh secret (flushed, not committed);
    refused past ``cap`` subscriptions. The URL must have been checked by the caller."""
    # The gallery's row, locked: two requests at once cannot both take the last place.
    session.get(Gallery, gallery_id, with_for_update=True)
    count = session.scalar(
        select(func.count())
        .select_from(WebhookSubscription)
        .where(WebhookSubscription.gallery_id == gallery_id)
    )
    if (count or 0) >= cap:
        raise TooManySubscriptionsError(count or 0, cap)
    sub = WebhookSubscription(
        gallery_id=gallery_id, url=url, events=sorted(set(events)), secret=new_secret(), active=True
    )
    session.add(sub)
    session.flush()
    return sub


def rotate_secret(sub: WebhookSubscription, *, previous_valid_s: int) -> None:
    """A new signing secret; the old one also signs for ``previous_valid_s`` more seconds."""
    now = utcnow()
    sub.previous_secret = sub.secret if previous_valid_s else None
    sub.previous_secret_expires_at = (
        now + timedelta(seconds=previous_valid_s) if previous_valid_s else None
    )
    sub.secret = new_secret()
    sub.secret_rotated_at = now
