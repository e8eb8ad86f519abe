"""Request rate limits per API key, and the caps on webhook subscriptions and redeliveries."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from api import create_app
from api.limits import storage_url
from core.settings import Settings
from models import DEFAULT_GALLERY_ID, EventType, WebhookDelivery, WebhookEvent
from services.galleries import create_gallery
from tests.conftest import make_client, make_key

REDIS_URL = "redis://127.0.0.1:6379/0"
DEAD_REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
LIMITED = "/v1/webhooks"  # any route that needs a key


def error_of(response: Any) -> dict[str, Any]:
    body = response.get_json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"status", "code", "message", "details"}, body
    return body["error"]


def limited(settings: Settings, rate_limit: str = "3/minute", **changes: Any) -> Settings:
    return settings.model_copy(update={"rate_limit": rate_limit, **changes})


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def redis_up() -> bool:
    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


# --- rate limits -------------------------------------------------------------------------


def test_past_the_limit_a_key_gets_429_with_retry_after(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    client = make_client(limited(settings), sessions)
    for _ in range(3):
        assert client.get(LIMITED).status_code == 200
    response = client.get(LIMITED)
    assert response.status_code == 429
    error = error_of(response)
    assert error["code"] == "too_many_requests"
    assert "3 per 1 minute" in error["message"]
    assert "this API key" in error["message"]
    retry_after = int(response.headers["Retry-After"])
    assert 1 <= retry_after <= 60
    assert error["details"] == {"limit": "3 per 1 minute", "retry_after_s": retry_after}
    assert response.headers["X-Content-Type-Options"] == "nosniff"  # a 429 is hardened too


def test_every_limit_of_the_setting_applies(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    client = make_client(limited(settings, "2/hour;100/minute"), sessions)
    statuses = [client.get(LIMITED).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]


def test_limits_are_per_key(settings: Settings, sessions: sessionmaker[Session]) -> None:
    client = make_client(limited(settings), sessions)
    first = make_key(sessions)
    second = make_key(sessions)
    for _ in range(3):
        assert client.get(LIMITED, headers=bearer(first)).status_code == 200
    assert client.get(LIMITED, headers=bearer(first)).status_code == 429
    # The second key is not charged for the first one's traffic, from the same address.
    for _ in range(3):
        assert client.get(LIMITED, headers=bearer(second)).status_code == 200
    assert client.get(LIMITED, headers=bearer(second)).status_code == 429


def test_public_routes_are_not_limited(settings: Settings, sessions: sessionmaker[Session]) -> None:
    client = make_client(limited(settings, "1/minute"), sessions)
    for path in ("/healthz", "/openapi.json", "/docs", "/", "/static/app.js"):
        for _ in range(3):
            response = client.get(path)
            assert response.status_code == 200, path
            response.close()
    assert client.get(LIMITED).status_code == 200  # its budget was not touched
    assert client.get(LIMITED).status_code == 429


def test_refused_keys_are_answered_401_not_429(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    # The limiter runs after the key check: a wrong key is told so, and charges nothing.
    client = make_client(limited(settings, "1/minute"), sessions)
    for _ in range(3):
        assert client.get(LIMITED, headers=bearer("fsk_wrong")).status_code == 401
    assert client.get(LIMITED).status_code == 200


def test_an_empty_setting_turns_limits_off(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    client = make_client(limited(settings, ""), sessions)
    assert all(client.get(LIMITED).status_code == 200 for _ in range(10))


def test_an_invalid_setting_stops_the_app_with_a_clear_message(settings: Settings) -> None:
    with pytest.raises(ValueError, match="RATE_LIMIT 'lots' is not valid"):
        create_app(limited(settings, "lots"))


def test_counts_live_in_the_brokers_redis_in_server_mode(settings: Settings) -> None:
    assert storage_url(settings) == "memory://"  # embedded: a filesystem broker
    assert storage_url(settings.model_copy(update={"broker_url": REDIS_URL})) == REDIS_URL
    other = settings.model_copy(
        update={"broker_url": REDIS_URL, "rate_limit_storage_url": "redis://limits:6379/3"}
    )
    assert storage_url(other) == "redis://limits:6379/3"


@pytest.mark.skipif(not redis_up(), reason="needs Redis on 127.0.0.1:6379")
def test_api_processes_share_the_counts_in_redis(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    server = limited(settings, broker_url=REDIS_URL)
    key = make_key(sessions)
    one, two = make_client(server, sessions, key=key), make_client(server, sessions, key=key)
    assert one.application is not two.application
    assert [one.get(LIMITED).status_code for _ in range(2)] == [200, 200]
    assert two.get(LIMITED).status_code == 200
    assert two.get(LIMITED).status_code == 429
    assert one.get(LIMITED).status_code == 429


def test_requests_are_answered_while_the_limit_storage_is_down(
    settings: Settings, sessions: sessionmaker[Session], caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client(limited(settings, rate_limit_storage_url=DEAD_REDIS_URL), sessions)
    with caplog.at_level(logging.WARNING, logger="flask-limiter"):
        response = client.get(LIMITED)
    assert response.status_code == 200, response.get_json()
    assert any("unreachable" in r.getMessage() for r in caplog.records), caplog.records
    # Meanwhile the process counts in memory: the limit still holds.
    assert [client.get(LIMITED).status_code for _ in range(3)] == [200, 200, 429]


# --- caps --------------------------------------------------------------------------------


def subscribe(client: FlaskClient, n: int) -> Any:
    return client.post(
        "/v1/webhooks", json={"url": f"http://127.0.0.1:9/hook-{n}", "events": ["job.completed"]}
    )


def test_webhook_subscriptions_per_gallery_are_capped(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    capped = settings.model_copy(
        update={"webhook_allowed_hosts": "127.0.0.1", "webhook_max_subscriptions": 2}
    )
    client = make_client(capped, sessions)
    assert [subscribe(client, n).status_code for n in range(2)] == [201, 201]
    response = subscribe(client, 2)
    assert response.status_code == 409
    error = error_of(response)
    assert error["code"] == "too_many_webhooks"
    assert "the most it may have (2)" in error["message"]
    assert "delete one" in error["message"]
    # Another gallery has its own allowance.
    with sessions() as session:
        other = create_gallery(session, f"g-{uuid.uuid4().hex[:8]}")
        session.commit()
        other_id = other.id
    other_client = make_client(capped, sessions, key=make_key(sessions, gallery_id=other_id))
    assert subscribe(other_client, 3).status_code == 201
    # A deleted subscription frees its place.
    webhook_id = client.get("/v1/webhooks").get_json()["webhooks"][0]["id"]
    assert client.delete(f"/v1/webhooks/{webhook_id}").status_code == 204
    assert subscribe(client, 4).status_code == 201


def delivery_with(sessions: sessionmaker[Session], attempts: int) -> str:
    with sessions() as session:
        event = WebhookEvent(type=EventType.JOB_COMPLETED, gallery_id=DEFAULT_GALLERY_ID)
        event.payload = {"id": None, "type": "job.completed", "data": {}}
        delivery = WebhookDelivery(event=event, url="http://127.0.0.1:9/", attempts=attempts)
        session.add_all([event, delivery])
        session.commit()
        return delivery.id


def test_redeliveries_per_delivery_are_capped(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    capped = settings.model_copy(update={"webhook_max_attempts": 3, "webhook_max_redeliveries": 2})
    client = make_client(capped, sessions)
    below = delivery_with(sessions, attempts=4)  # 3 automatic + 1 redelivery
    response = client.post(f"/v1/deliveries/{below}/redeliver")
    assert response.status_code == 202, response.get_json()
    assert response.get_json()["status"] == "pending"

    spent = delivery_with(sessions, attempts=5)  # 3 automatic + 2 redeliveries
    response = client.post(f"/v1/deliveries/{spent}/redeliver")
    assert response.status_code == 409
    error = error_of(response)
    assert error["code"] == "too_many_redeliveries"
    assert "3 automatic + 2 redeliveries" in error["message"]
    assert error["details"] == {"attempts": 5, "limit": 5}
    assert client.get(f"/v1/deliveries/{spent}").get_json()["attempts"] == 5
