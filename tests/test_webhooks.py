"""Webhooks: subscriptions, signatures, delivery with retries, and the destination guard.

Deliveries go to a real HTTP server on 127.0.0.1 (allowed by WEBHOOK_ALLOWED_HOSTS here).
Signatures are checked as receivers check them: with the ``standardwebhooks`` library and with
the README's own snippet (and, for secrets made before Standard Webhooks, with the snippet
the README showed for the earlier header, which receivers still run).
Attempts are made by calling the delivery function attempt by attempt, as the Celery task
does after each countdown, so hours of backoff cost nothing. Refused destinations are
refused before any connection: no test sends a packet anywhere but loopback.
"""

from __future__ import annotations

import base64
import contextlib
import io
import ipaddress
import json
import random
import re
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker
from standardwebhooks import Webhook, WebhookVerificationError

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
from core.webhook_signing import (
    LEGACY_EVENT_ID_HEADER,
    LEGACY_SIGNATURE_HEADER,
    is_legacy,
    new_secret,
    signed_headers,
)
from models import (
    DeliveryStatus,
    EventType,
    JobStatus,
    Search,
    SearchFace,
    SearchMatch,
    WebhookDelivery,
    WebhookSubscription,
    utcnow,
)
from models.db import session_scope
from services import events as event_recording
from services.events import record_search_events
from tests.test_api import jpeg, make_client, queued_messages
from tests.webhook_receiver import REJECTED, Answer, Receiver, running_receiver, verified_with
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


# What the README showed receivers before Standard Webhooks, kept word for word: receivers
# holding a secret made then still run it against ``Facesearch-Signature``.
LEGACY_README_SNIPPET = """
import hashlib
import hmac
import time


def verify_signature(secret: str, body: bytes, header: str, tolerance_s: int = 300) -> bool:
    \"\"\"True if `header` (Facesearch-Signature) signs exactly `body` (the raw request body).\"\"\"
    parts = [item.split("=", 1) for item in header.split(",") if "=" in item]
    timestamps = [value for key, value in parts if key.strip() == "t"]
    signatures = [value.strip() for key, value in parts if key.strip() == "v1"]
    if len(timestamps) != 1 or not timestamps[0].strip().isdigit() or not signatures:
        return False
    t = int(timestamps[0])
    if abs(time.time() - t) > tolerance_s:
        return False  # too old (or from the future): possibly a replayed request
    expected = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, candidate) for candidate in signatures)
"""


def readme_blocks(language: str) -> list[str]:
    section = README.read_text().split("## Webhooks", 1)[1].split("\n## ", 1)[0]
    return re.findall(rf"```{language}\n(.*?)```", section, re.DOTALL)


def snippet_function(code: str) -> Callable[..., bool]:
    namespace: dict[str, Any] = {}
    exec(code, namespace)
    fn: Callable[..., bool] = namespace["verify_signature"]
    return fn


def readme_verify() -> Callable[[str, bytes, Mapping[str, str]], bool]:
    """The verification function exactly as the README shows it (for receivers without the
    library)."""
    (code,) = [c for c in readme_blocks("python") if "def verify_signature" in c]
    return snippet_function(code)


def legacy_verify() -> Callable[[str, bytes, str], bool]:
    return snippet_function(LEGACY_README_SNIPPET)


def library_verifies(secret: str | bytes, body: bytes, headers: Mapping[str, str]) -> bool:
    try:
        Webhook(secret).verify(body, dict(headers), json_parse=False)
    except WebhookVerificationError:
        return False
    return True


def verifies(secret: str, body: bytes, headers: Mapping[str, str]) -> bool:
    """Whether a receiver holding ``secret`` accepts the request, by the library (given the key
    as the README says: an earlier secret as its UTF-8 bytes) and by the README's snippet;
    the two must agree."""
    by_library = library_verifies(secret.encode() if is_legacy(secret) else secret, body, headers)
    by_snippet = readme_verify()(secret, body, headers)
    assert by_library == by_snippet, (by_library, by_snippet)
    return by_library


def legacy_secret() -> str:
    """A secret as subscriptions were given before Standard Webhooks."""
    return "whsec_" + secrets.token_urlsafe(32)


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


