"""Webhooks: subscriptions, signatures, delivery with retries, and the destination guard.

Deliveries go to a real HTTP server on 127.0.0.1 (allowed by WEBHOOK_ALLOWED_HOSTS here).
Attempts are made by calling the delivery function attempt by attempt, as the Celery task
does after each countdown, so hours of backoff cost nothing. Refused destinations are
refused before any connection: no test sends a packet anywhere but loopback.
"""

from __future__ import annotations

import io
import ipaddress
import json
import random
import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from api.context import EXTENSION
from api.schemas import WEBHOOK_EVENT_TYPES
from core.destinations import (
    AllowList,
    IPAddress,
    UnsafeDestinationError,
    check_destination,
    is_public,
)
from core.settings import Settings
from core.webhook_signing import sign, verify
from models import (
    DeliveryStatus,
    EventType,
    JobStatus,
    Search,
    SearchFace,
    SearchMatch,
    WebhookDelivery,
    utcnow,
)
from models.db import session_scope
from services import events as event_recording
from services.events import record_search_events
from tests.test_api import jpeg, make_client, queued_messages
from tests.webhook_receiver import Answer, Receiver, running_receiver
from workers import webhooks
from workers.webhooks import (
    MAX_RETRY_DELAY_S,
    DeliveryPolicy,
    attempt_delivery,
    resend_due,
    retry_delay,
)

README = Path(__file__).resolve().parent.parent / "README.md"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as r:
        yield r


@pytest.fixture
def wh_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"webhook_allowed_hosts": "127.0.0.1"})


@pytest.fixture
def client(wh_settings: Settings, sessions: sessionmaker[Session]) -> FlaskClient:
    return make_client(wh_settings, sessions)


def policy(settings: Settings, **changes: Any) -> DeliveryPolicy:
    base = DeliveryPolicy.from_settings(settings.model_copy(update={"webhook_retry_base_s": 1}))
    return DeliveryPolicy(**{**base.__dict__, **changes})


