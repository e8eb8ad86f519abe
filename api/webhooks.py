"""Webhooks: subscribe a URL to events, see what each delivery got, deliver again.

A subscription's signing secret is in the answer to its creation and to a rotation, never
in any other answer. Destinations are checked before anything is stored
(``core.destinations``) and again before each delivery. Deliveries are signed by the Standard
Webhooks specification (``core.webhook_signing``); the OpenAPI document describes them as
callbacks of the operations that set their URL (``delivery_callbacks``).
"""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from api import schemas
from api.auth import gallery_id, requires
from api.context import db, services
from api.enqueue import SEND_RETRY_POLICY
from api.errors import ApiError
from core.destinations import AllowList, UnsafeDestinationError, check_destination
from core.logging import get_logger
from core.queue import DELIVER_WEBHOOK_TASK
from core.webhook_signing import ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER
from models import (
    DeliveryStatus,
    Scope,
    WebhookDelivery,
    WebhookEvent,
    WebhookSubscription,
    utcnow,
)
from services import urls
from services.webhooks import TooManySubscriptionsError, subscribe
from services.webhooks import rotate_secret as rotate_secret_of

log = get_logger(__name__)
bp = APIBlueprint("webhooks", __name__, url_prefix="/v1", tag="Webhooks")

DEFAULT_DELIVERY_PAGE = 50

SIGNING = (
    "Signed by the Standard Webhooks specification (https://www.standardwebhooks.com/): "
    f"`{ID_HEADER}`, `{TIMESTAMP_HEADER}` and `{SIGNATURE_HEADER}`; verify them with any of its "
    "libraries, or as the README's Webhooks section shows."
)
# The headers every delivery carries, as the OpenAPI document's callbacks describe them.
DELIVERY_HEADERS: list[dict[str, Any]] = [
    {
        "name": ID_HEADER,
        "in": "header",
        "required": True,
        "description": "The event's id (the body's `id`): the same on every retry and "
        "redelivery, so a receiver can ignore an event it already has.",
        "schema": {"type": "string"},
    },
    {
        "name": TIMESTAMP_HEADER,
        "in": "header",
        "required": True,
        "description": "This attempt's time, in unix seconds; refuse one far from your clock "
        "(the libraries allow 5 minutes), a possible replay.",
        "schema": {"type": "integer"},
    },
    {
        "name": SIGNATURE_HEADER,
        "in": "header",
        "required": True,
        "description": "`v1,` and the base64 of the HMAC-SHA256 of `<webhook-id>.<webhook-"
        "timestamp>.<raw body>`, keyed with the bytes the secret's base64 (after `whsec_`) "
        "encodes. During a secret's rotation, one such signature per secret, separated by "
        "spaces: one that verifies is enough. (A secret made before this scheme, `whsec_` and "
        "43 URL-safe characters, is keyed with its own UTF-8 bytes, and its deliveries also "
        "carry the earlier `Facesearch-Signature` and `Facesearch-Event-Id` until it is rotated.)",
        "schema": {"type": "string"},
        "example": "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=",
    },
]
EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "type", "created", "data"],
    "properties": {
        "id": {"type": "string", "description": f"the event's id, also in `{ID_HEADER}`"},
        "type": {"type": "string", "enum": schemas.WEBHOOK_EVENT_TYPES},
        "created": {"type": "integer", "description": "when the event happened (unix seconds)"},
        "data": {
            "type": "object",
            "description": "search.completed and search.failed: the search's outcome (its "
            "faces and matches, or `faces_included: false` and `search_url` when large); "
            "job.completed: the job (see the README's Webhooks section)",
        },
    },
}


def delivery_callbacks(name: str, url: str, events: str) -> dict[str, Any]:
    """An OpenAPI callbacks object: the signed POST sent to ``url`` (a runtime expression
    naming the request field that gave it) for ``events``."""
    return {
        name: {
            url: {
                "post": {
                    "summary": f"A delivery: {events}",
                    "description": f"{SIGNING} Retried with backoff until a 2xx answer; "
                    "redirects are not followed.",
                    "parameters": DELIVERY_HEADERS,
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": EVENT_SCHEMA}},
                    },
                    "responses": {
                        "2XX": {"description": "Received: the delivery succeeded"},
                        "default": {
                            "description": "Anything else, or no answer in time: the attempt "
                            "failed and is retried"
                        },
                    },
                }
            }
        }
    }


def check_webhook_url(url: str) -> None:
    """Refuse (422) a URL that deliveries could not or must not be sent to."""
    allow = AllowList.parse(services().settings.webhook_allowed_hosts)
    try:
        check_destination(url, allow)
    except UnsafeDestinationError as exc:
        raise ApiError(422, f"{url}: {exc.message}", code=exc.code) from exc