def test_secrets_are_in_the_standard_form_and_the_library_takes_them() -> None:
    made = {new_secret() for _ in range(20)}
    assert len(made) == 20
    for secret in made:
        assert secret.startswith("whsec_")
        key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
        assert 24 <= len(key) <= 64
        assert not is_legacy(secret)
        Webhook(secret)  # parsed by the library
    # Every secret made before (43 URL-safe characters) is told apart, whatever its characters.
    assert all(is_legacy(legacy_secret()) for _ in range(200))
    assert is_legacy("whsec_" + "A" * 43)
    assert is_legacy("whsec_" + base64.b64encode(b"x" * 16).decode())  # too short a key


@pytest.mark.parametrize("make_secret", [new_secret, legacy_secret])
def test_signatures_verify_with_the_library_and_the_readme_and_fail_when_tampered(
    make_secret: Callable[[], str],
) -> None:
    secret, msg_id = make_secret(), "6c1d0e2a-5b7c-4d8e-9f10-111213141516"
    body = b'{"id":"6c1d0e2a-5b7c-4d8e-9f10-111213141516","type":"search.completed"}'
    headers = signed_headers([secret], msg_id, body)
    assert headers["webhook-id"] == msg_id
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 60
    (sig,) = headers["webhook-signature"].split(" ")
    assert sig.startswith("v1,")
    assert len(base64.b64decode(sig.removeprefix("v1,"), validate=True)) == 32  # SHA-256

    assert verifies(secret, body, headers)
    assert not verifies(secret, body + b" ", headers)  # tampered body
    assert not verifies(secret, body.replace(b"e2a", b"e2b"), headers)
    later = str(int(headers["webhook-timestamp"]) + 1)
    assert not verifies(secret, body, {**headers, "webhook-timestamp": later})  # tampered time
    assert not verifies(secret, body, {**headers, "webhook-id": "another"})  # another message
    assert not verifies(make_secret(), body, headers)  # another secret
    for name in ("webhook-id", "webhook-timestamp", "webhook-signature"):
        assert not verifies(secret, body, {k: v for k, v in headers.items() if k != name})
    assert not verifies(secret, body, {**headers, "webhook-signature": "v1," + "A" * 44})
    # Signed an hour ago, correctly: refused as a possible replay.
    stale = signed_headers([secret], msg_id, body, timestamp=int(time.time()) - 3600)
    assert not verifies(secret, body, stale)
    # Header names are not case-sensitive (in Flask they arrive capitalised).
    assert verifies(secret, body, {k.title(): v for k, v in headers.items()})


def test_earlier_secrets_also_sign_the_earlier_header_and_new_ones_do_not() -> None:
    legacy, new, body = legacy_secret(), new_secret(), b'{"id":"e1"}'
    headers = signed_headers([legacy], "e1", body)
    assert headers[LEGACY_EVENT_ID_HEADER] == "e1"
    assert legacy_verify()(legacy, body, headers[LEGACY_SIGNATURE_HEADER])
    assert not legacy_verify()(legacy, body + b" ", headers[LEGACY_SIGNATURE_HEADER])
    assert headers[LEGACY_SIGNATURE_HEADER].startswith(f"t={headers['webhook-timestamp']},")
    assert verifies(legacy, body, headers)
    # The library given the string itself does not hold that key (it reads the characters as
    # base64, or cannot read them at all): hence the documented rule, the UTF-8 bytes.
    with contextlib.suppress(ValueError):  # binascii.Error: it cannot read them
        assert not library_verifies(legacy, body, headers)

    assert set(signed_headers([new], "e1", body)) == {
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
    }
    # Rotating away from an earlier secret: the new one signs the standard header only, the
    # old one both, until its grace period ends.
    both = signed_headers([new, legacy], "e1", body)
    assert both["webhook-signature"].count("v1,") == 2
    assert verifies(new, body, both)
    assert verifies(legacy, body, both)
    assert both[LEGACY_SIGNATURE_HEADER].count("v1=") == 1
    assert legacy_verify()(legacy, body, both[LEGACY_SIGNATURE_HEADER])