def readme_verify() -> Callable[..., bool]:
    """The verification function exactly as the README shows it."""
    section = README.read_text().split("## Webhooks", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert code, "the README's Webhooks section has no python snippet"
    namespace: dict[str, Any] = {}
    exec(code.group(1), namespace)
    fn: Callable[..., bool] = namespace["verify_signature"]
    return fn


def subscribe(client: FlaskClient, url: str, events: list[str] | None = None) -> dict[str, Any]:
    response = client.post(
        "/v1/webhooks", json={"url": url, "events": events or ["search.completed"]}
    )
    assert response.status_code == 201, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


def create_search(client: FlaskClient, **form: Any) -> dict[str, Any]:
    response = client.post(
        "/v1/searches",
        data={"file": (io.BytesIO(jpeg(7)), "q.jpg"), **form},
        content_type="multipart/form-data",
    )
    assert response.status_code == 202, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


def finish_search(
    sessions: sessionmaker[Session],
    search_id: str,
    status: JobStatus = JobStatus.SUCCEEDED,
    matches: int = 1,
) -> list[str]:
    """What the search task does when it finishes: result rows, status, events (one commit)."""
    with session_scope(sessions) as session:
        search = session.get_one(Search, search_id)
        if status == JobStatus.SUCCEEDED:
            face = SearchFace(
                search_id=search_id,
                face_index=0,
                box_x=1,
                box_y=2,
                box_w=30,
                box_h=40,
                confidence=0.99,
                landmarks={},
            )
            face.matches = [
                SearchMatch(
                    rank=r, score=0.9 - r / 1000, label="Ada", box_x=0, box_y=0, box_w=9, box_h=9
                )
                for r in range(1, matches + 1)
            ]
            session.add(face)
        search.status = status
        search.error = None if status == JobStatus.SUCCEEDED else "no face found in the query image"
        search.finished_at = utcnow()
        search.job.finish(status, error=search.error)
        return record_search_events(session, search)


def deliveries_of(client: FlaskClient, webhook_id: str) -> list[dict[str, Any]]:
    response = client.get(f"/v1/webhooks/{webhook_id}/deliveries")
    assert response.status_code == 200
    deliveries: list[dict[str, Any]] = response.get_json()["deliveries"]
    return deliveries


# --- signatures -----------------------------------------------------------------------------


def test_signature_verifies_with_the_readme_snippet_and_fails_when_tampered() -> None:
    readme = readme_verify()
    secret, body = "whsec_test", b'{"id":"e1","type":"search.completed"}'
    header = sign(secret, body)
    assert header.startswith("t=")
    assert ",v1=" in header
    for check in (verify, readme):
        assert check(secret, body, header)
        assert not check(secret, body + b" ", header)  # tampered body
        assert not check(secret, body.replace(b"e1", b"e2"), header)
        assert not check("whsec_other", body, header)  # wrong secret
        assert not check(secret, body, "t=1,v1=" + "0" * 64)  # old: a replay
        assert not check(secret, body, "v1=abc")  # no timestamp
        assert not check(secret, body, "")
    # A timestamp out of tolerance is refused even with a valid signature.
    stale = sign(secret, body, timestamp=int(utcnow().timestamp()) - 3600)
    assert not verify(secret, body, stale)
    assert not readme(secret, body, stale)


# --- subscriptions ------------------------------------------------------------------------


def test_secret_is_shown_once_and_rotation_replaces_it(client: FlaskClient) -> None:
    created = subscribe(client, "http://127.0.0.1:9/hook", ["search.completed", "job.completed"])
    assert created["secret"].startswith("whsec_")
    assert created["events"] == ["job.completed", "search.completed"]
    assert created["active"] is True
    webhook_id = created["id"]

    shown = client.get(f"/v1/webhooks/{webhook_id}").get_json()
    assert "secret" not in shown
    listed = client.get("/v1/webhooks").get_json()["webhooks"]
    assert [w["id"] for w in listed] == [webhook_id]
    assert "secret" not in listed[0]

    rotated = client.post(f"/v1/webhooks/{webhook_id}/rotate-secret").get_json()
    assert rotated["secret"].startswith("whsec_")
    assert rotated["secret"] != created["secret"]
    assert rotated["secret_rotated_at"] is not None
    assert "secret" not in client.get(f"/v1/webhooks/{webhook_id}").get_json()

    assert client.delete(f"/v1/webhooks/{webhook_id}").status_code == 204
    assert client.get(f"/v1/webhooks/{webhook_id}").status_code == 404
    assert client.delete(f"/v1/webhooks/{webhook_id}").status_code == 404


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("http://169.254.169.254/latest/meta-data/", "destination_refused"),  # cloud metadata
        ("http://10.0.0.1/hook", "destination_refused"),
        ("http://192.168.1.10:8080/hook", "destination_refused"),
        ("http://100.100.100.200/", "destination_refused"),  # shared range (a metadata service)
        ("http://[::ffff:169.254.169.254]/", "destination_refused"),  # IPv4 inside IPv6
        ("http://[fd00:ec2::254]/", "destination_refused"),  # IPv6 metadata, unique-local
        ("http://224.0.0.1/", "destination_refused"),  # multicast
        ("http://0.0.0.0:8000/", "destination_refused"),
        ("http://127.0.0.2/", "destination_refused"),  # loopback, not in the allow-list
        ("http://[::1]/", "destination_refused"),
        ("ftp://example.com/hook", "invalid_url"),
        ("file:///etc/passwd", "invalid_url"),
        ("example.com/hook", "invalid_url"),
        ("http://user:pw@example.com/", "invalid_url"),
        ("http:///nohost", "invalid_url"),
    ],
)
def test_refused_destination_is_rejected_at_subscription(
    client: FlaskClient, url: str, code: str
) -> None:
    response = client.post("/v1/webhooks", json={"url": url, "events": ["search.completed"]})
    assert response.status_code == 422, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == code
    assert url in error["message"]
    assert client.get("/v1/webhooks").get_json()["webhooks"] == []


def test_subscription_input_is_validated(client: FlaskClient) -> None:
    for body in (
        {"url": "http://127.0.0.1/", "events": ["search.exploded"]},
        {"url": "http://127.0.0.1/", "events": []},
        {"events": ["search.completed"]},
    ):
        assert client.post("/v1/webhooks", json=body).status_code == 422
    assert {e.value for e in EventType} == set(WEBHOOK_EVENT_TYPES)


def fixed(*addresses: str) -> Callable[[str, int], list[IPAddress]]:
    return lambda host, port: [ipaddress.ip_address(a) for a in addresses]


