"""Webhooks: subscriptions, the events they are told about, and every delivery attempt.

An event is recorded in the transaction that commits what it reports (a search's result),
with one delivery per interested subscription (and one for the search's own callback URL).
Deliveries are then sent by tasks; each attempt is a row, so a client can see what its
endpoint answered and when the next try is due.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, BigIntId, JSONType, created_at, int_pk, str_enum
from models.job import new_uuid

# Long enough for any URL the destination check accepts (core.destinations.MAX_URL_LENGTH).
URL_LENGTH = 2048


class EventType(enum.StrEnum):
    SEARCH_COMPLETED = "search.completed"  # a search succeeded: its faces and matches
    SEARCH_FAILED = "search.failed"  # a search failed: the reason
    JOB_COMPLETED = "job.completed"  # any job reached a final status


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"  # an attempt is queued or due at next_attempt_at
    SUCCEEDED = "succeeded"  # the endpoint answered 2xx
    FAILED = "failed"  # every attempt failed; POST /v1/deliveries/{id}/redeliver tries again


class WebhookSubscription(Base):
    __tablename__ = "webhook_subscriptions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    # A subscription hears only its own gallery's events.
    gallery_id: Mapped[int] = mapped_column(
        BigIntId, ForeignKey("galleries.id", ondelete="CASCADE"), index=True
    )
    url: Mapped[str] = mapped_column(String(URL_LENGTH))
    events: Mapped[list[str]] = mapped_column(JSONType)
    # Kept in the clear because it must sign every delivery (it is a key, not a password);
    # the API shows it only when it is made or rotated.
    secret: Mapped[str] = mapped_column(String(128))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[created_at]
    secret_rotated_at: Mapped[datetime | None]
    # After a rotation with a grace period, deliveries are signed with both secrets until
    # then, so receivers can switch without rejecting anything.
    previous_secret: Mapped[str | None] = mapped_column(String(128))
    previous_secret_expires_at: Mapped[datetime | None]

    def signing_secrets(self, now: datetime) -> tuple[str, ...]:
        """The secrets a delivery is signed with now: the current one first."""
        expires = self.previous_secret_expires_at
        if self.previous_secret and expires is not None and expires > now:
            return (self.secret, self.previous_secret)
        return (self.secret,)

    deliveries: Mapped[list[WebhookDelivery]] = relationship(
        back_populates="subscription", cascade="all, delete-orphan", passive_deletes=True
    )


class SearchCallback(Base):
    """The callback URL a search was created with, and the secret that signs its delivery."""

    __tablename__ = "search_callbacks"

    search_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("searches.id", ondelete="CASCADE"), primary_key=True
    )
    url: Mapped[str] = mapped_column(String(URL_LENGTH))
    secret: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[created_at]


class WebhookEvent(Base):
    __tablename__ = "webhook_events"

    # Sent as the payload's "id" and the webhook-id header, the same on every
    # attempt and redelivery: receivers deduplicate on it.
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    type: Mapped[EventType] = mapped_column(str_enum(EventType, length=32), index=True)
    gallery_id: Mapped[int] = mapped_column(
        BigIntId, ForeignKey("galleries.id", ondelete="CASCADE"), index=True
    )
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[created_at]


class WebhookDelivery(Base):
    """One event to one destination: a subscription, or a search's callback URL."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("event_id", "subscription_id", name="uq_webhook_deliveries_event_sub"),
        # A subscription's deliveries, newest first (GET /v1/webhooks/{id}/deliveries).
        Index("ix_webhook_deliveries_subscription_created", "subscription_id", "created_at"),
        # Deliveries due for an attempt (a sweep after a lost task message).
        Index("ix_webhook_deliveries_status_next", "status", "next_attempt_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    event_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("webhook_events.id", ondelete="CASCADE"), index=True
    )
    subscription_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("webhook_subscriptions.id", ondelete="CASCADE")
    )
    # Set for a search's own callback (no subscription): its secret signs the delivery.
    callback_search_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("search_callbacks.search_id", ondelete="CASCADE"), index=True
    )
    url: Mapped[str] = mapped_column(String(URL_LENGTH))
    status: Mapped[DeliveryStatus] = mapped_column(
        str_enum(DeliveryStatus), default=DeliveryStatus.PENDING
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    last_attempt_at: Mapped[datetime | None]
    created_at: Mapped[created_at]

    event: Mapped[WebhookEvent] = relationship()
    subscription: Mapped[WebhookSubscription | None] = relationship(back_populates="deliveries")
    callback: Mapped[SearchCallback | None] = relationship()
    attempt_log: Mapped[list[DeliveryAttempt]] = relationship(
        back_populates="delivery",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="DeliveryAttempt.number",
    )


class DeliveryAttempt(Base):
    """What one try got: the status code (none if it never got an answer), how long it took,
    the error, and the start of the response body."""

    __tablename__ = "webhook_delivery_attempts"
    __table_args__ = (
        UniqueConstraint("delivery_id", "number", name="uq_webhook_delivery_attempts_number"),
    )

    id: Mapped[int_pk]
    delivery_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("webhook_deliveries.id", ondelete="CASCADE")
    )
    number: Mapped[int] = mapped_column(Integer)
    attempted_at: Mapped[datetime]
    status_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[int | None] = mapped_column(Integer)
    succeeded: Mapped[bool] = mapped_column(Boolean)
    error: Mapped[str | None] = mapped_column(Text)
    response_excerpt: Mapped[str | None] = mapped_column(Text)

    delivery: Mapped[WebhookDelivery] = relationship(back_populates="attempt_log")