def test_the_readmes_library_example_runs_in_flask() -> None:
    """The README's library example, run in a real Flask request, accepts a signed request
    and aborts with 400 on a tampered one."""
    (code,) = [c for c in readme_blocks("py") if "standardwebhooks" in c]
    from flask import abort, request
    from werkzeug.exceptions import BadRequest

    secret, body = new_secret(), b'{"id":"e1","type":"search.completed"}'
    headers = signed_headers([secret], "e1", body)
    app = Flask(__name__)
    namespace: dict[str, Any] = {"secret": secret, "request": request, "abort": abort}
    with app.test_request_context("/hook", method="POST", data=body, headers=headers):
        exec(code, namespace)
    assert namespace["event"] == json.loads(body)
    with (
        app.test_request_context("/hook", method="POST", data=body + b" ", headers=headers),
        pytest.raises(BadRequest),
    ):
        exec(code, namespace)


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
    receiver.verify = verified_with(sub["secret"])  # it answers 400 to what does not verify
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
    # The event's id on every attempt; each attempt's own time, signed afresh.
    assert {r.headers["webhook-id"] for r in got} == {payload["id"]}
    times = [int(r.headers["webhook-timestamp"]) for r in got]
    assert times == sorted(times)
    for request in got:
        assert request.headers["content-type"] == "application/json"
        assert request.headers["user-agent"].startswith("facesearch-webhooks/")
        assert verifies(sub["secret"], request.body, request.headers)
        # A secret made now signs only the standard headers.
        assert "facesearch-signature" not in request.headers
        assert "facesearch-event-id" not in request.headers

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
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == 1
    assert all(verifies(sub["secret"], r.body, r.headers) for r in receiver.requests)
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
    assert verifies(secret, request.body, request.headers)
    assert not is_legacy(secret)
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


def test_openapi_describes_deliveries_as_signed_callbacks(client: FlaskClient) -> None:
    """Both ways of getting deliveries (a subscription, a search's callback_url) describe the
    POST sent, with the Standard Webhooks headers; the document stays valid."""
    from openapi_spec_validator import validate

    spec = client.get("/openapi.json").get_json()
    validate(spec)
    for path, expression in (
        ("/v1/webhooks", "{$request.body#/url}"),
        ("/v1/searches", "{$request.body#/callback_url}"),
    ):
        operation = spec["paths"][path]["post"]
        (callback,) = operation["callbacks"].values()
        delivery = callback[expression]["post"]
        headers = {p["name"]: p for p in delivery["parameters"] if p["in"] == "header"}
        assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
        assert all(h["required"] for h in headers.values())
        assert "v1," in headers["webhook-signature"]["description"]
        schema = delivery["requestBody"]["content"]["application/json"]["schema"]
        assert set(schema["required"]) == {"id", "type", "created", "data"}
        assert "Facesearch-Signature" not in json.dumps(operation.get("description", ""))
    assert "webhook-signature" in spec["paths"]["/v1/webhooks"]["post"]["description"]
    rotate = spec["paths"]["/v1/webhooks/{webhook_id}/rotate-secret"]["post"]["description"]
    assert "webhook-signature" in rotate


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


def deliver_a_search(
    client: FlaskClient, sessions: sessionmaker[Session], settings: Settings
) -> dict[str, Any]:
    """A search finishes and its search.completed delivery makes its first attempt."""
    search = create_search(client)
    (delivery_id,) = finish_search(sessions, search["search_id"])
    attempt_delivery(delivery_id, 1, sessions=sessions, policy=policy(settings))
    delivery: dict[str, Any] = client.get(f"/v1/deliveries/{delivery_id}").get_json()
    return delivery


def end_grace_period(sessions: sessionmaker[Session], webhook_id: str) -> None:
    with session_scope(sessions) as session:
        sub = session.get_one(WebhookSubscription, webhook_id)
        sub.previous_secret_expires_at = utcnow() - timedelta(seconds=1)