def test_every_resolved_address_is_checked() -> None:
    allow = AllowList.parse("127.0.0.1, 10.9.0.0/16, hooks.internal")
    public = check_destination("https://hooks.example/x", allow, fixed("93.184.216.34"))
    assert public.port == 443
    assert public.addresses == (ipaddress.ip_address("93.184.216.34"),)
    # One private answer among public ones is enough to refuse.
    with pytest.raises(UnsafeDestinationError):
        check_destination("https://hooks.example/x", allow, fixed("93.184.216.34", "10.0.0.5"))
    # The allow-list admits networks and named hosts.
    assert check_destination("http://svc.example/x", allow, fixed("10.9.3.4")).port == 80
    assert check_destination("http://hooks.internal/x", allow, fixed("192.168.0.9"))

    def unresolvable(host: str, port: int) -> list[IPAddress]:
        raise OSError("Name or service not known")

    with pytest.raises(UnsafeDestinationError) as exc:
        check_destination("https://nowhere.example/", allow, unresolvable)
    assert exc.value.code == "unresolvable_host"
    assert not is_public(ipaddress.ip_address("64:ff9b::a9fe:a9fe"))  # NAT64 of the metadata IP
    assert is_public(ipaddress.ip_address("2606:4700::1111"))


# --- delivery -------------------------------------------------------------------------------


def test_a_failing_receiver_gets_retries_until_it_answers_2xx(
    client: FlaskClient,
    receiver: Receiver,
    wh_settings: Settings,
    sessions: sessionmaker[Session],
) -> None:
    sub = subscribe(client, receiver.url + "/hooks/facesearch")
    search = create_search(client)
    receiver.script = [Answer(500, b"boom"), Answer(503, b"busy")]
    (delivery_id,) = finish_search(sessions, search["search_id"])

    rules = policy(wh_settings)
    delays = [
        attempt_delivery(delivery_id, n, sessions=sessions, policy=rules, rng=random.Random(n))
        for n in (1, 2, 3)
    ]
    assert delays[0] is not None
    assert delays[1] is not None
    assert delays[2] is None  # succeeded: nothing more to do

    got = receiver.requests
    assert len(got) == 3
    assert {r.path for r in got} == {"/hooks/facesearch"}
    assert len({r.body for r in got}) == 1  # the same event every time
    payload = json.loads(got[0].body)
    assert {r.headers["facesearch-event-id"] for r in got} == {payload["id"]}
    for request in got:
        assert request.headers["content-type"] == "application/json"
        assert request.headers["user-agent"].startswith("facesearch-webhooks/")
        assert verify(sub["secret"], request.body, request.headers["facesearch-signature"])
        assert readme_verify()(sub["secret"], request.body, request.headers["facesearch-signature"])

    assert payload["type"] == "search.completed"
    data = payload["data"]
    assert data["search_id"] == search["search_id"]
    assert data["status"] == "succeeded"
    assert data["error"] is None
    assert data["search_url"] == f"/v1/searches/{search['search_id']}"
    assert data["faces_included"] is True
    assert data["faces"][0]["box"] == {"x": 1, "y": 2, "width": 30, "height": 40}
    assert data["faces"][0]["matches"][0]["label"] == "Ada"

    (delivery,) = deliveries_of(client, sub["id"])
    assert delivery["id"] == delivery_id
    assert delivery["status"] == "succeeded"
    assert delivery["attempts"] == 3
    assert delivery["event_id"] == payload["id"]
    assert delivery["next_attempt_at"] is None
    log = delivery["attempt_log"]
    assert [a["status_code"] for a in log] == [500, 503, 200]
    assert [a["succeeded"] for a in log] == [False, False, True]
    assert log[0]["error"] == "the endpoint answered 500"
    assert log[0]["response_excerpt"] == "boom"
    assert all(a["latency_ms"] is not None and a["attempted_at"] for a in log)