def serialize_subscription(sub: WebhookSubscription, *, secret: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": sub.id,
        "url": sub.url,
        "events": sub.events,
        "active": sub.active,
        "created_at": sub.created_at,
        "secret_rotated_at": sub.secret_rotated_at,
        "previous_secret_expires_at": sub.previous_secret_expires_at,
        "deliveries_url": urls.webhook_deliveries_url(sub.id),
    }
    if secret:
        body["secret"] = sub.secret
    return body


def serialize_delivery(delivery: WebhookDelivery) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "event_id": delivery.event_id,
        "event_type": delivery.event.type.value,
        "subscription_id": delivery.subscription_id,
        "search_id": delivery.callback_search_id,
        "url": delivery.url,
        "status": delivery.status.value,
        "attempts": delivery.attempts,
        "next_attempt_at": delivery.next_attempt_at,
        "last_attempt_at": delivery.last_attempt_at,
        "created_at": delivery.created_at,
        "attempt_log": [
            {
                "number": a.number,
                "attempted_at": a.attempted_at,
                "status_code": a.status_code,
                "latency_ms": a.latency_ms,
                "succeeded": a.succeeded,
                "error": a.error,
                "response_excerpt": a.response_excerpt,
            }
            for a in delivery.attempt_log
        ],
    }


def _subscription_or_404(webhook_id: str) -> WebhookSubscription:
    sub = db().get(WebhookSubscription, webhook_id)
    if sub is None or sub.gallery_id != gallery_id():
        raise ApiError(404, f"there is no webhook {webhook_id}")
    return sub


@bp.post("/webhooks")
@bp.input(schemas.WebhookIn, arg_name="body")
@bp.output(schemas.WebhookOut, status_code=201)
@bp.doc(
    summary="Subscribe a URL to events",
    description="Answers with the subscription and its signing `secret` (`whsec_` and the "
    "base64 of the key), shown this once (rotate it to get a new one). Deliveries are JSON "
    f"POSTs to `url` (see the callback). {SIGNING}",
    responses={
        201: "Subscribed",
        409: "The gallery has WEBHOOK_MAX_SUBSCRIPTIONS subscriptions already",
        422: "Invalid input, or a refused destination",
    },
    extensions={
        "callbacks": delivery_callbacks(
            "event", "{$request.body#/url}", "each event the subscription names"
        )
    },
)
@requires(Scope.ADMIN)
def create_webhook(body: dict[str, Any]) -> tuple[dict[str, Any], int, dict[str, str]]:
    check_webhook_url(body["url"])
    session = db()
    cap = services().settings.webhook_max_subscriptions
    try:
        sub = subscribe(
            session, gallery_id=gallery_id(), url=body["url"], events=body["events"], cap=cap
        )
    except TooManySubscriptionsError as exc:
        raise ApiError(
            409,
            f"this gallery has {exc.count} webhook subscriptions, the most it may have "
            f"({cap}); delete one before adding another",
            code="too_many_webhooks",
            details={"subscriptions": exc.count, "limit": cap},
        ) from exc
    session.commit()
    log.info("webhook subscribed", webhook_id=sub.id, events=sub.events)
    location = urls.webhook_url(sub.id)
    return serialize_subscription(sub, secret=True), 201, {"Location": location}


@bp.get("/webhooks")
@bp.output(schemas.WebhookListOut)
@bp.doc(summary="Every webhook subscription (without secrets)")
@requires(Scope.ADMIN)
def list_webhooks() -> dict[str, Any]:
    subs = db().scalars(
        select(WebhookSubscription)
        .where(WebhookSubscription.gallery_id == gallery_id())
        .order_by(WebhookSubscription.created_at)
    )
    return {"webhooks": [serialize_subscription(s) for s in subs]}


@bp.get("/webhooks/<webhook_id>")
@bp.output(schemas.WebhookOut)
@bp.doc(summary="A webhook subscription (without its secret)", responses={404: "No such webhook"})
@requires(Scope.ADMIN)
def get_webhook(webhook_id: str) -> dict[str, Any]:
    return serialize_subscription(_subscription_or_404(webhook_id))


@bp.delete("/webhooks/<webhook_id>")
@bp.output({}, status_code=204)
@bp.doc(
    summary="Unsubscribe: no further deliveries; its delivery log goes too",
    responses={404: "No such webhook"},
)
@requires(Scope.ADMIN)
def delete_webhook(webhook_id: str) -> tuple[str, int]:
    session = db()
    session.delete(_subscription_or_404(webhook_id))
    session.commit()
    log.info("webhook deleted", webhook_id=webhook_id)
    return "", 204