def test_rotation_with_a_grace_period_signs_with_both_secrets(
    client: FlaskClient,
    receiver: Receiver,
    wh_settings: Settings,
    sessions: sessionmaker[Session],
) -> None:
    sub = subscribe(client, receiver.url + "/h")
    old = sub["secret"]
    receiver.verify = verified_with(old)  # the receiver holds the old secret
    rotated = client.post(
        f"/v1/webhooks/{sub['id']}/rotate-secret", json={"previous_valid_s": 3600}
    ).get_json()
    new = rotated["secret"]
    assert rotated["previous_secret_expires_at"] is not None
    assert not is_legacy(new)

    # During the grace period: two signatures, the new one first; either secret verifies, so
    # the receiver switches whenever it likes.
    assert deliver_a_search(client, sessions, wh_settings)["status"] == "succeeded"
    receiver.verify = verified_with(new)
    assert deliver_a_search(client, sessions, wh_settings)["status"] == "succeeded"
    for request in receiver.requests:
        assert request.headers["webhook-signature"].count("v1,") == 2
        assert verifies(new, request.body, request.headers)
        assert verifies(old, request.body, request.headers)

    # After it: only the new secret signs. A receiver still holding the old one refuses the
    # delivery (the attempt is logged as failed); given the new one, it takes the retry.
    end_grace_period(sessions, sub["id"])
    receiver.verify = verified_with(old)
    refused = deliver_a_search(client, sessions, wh_settings)
    assert refused["status"] == "pending"
    assert [a["status_code"] for a in refused["attempt_log"]] == [REJECTED.status]
    after = receiver.requests[-1]
    assert after.headers["webhook-signature"].count("v1,") == 1
    assert verifies(new, after.body, after.headers)
    assert not verifies(old, after.body, after.headers)
    receiver.verify = verified_with(new)
    attempt_delivery(refused["id"], 2, sessions=sessions, policy=policy(wh_settings))
    retried = client.get(f"/v1/deliveries/{refused['id']}").get_json()
    assert retried["status"] == "succeeded"
    assert receiver.requests[-1].headers["webhook-id"] == after.headers["webhook-id"]

    # A rotation without grace drops the old secret at once.
    again = client.post(f"/v1/webhooks/{sub['id']}/rotate-secret").get_json()
    assert again["previous_secret_expires_at"] is None
    receiver.verify = verified_with(new)
    assert deliver_a_search(client, sessions, wh_settings)["status"] == "pending"
    last = receiver.requests[-1]
    assert verifies(again["secret"], last.body, last.headers)
    assert not verifies(new, last.body, last.headers)
    assert (
        client.post(
            f"/v1/webhooks/{sub['id']}/rotate-secret", json={"previous_valid_s": -1}
        ).status_code
        == 422
    )


def test_a_secret_made_before_standard_webhooks_keeps_verifying_until_rotated(
    client: FlaskClient,
    receiver: Receiver,
    wh_settings: Settings,
    sessions: sessionmaker[Session],
) -> None:
    """A subscription whose secret was made before: its receivers, written for the earlier
    header, go on verifying; the standard headers verify too (the key being the secret's
    UTF-8 bytes); a rotation to a standard secret ends the earlier header after its grace."""
    sub = subscribe(client, receiver.url + "/h")
    legacy = legacy_secret()
    with session_scope(sessions) as session:
        session.get_one(WebhookSubscription, sub["id"]).secret = legacy

    def earlier_receiver(request: Any) -> bool:
        header = request.headers.get("facesearch-signature", "")
        return legacy_verify()(legacy, request.body, header)

    receiver.verify = earlier_receiver
    assert deliver_a_search(client, sessions, wh_settings)["status"] == "succeeded"
    first = receiver.requests[-1]
    assert first.headers["facesearch-event-id"] == first.headers["webhook-id"]
    assert first.headers["facesearch-signature"].startswith(
        f"t={first.headers['webhook-timestamp']},"
    )
    assert verifies(legacy, first.body, first.headers)  # the library, given legacy.encode()
    assert verified_with(legacy.encode())(first)

    new = client.post(
        f"/v1/webhooks/{sub['id']}/rotate-secret", json={"previous_valid_s": 3600}
    ).get_json()["secret"]
    assert not is_legacy(new)
    assert deliver_a_search(client, sessions, wh_settings)["status"] == "succeeded"
    during = receiver.requests[-1]
    assert during.headers["facesearch-signature"].count("v1=") == 1  # the earlier secret's
    assert verifies(new, during.body, during.headers)
    assert verifies(legacy, during.body, during.headers)

    end_grace_period(sessions, sub["id"])
    # The earlier receiver now refuses: there is no earlier header to check.
    assert deliver_a_search(client, sessions, wh_settings)["status"] == "pending"
    after = receiver.requests[-1]
    assert "facesearch-signature" not in after.headers
    assert "facesearch-event-id" not in after.headers
    assert verifies(new, after.body, after.headers)
    assert not verifies(legacy, after.body, after.headers)


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