def test_gives_up_after_the_last_attempt_and_redelivers_on_request(
    client: FlaskClient,
    receiver: Receiver,
    wh_settings: Settings,
    settings: Settings,
    sessions: sessionmaker[Session],
) -> None:
    sub = subscribe(client, receiver.url + "/h", ["search.failed"])
    search = create_search(client)
    receiver.default = Answer(500)
    (delivery_id,) = finish_search(sessions, search["search_id"], JobStatus.FAILED)
    rules = policy(wh_settings, max_attempts=2)
    assert attempt_delivery(delivery_id, 1, sessions=sessions, policy=rules) is not None
    assert attempt_delivery(delivery_id, 2, sessions=sessions, policy=rules) is None
    (delivery,) = deliveries_of(client, sub["id"])
    assert delivery["status"] == "failed"
    assert json.loads(receiver.requests[0].body)["data"]["error"] == (
        "no face found in the query image"
    )

    before = len(queued_messages(settings))
    response = client.post(f"/v1/deliveries/{delivery_id}/redeliver")
    assert response.status_code == 202
    assert response.get_json()["status"] == "pending"
    queued = queued_messages(settings)[before:]
    assert [m["headers"]["task"] for m in queued] == ["facesearch.deliver_webhook"]

    receiver.default = Answer(204, b"")
    assert attempt_delivery(delivery_id, 3, sessions=sessions, policy=rules) is None
    # The same attempt again (a duplicate task message) sends nothing.
    assert attempt_delivery(delivery_id, 3, sessions=sessions, policy=rules) is None
    assert len(receiver.requests) == 3
    assert len({r.headers["facesearch-event-id"] for r in receiver.requests}) == 1
    delivery = client.get(f"/v1/deliveries/{delivery_id}").get_json()
    assert delivery["status"] == "succeeded"
    assert [a["status_code"] for a in delivery["attempt_log"]] == [500, 500, 204]
    assert client.post("/v1/deliveries/nope/redeliver").status_code == 404


def test_redirects_are_not_followed_and_bodies_are_read_to_a_limit(
    client: FlaskClient,
    receiver: Receiver,
    wh_settings: Settings,
    sessions: sessionmaker[Session],
) -> None:
    sub = subscribe(client, receiver.url + "/start")
    create = create_search(client)
    receiver.script = [
        Answer(302, b"", {"Location": receiver.url + "/elsewhere"}),
        Answer(500, b"x" * 1_000_000),
    ]
    (delivery_id,) = finish_search(sessions, create["search_id"])
    rules = policy(wh_settings)
    attempt_delivery(delivery_id, 1, sessions=sessions, policy=rules)
    attempt_delivery(delivery_id, 2, sessions=sessions, policy=rules)
    assert [r.path for r in receiver.requests] == ["/start", "/start"]
    (delivery,) = deliveries_of(client, sub["id"])
    first, second = delivery["attempt_log"]
    assert first["status_code"] == 302
    assert not first["succeeded"]
    assert second["status_code"] == 500
    assert len(second["response_excerpt"]) == webhooks.RESPONSE_EXCERPT_BYTES


def test_timeouts_and_refused_connections_are_failed_attempts(
    client: FlaskClient,
    receiver: Receiver,
    wh_settings: Settings,
    sessions: sessionmaker[Session],
) -> None:
    sub = subscribe(client, receiver.url + "/slow")
    create = create_search(client)
    receiver.script = [Answer(200, delay_s=1.0)]
    (delivery_id,) = finish_search(sessions, create["search_id"])
    rules = policy(wh_settings, read_timeout_s=0.2)
    assert attempt_delivery(delivery_id, 1, sessions=sessions, policy=rules) is not None
    # The receiver goes away: the connection is refused.
    with session_scope(sessions) as session:
        session.get_one(WebhookDelivery, delivery_id).url = "http://127.0.0.1:9/gone"
    assert attempt_delivery(delivery_id, 2, sessions=sessions, policy=rules) is not None
    (delivery,) = deliveries_of(client, sub["id"])
    first, second = delivery["attempt_log"]
    assert first["status_code"] is None
    assert first["error"].startswith("timed out")
    assert second["status_code"] is None
    assert "ConnectError" in second["error"]
    assert delivery["status"] == "pending"
    assert delivery["next_attempt_at"] is not None


def test_delivery_time_check_defeats_dns_rebinding(
    client: FlaskClient,
    receiver: Receiver,
    wh_settings: Settings,
    sessions: sessionmaker[Session],
) -> None:
    """A name that was public when subscribed and now resolves to a private address is
    refused before connecting, and the request never leaves."""
    create = create_search(client)
    subscribe(client, receiver.url + "/ok")
    (delivery_id,) = finish_search(sessions, create["search_id"])
    with session_scope(sessions) as session:
        session.get_one(WebhookDelivery, delivery_id).url = "http://rebind.example/hook"
    attempt_delivery(
        delivery_id,
        1,
        sessions=sessions,
        policy=policy(wh_settings),
        resolver=fixed("10.0.0.1"),
    )
    assert receiver.requests == []
    delivery = client.get(f"/v1/deliveries/{delivery_id}").get_json()
    assert delivery["attempt_log"][0]["error"].startswith("refused before connecting")