@bp.post("/webhooks/<webhook_id>/rotate-secret")
@bp.input(schemas.RotateSecretIn, arg_name="body")
@bp.output(schemas.WebhookOut)
@bp.doc(
    summary="Replace the signing secret",
    description="Answers with the new `secret`, shown this once. Every delivery from now on, "
    "retries of earlier events included, is signed with it. With `previous_valid_s`, "
    f"deliveries carry a signature by the old secret too until then (a second `v1,...` in "
    f"`{SIGNATURE_HEADER}`), so the receiver can switch without missing anything; otherwise "
    "the old one stops at once.",
    responses={404: "No such webhook"},
)
@requires(Scope.ADMIN)
def rotate_secret(webhook_id: str, body: dict[str, Any]) -> dict[str, Any]:
    session = db()
    sub = _subscription_or_404(webhook_id)
    grace = body.get("previous_valid_s") or 0
    rotate_secret_of(sub, previous_valid_s=grace)
    session.commit()
    log.info("webhook secret rotated", webhook_id=webhook_id, previous_valid_s=grace)
    return serialize_subscription(sub, secret=True)


@bp.get("/webhooks/<webhook_id>/deliveries")
@bp.input(schemas.DeliveryQuery, location="query", arg_name="query")
@bp.output(schemas.DeliveryListOut)
@bp.doc(
    summary="A webhook's deliveries, newest first, with every attempt",
    responses={404: "No such webhook"},
)
@requires(Scope.ADMIN)
def list_deliveries(webhook_id: str, query: dict[str, Any]) -> dict[str, Any]:
    _subscription_or_404(webhook_id)
    deliveries = db().scalars(
        select(WebhookDelivery)
        .where(WebhookDelivery.subscription_id == webhook_id)
        .options(selectinload(WebhookDelivery.attempt_log), selectinload(WebhookDelivery.event))
        .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id)
        .limit(query.get("limit") or DEFAULT_DELIVERY_PAGE)
    )
    return {"deliveries": [serialize_delivery(d) for d in deliveries]}


def _delivery_or_404(delivery_id: str, *, lock: bool = False) -> WebhookDelivery:
    delivery = db().get(WebhookDelivery, delivery_id, with_for_update=lock)
    event = db().get(WebhookEvent, delivery.event_id) if delivery is not None else None
    if delivery is None or event is None or event.gallery_id != gallery_id():
        raise ApiError(404, f"there is no delivery {delivery_id}")
    return delivery


@bp.get("/deliveries/<delivery_id>")
@bp.output(schemas.DeliveryOut)
@bp.doc(summary="A delivery and its attempts", responses={404: "No such delivery"})
@requires(Scope.ADMIN)
def get_delivery(delivery_id: str) -> dict[str, Any]:
    return serialize_delivery(_delivery_or_404(delivery_id))


@bp.post("/deliveries/<delivery_id>/redeliver")
@bp.output(schemas.DeliveryOut, status_code=202)
@bp.doc(
    summary="Deliver an event again now",
    description="Queues one more attempt at once, whatever the delivery's status; the event "
    "(its id and body) is the same, so a receiver that already has it can ignore it. If "
    "the delivery was still retrying, its schedule goes on from this attempt. A delivery "
    "may have at most `WEBHOOK_MAX_ATTEMPTS` + `WEBHOOK_MAX_REDELIVERIES` attempts.",
    responses={
        202: "An attempt is queued",
        404: "No such delivery",
        409: "The delivery has had all the attempts it may have",
        503: "Broker down",
    },
)
@requires(Scope.ADMIN)
def redeliver(delivery_id: str) -> tuple[dict[str, Any], int]:
    session = db()
    delivery = _delivery_or_404(delivery_id, lock=True)
    # Counted from the attempts made (the worker's own retries stop at WEBHOOK_MAX_ATTEMPTS;
    # every attempt past them was asked for here), so repeated clicks before the queued
    # attempt is made cost nothing: they queue the same attempt number, made once.
    settings = services().settings
    most = settings.webhook_max_attempts + settings.webhook_max_redeliveries
    if delivery.attempts >= most:
        raise ApiError(
            409,
            f"this delivery has had {delivery.attempts} attempts, the most a delivery may "
            f"have ({settings.webhook_max_attempts} automatic + "
            f"{settings.webhook_max_redeliveries} redeliveries); it is not sent again",
            code="too_many_redeliveries",
            details={"attempts": delivery.attempts, "limit": most},
        )
    delivery.status = DeliveryStatus.PENDING
    delivery.next_attempt_at = utcnow()
    attempt = delivery.attempts + 1
    session.commit()
    try:
        services().celery.send_task(
            DELIVER_WEBHOOK_TASK,
            kwargs={"delivery_id": delivery_id, "attempt": attempt},
            retry=True,
            retry_policy=SEND_RETRY_POLICY,
        )
    except Exception as exc:  # kombu raises several types for "broker unreachable"
        log.exception("could not queue a redelivery", delivery_id=delivery_id)
        raise ApiError(
            503,
            "the task queue is unavailable; the delivery stays pending, try again shortly",
            details={"delivery_id": delivery_id},
        ) from exc
    log.info("webhook redelivery queued", delivery_id=delivery_id, attempt=attempt)
    return serialize_delivery(delivery), 202
