"""Webhook events and their delivery.

Recording (``services.events``) runs inside the transaction that commits a search's outcome,
so an event exists exactly when its result does; it returns the new deliveries' ids, and the
caller sends one ``facesearch.deliver_webhook`` task per id after the commit.

Delivering: ``attempt_delivery`` makes one attempt (claim, POST, record) and returns the
delay before the next one, or None. The Celery task around it schedules that next attempt;
tests call this function attempt by attempt, so hours of backoff take no time there.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from celery import Celery
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.destinations import (
    AllowList,
    Resolver,
    UnsafeDestinationError,
    check_destination,
    system_resolver,
)
from core.logging import get_logger
from core.queue import DELIVER_WEBHOOK_TASK, broker_options
from core.settings import Settings
from core.webhook_signing import signed_headers
from models import (
    DeliveryAttempt,
    DeliveryStatus,
    EventType,
    WebhookDelivery,
    utcnow,
)
from models.db import session_scope

log = get_logger(__name__)

# Sends the delivery tasks for these ids; called after the commit that created them.
SendDeliveries = Callable[[Sequence[str]], None]

USER_AGENT = "facesearch-webhooks/1"
# A receiver's answer is kept for the delivery log only: read no more than this of it.
RESPONSE_EXCERPT_BYTES = 2048
# Retry delays double from WEBHOOK_RETRY_BASE_S, are capped, and vary by +-25% so that the
# retries of many deliveries to one recovering receiver do not arrive together.
MAX_RETRY_DELAY_S = 6 * 3600
RETRY_JITTER = 0.25
# A delay is waited out in hops of at most this long: on Redis, a message held unacked
# longer than the visibility timeout is delivered a second time (FACTS.md), so a message
# never waits hours. A hop is one message and a few milliseconds of a worker.
MAX_COUNTDOWN_S = 600
# A claimed attempt not recorded within this long (its worker died mid-request) is due again
# for a sweep (``resend_due``); longer than any attempt can take.
CLAIM_LEASE_S = 300
# Events sent to a search's own callback_url (subscriptions choose theirs).
CALLBACK_EVENTS = frozenset({EventType.SEARCH_COMPLETED, EventType.SEARCH_FAILED})


@dataclass(frozen=True)
class DeliveryPolicy:
    """Where and how deliveries may be sent, from settings."""

    allow: AllowList
    connect_timeout_s: float
    read_timeout_s: float
    max_attempts: int
    retry_base_s: float

    @classmethod
    def from_settings(cls, settings: Settings) -> DeliveryPolicy:
        return cls(
            allow=AllowList.parse(settings.webhook_allowed_hosts),
            connect_timeout_s=settings.webhook_connect_timeout_s,
            read_timeout_s=settings.webhook_read_timeout_s,
            max_attempts=settings.webhook_max_attempts,
            retry_base_s=settings.webhook_retry_base_s,
        )


def retry_delay(attempt: int, base_s: float, rng: random.Random | None = None) -> float:
    """Seconds between failed attempt ``attempt`` (1-based) and the next: base * 2^(n-1),
    capped, with jitter. From 45 s: 45 s, 1.5 min, 3 min, ... 3.2 h; 10 attempts ~6.4 h."""
    delay = min(MAX_RETRY_DELAY_S, base_s * 2 ** (attempt - 1))
    low, high = 1 - RETRY_JITTER, 1 + RETRY_JITTER
    return delay * (rng.uniform(low, high) if rng else random.uniform(low, high))  # noqa: S311 (jitter, not a secret)


# --- events -------------------------------------------------------------------------------


def encode_payload(payload: dict[str, Any]) -> bytes:
    """The exact bytes sent (and signed); the same for every attempt of an event."""
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


# --- delivery -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SendOutcome:
    status_code: int | None
    latency_ms: int | None
    error: str | None
    excerpt: str | None

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def send(
    url: str,
    body: bytes,
    *,
    secrets: Sequence[str],
    event_id: str,
    policy: DeliveryPolicy,
    resolver: Resolver = system_resolver,
) -> SendOutcome:
    """POST ``body`` to ``url`` once, signed by ``secrets`` (the current one first) as message
    ``event_id``; never raises for what the destination does."""
    try:
        destination = check_destination(url, policy.allow, resolver)
    except UnsafeDestinationError as exc:
        return SendOutcome(None, None, f"refused before connecting: {exc.message}", None)
    # Connect to the address just checked, not to a second lookup of the name, which a
    # rebinding DNS server could answer differently. Host header and TLS name stay the name.
    target = httpx.URL(url)  # parsed already by check_destination: it cannot fail here
    headers = {
        "Host": target.netloc.decode("ascii"),
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        # Standard Webhooks: webhook-id (the event's id), webhook-timestamp (this attempt's
        # time) and webhook-signature (one signature per secret that signs now).
        **signed_headers(secrets, event_id, body),
    }
    pinned = target.copy_with(host=str(destination.addresses[0]))
    extensions = {"sni_hostname": destination.host} if destination.scheme == "https" else {}
    timeout = httpx.Timeout(
        policy.read_timeout_s, connect=policy.connect_timeout_s, pool=policy.connect_timeout_s
    )
    started = time.monotonic()
    try:
        # No redirects (a 3xx is a failed attempt) and no proxies from the environment: the
        # request goes to the checked address or nowhere.
        with (
            httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client,
            client.stream(
                "POST", pinned, content=body, headers=headers, extensions=extensions
            ) as response,
        ):
            latency_ms = round((time.monotonic() - started) * 1000)
            # The status decides the attempt; the body is only logged, so a receiver that
            # trickles it (each read inside the timeout) cannot hold the worker for long.
            deadline = started + policy.connect_timeout_s + policy.read_timeout_s
            excerpt = bytearray()
            for chunk in response.iter_raw():
                excerpt += chunk
                if len(excerpt) >= RESPONSE_EXCERPT_BYTES or time.monotonic() > deadline:
                    break
    except httpx.TimeoutException as exc:
        return SendOutcome(None, _ms_since(started), f"timed out: {type(exc).__name__}", None)
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        return SendOutcome(None, _ms_since(started), f"{type(exc).__name__}: {exc}", None)
    text = bytes(excerpt[:RESPONSE_EXCERPT_BYTES]).decode("utf-8", errors="replace")
    error = None if response.is_success else f"the endpoint answered {response.status_code}"
    return SendOutcome(response.status_code, latency_ms, error, text or None)


def _ms_since(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


@dataclass(frozen=True)
class _Claim:
    url: str
    body: bytes
    secrets: tuple[str, ...]
    event_id: str


def _claim(session: Session, delivery_id: str, attempt: int) -> _Claim | None:
    """Take attempt ``attempt`` of a pending delivery, or None when it is not due: a
    duplicate task message, a delivery already done, deleted, or paused."""
    delivery = session.get(WebhookDelivery, delivery_id, with_for_update=True)
    if delivery is None or delivery.status != DeliveryStatus.PENDING:
        return None
    if delivery.attempts != attempt - 1:
        return None  # this attempt was already made (a redelivered task message)
    if delivery.subscription is not None:
        if not delivery.subscription.active:
            return None
        secrets = delivery.subscription.signing_secrets(utcnow())
    elif delivery.callback is not None:
        secrets = (delivery.callback.secret,)
    else:
        return None
    delivery.attempts = attempt
    delivery.last_attempt_at = utcnow()
    delivery.next_attempt_at = delivery.last_attempt_at + timedelta(seconds=CLAIM_LEASE_S)
    event = delivery.event
    return _Claim(delivery.url, encode_payload(event.payload), secrets, event.id)


def attempt_delivery(
    delivery_id: str,
    attempt: int,
    *,
    sessions: sessionmaker[Session],
    policy: DeliveryPolicy,
    resolver: Resolver = system_resolver,
    rng: random.Random | None = None,
) -> float | None:
    """Make attempt number ``attempt`` (1-based) of a delivery and record it.

    Returns the seconds to wait before attempt ``attempt + 1``, or None when there is none
    to make: it succeeded, it was the last, or this attempt was not due (a duplicate)."""
    with session_scope(sessions) as session:
        claim = _claim(session, delivery_id, attempt)
    if claim is None:
        log.info("webhook: attempt not due", delivery_id=delivery_id, attempt=attempt)
        return None
    attempted_at = utcnow()
    outcome = send(
        claim.url,
        claim.body,
        secrets=claim.secrets,
        event_id=claim.event_id,
        policy=policy,
        resolver=resolver,
    )
    delay: float | None = None
    with session_scope(sessions) as session:
        delivery = session.get(WebhookDelivery, delivery_id, with_for_update=True)
        if delivery is None:
            return None  # its subscription was deleted meanwhile
        session.add(
            DeliveryAttempt(
                delivery_id=delivery_id,
                number=attempt,
                attempted_at=attempted_at,
                status_code=outcome.status_code,
                latency_ms=outcome.latency_ms,
                succeeded=outcome.succeeded,
                error=outcome.error,
                response_excerpt=outcome.excerpt,
            )
        )
        if delivery.attempts != attempt:
            pass  # a later attempt (a redelivery) was claimed meanwhile: it decides the status
        elif outcome.succeeded:
            delivery.status = DeliveryStatus.SUCCEEDED
            delivery.next_attempt_at = None
        elif attempt >= policy.max_attempts:
            delivery.status = DeliveryStatus.FAILED
            delivery.next_attempt_at = None
        else:
            delay = retry_delay(attempt, policy.retry_base_s, rng)
            delivery.next_attempt_at = utcnow() + timedelta(seconds=delay)
    log.info(
        "webhook: attempt made",
        delivery_id=delivery_id,
        attempt=attempt,
        status_code=outcome.status_code,
        succeeded=outcome.succeeded,
        error=outcome.error,
        retry_in_s=round(delay, 1) if delay is not None else None,
    )
    return delay


def max_countdown_s(settings: Settings) -> float:
    """The longest one delivery message may wait in the broker (see MAX_COUNTDOWN_S)."""
    visibility = broker_options(settings)[1].get("visibility_timeout")
    return min(MAX_COUNTDOWN_S, visibility / 2) if visibility else MAX_COUNTDOWN_S


def resend_due(
    *, sessions: sessionmaker[Session], celery: Celery, grace_s: float = 60, limit: int = 1000
) -> int:
    """Queue the next attempt of pending deliveries whose time has passed without a task
    making it (a message lost to a broker outage, a worker killed mid-attempt); returns how
    many. Harmless next to a live task: the same attempt number is only ever made once."""
    cutoff = utcnow() - timedelta(seconds=grace_s)
    with session_scope(sessions) as session:
        due = session.execute(
            select(WebhookDelivery.id, WebhookDelivery.attempts)
            .where(
                WebhookDelivery.status == DeliveryStatus.PENDING,
                WebhookDelivery.next_attempt_at < cutoff,
            )
            .order_by(WebhookDelivery.next_attempt_at)
            .limit(limit)
        ).all()
    for delivery_id, attempts in due:
        celery.send_task(
            DELIVER_WEBHOOK_TASK, kwargs={"delivery_id": delivery_id, "attempt": attempts + 1}
        )
    return len(due)