def test_search_callback_url_is_validated_and_signed_with_its_own_secret(
    client: FlaskClient,
    receiver: Receiver,
    wh_settings: Settings,
    sessions: sessionmaker[Session],
) -> None:
    refused = client.post(
        "/v1/searches",
        data={"file": (io.BytesIO(jpeg(7)), "q.jpg"), "callback_url": "http://10.0.0.1/cb"},
        content_type="multipart/form-data",
    )
    assert refused.status_code == 422
    assert refused.get_json()["error"]["code"] == "destination_refused"

    search = create_search(client, callback_url=receiver.url + "/cb")
    secret = search["callback_secret"]
    (delivery_id,) = finish_search(sessions, search["search_id"])
    assert attempt_delivery(delivery_id, 1, sessions=sessions, policy=policy(wh_settings)) is None
    (request,) = receiver.requests
    assert request.path == "/cb"
    assert verify(secret, request.body, request.headers["facesearch-signature"])
    delivery = client.get(f"/v1/deliveries/{delivery_id}").get_json()
    assert delivery["search_id"] == search["search_id"]
    assert delivery["subscription_id"] is None
    assert delivery["status"] == "succeeded"


def test_large_results_are_sent_as_a_link(
    client: FlaskClient,
    receiver: Receiver,
    sessions: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(event_recording, "MAX_INLINE_RESULT_BYTES", 1000)
    subscribe(client, receiver.url + "/h", ["search.completed", "job.completed"])
    search = create_search(client)
    ids = finish_search(sessions, search["search_id"], matches=50)
    assert len(ids) == 2  # search.completed and job.completed
    with session_scope(sessions) as session:
        events = {
            d.event.type: d.event.payload
            for d in (session.get_one(WebhookDelivery, i) for i in ids)
        }
    data = events[EventType.SEARCH_COMPLETED]["data"]
    assert data["faces_included"] is False
    assert data["faces"] is None
    assert data["match_count"] == 50
    assert data["search_url"] == f"/v1/searches/{search['search_id']}"
    job = events[EventType.JOB_COMPLETED]["data"]
    assert job["job_id"] == search["job_id"]
    assert job["kind"] == "search"
    assert job["status"] == "succeeded"


def test_no_event_is_recorded_without_a_listener(
    client: FlaskClient, sessions: sessionmaker[Session]
) -> None:
    search = create_search(client)
    assert finish_search(sessions, search["search_id"]) == []


def test_retry_schedule_spans_hours_with_jitter() -> None:
    rng = random.Random(42)
    delays = [retry_delay(n, 45, rng) for n in range(1, 10)]  # between 10 attempts
    assert 4 * 3600 < sum(delays) < 9 * 3600
    assert delays[0] < 60
    nominal = [45 * 2 ** (n - 1) for n in range(1, 10)]
    assert all(0.75 * d <= got <= 1.25 * d for got, d in zip(delays, nominal, strict=True))
    assert retry_delay(30, 45, rng) <= MAX_RETRY_DELAY_S * 1.25
    assert DeliveryStatus.PENDING.value == "pending"


def test_overdue_deliveries_are_queued_again(
    client: FlaskClient, settings: Settings, sessions: sessionmaker[Session]
) -> None:
    subscribe(client, "http://127.0.0.1:9/h")
    search = create_search(client)
    (delivery_id,) = finish_search(sessions, search["search_id"])
    celery = client.application.extensions[EXTENSION].celery
    assert resend_due(sessions=sessions, celery=celery) == 0  # just recorded: not overdue
    with session_scope(sessions) as session:
        delivery = session.get_one(WebhookDelivery, delivery_id)
        delivery.next_attempt_at = utcnow() - timedelta(minutes=5)
    before = len(queued_messages(settings))
    assert resend_due(sessions=sessions, celery=celery) == 1
    (message,) = queued_messages(settings)[before:]
    assert message["headers"]["task"] == "facesearch.deliver_webhook"
    assert delivery_id in message["headers"]["kwargsrepr"]


def test_openapi_documents_the_webhook_routes(client: FlaskClient) -> None:
    paths = client.get("/openapi.json").get_json()["paths"]
    for path in (
        "/v1/webhooks",
        "/v1/webhooks/{webhook_id}",
        "/v1/webhooks/{webhook_id}/rotate-secret",
        "/v1/webhooks/{webhook_id}/deliveries",
        "/v1/deliveries/{delivery_id}",
        "/v1/deliveries/{delivery_id}/redeliver",
    ):
        assert path in paths, path
    spec = client.get("/openapi.json").get_json()
    assert "callback_url" in spec["components"]["schemas"]["SearchIn"]["properties"]


def test_an_ingest_job_that_finishes_sends_job_completed(
    client: FlaskClient, sessions: sessionmaker[Session]
) -> None:
    from models import DEFAULT_GALLERY_ID, ItemStatus, Job, JobItem, JobKind
    from workers.indexing import finish_ingest_job

    subscribe(client, "http://127.0.0.1:9/h", ["job.completed"])
    with session_scope(sessions) as session:
        job = Job(kind=JobKind.INGEST, gallery_id=DEFAULT_GALLERY_ID, total=1)
        job.items = [JobItem(position=0, name="a.jpg", status=ItemStatus.FAILED, error="corrupt")]
        session.add(job)
        session.flush()
        job_id = job.id
        assert finish_ingest_job(session, job_id) != []  # a job.completed delivery
        assert finish_ingest_job(session, job_id) == []  # already finished: nothing again
    with session_scope(sessions) as session:
        (delivery,) = session.query(WebhookDelivery).all()
        assert delivery.event.type == EventType.JOB_COMPLETED
        data = delivery.event.payload["data"]
    assert data["job_id"] == job_id
    assert data["kind"] == "ingest"
    assert data["status"] == "failed"
    assert data["progress"]["failed"] == 1


def test_rotation_with_a_grace_period_signs_with_both_secrets(
    client: FlaskClient,
    receiver: Receiver,
    wh_settings: Settings,
    sessions: sessionmaker[Session],
) -> None:
    sub = subscribe(client, receiver.url + "/h")
    old = sub["secret"]
    rotated = client.post(
        f"/v1/webhooks/{sub['id']}/rotate-secret", json={"previous_valid_s": 3600}
    ).get_json()
    assert rotated["previous_secret_expires_at"] is not None
    search = create_search(client)
    (delivery_id,) = finish_search(sessions, search["search_id"])
    attempt_delivery(delivery_id, 1, sessions=sessions, policy=policy(wh_settings))
    (request,) = receiver.requests
    header = request.headers["facesearch-signature"]
    assert header.count("v1=") == 2
    assert verify(rotated["secret"], request.body, header)
    assert readme_verify()(old, request.body, header)

    # A rotation without grace drops the old secret at once.
    again = client.post(f"/v1/webhooks/{sub['id']}/rotate-secret").get_json()
    assert again["previous_secret_expires_at"] is None
    assert (
        client.post(
            f"/v1/webhooks/{sub['id']}/rotate-secret", json={"previous_valid_s": -1}
        ).status_code
        == 422
    )


def test_jobs_the_api_closes_itself_send_job_completed(
    client: FlaskClient, sessions: sessionmaker[Session], wh_settings: Settings
) -> None:
    subscribe(client, "http://127.0.0.1:9/h", ["job.completed"])
    data = jpeg(31)
    first = client.post(
        "/v1/images", data={"file": (io.BytesIO(data), "a.jpg")}, content_type="multipart/form-data"
    ).get_json()
    # Cancelled by the client while queued: the API closes it.
    assert client.post(f"/v1/jobs/{first['job_id']}/cancel").status_code == 200
    # Every file already in the gallery (and processed, say by an earlier upload): nothing
    # for a worker to do, closed at once.
    from models import Image, ImageStatus

    with session_scope(sessions) as session:
        for image in session.query(Image).all():
            image.status, image.error = ImageStatus.READY, None
    again = client.post(
        "/v1/images", data={"file": (io.BytesIO(data), "b.jpg")}, content_type="multipart/form-data"
    ).get_json()
    assert again["status"] == "succeeded"

    with session_scope(sessions) as session:
        events = {
            d.event.payload["data"]["job_id"]: d.event.payload["data"]["status"]
            for d in session.query(WebhookDelivery).all()
        }
    assert events == {first["job_id"]: "cancelled", again["job_id"]: "succeeded"}
    sent = [m["headers"]["task"] for m in queued_messages(wh_settings)]
    assert sent.count("facesearch.deliver_webhook") == 2
