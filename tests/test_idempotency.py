"""Idempotency-Key: checked, bound to the request and to the API key, expiring, and safe
under concurrent duplicates (the same job or a 409, never a 500)."""

from __future__ import annotations

import io
import threading
from datetime import timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from core.settings import Settings
from models import Job, Scope, Search
from models.base import utcnow
from tests.conftest import make_client, make_key
from tests.test_api import error_of, jpeg
from tests.test_archives import make_tar


def post_images(client: FlaskClient, data: bytes, key: str | None, **form: Any) -> Any:
    headers = {"Idempotency-Key": key} if key is not None else {}
    return client.post(
        "/v1/images",
        data={"file": [(io.BytesIO(data), "x.jpg")], **form},
        content_type="multipart/form-data",
        headers=headers,
    )


def post_search(client: FlaskClient, data: bytes, key: str | None, **form: Any) -> Any:
    headers = {"Idempotency-Key": key} if key is not None else {}
    return client.post(
        "/v1/searches",
        data={"file": (io.BytesIO(data), "q.jpg"), **form},
        content_type="multipart/form-data",
        headers=headers,
    )


# --- the header itself ------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "k" * 201,  # past the limit (the column holds 200)
        "k" * 300,
        "",  # empty
        "caf\u00e9",  # not ASCII (a header's bytes are read as Latin-1)
    ],
)
def test_a_malformed_key_is_a_422(client: FlaskClient, session: Session, key: str) -> None:
    for response in (post_search(client, jpeg(1), key), post_images(client, jpeg(1), key)):
        assert response.status_code == 422, response.get_json()
        assert error_of(response)["code"] in ("invalid_idempotency_key", "invalid_text")
    assert session.scalar(select(Job.id)) is None  # nothing was made


def test_a_key_of_200_printable_characters_is_accepted(client: FlaskClient) -> None:
    key = ("a-Z 0~!" * 40)[:200]
    first = post_search(client, jpeg(1), key)
    assert first.status_code == 202
    assert post_search(client, jpeg(1), key).get_json()["job_id"] == first.get_json()["job_id"]


# --- bound to the request ---------------------------------------------------------------


def test_the_same_key_with_another_file_is_a_422(client: FlaskClient, session: Session) -> None:
    first = post_images(client, jpeg(1), "upload-1")
    assert first.status_code == 202
    again = post_images(client, jpeg(2), "upload-1")
    assert again.status_code == 422
    assert error_of(again)["code"] == "idempotency_key_reused"
    assert error_of(again)["details"]["job_id"] == first.get_json()["job_id"]
    assert len(session.scalars(select(Job)).all()) == 1


def test_the_same_key_with_another_label_is_a_422(client: FlaskClient) -> None:
    assert post_images(client, jpeg(1), "k", label="Ada").status_code == 202
    assert post_images(client, jpeg(1), "k", label="Ada").status_code == 202
    assert post_images(client, jpeg(1), "k", label="Bob").status_code == 422


def test_a_search_retried_gets_its_job_and_search_a_changed_one_a_422(
    client: FlaskClient, session: Session
) -> None:
    first = post_search(client, jpeg(3), "s-1", top_k="5")
    again = post_search(client, jpeg(3), "s-1", top_k="5")
    assert first.status_code == again.status_code == 202
    assert again.get_json()["search_id"] == first.get_json()["search_id"]
    changed = post_search(client, jpeg(3), "s-1", top_k="6")
    assert changed.status_code == 422
    assert error_of(changed)["code"] == "idempotency_key_reused"
    assert len(session.scalars(select(Search)).all()) == 1


def test_an_archive_retried_gets_its_job_a_changed_one_a_422(client: FlaskClient) -> None:
    data = make_tar([("Ada/Ada_0001.jpg", jpeg(4))])

    def post(label_from: str) -> Any:
        return client.post(
            f"/v1/archives?label_from={label_from}",
            data=data,
            content_type="application/octet-stream",
            headers={"Idempotency-Key": "a-1"},
        )

    first = post("folder")
    assert first.status_code == 202
    assert post("folder").get_json()["job_id"] == first.get_json()["job_id"]
    assert post("filename").status_code == 422


def test_another_kind_of_request_with_the_key_is_a_409(client: FlaskClient) -> None:
    assert post_images(client, jpeg(1), "k-1").status_code == 202
    assert post_search(client, jpeg(1), "k-1").status_code == 409


# --- scoped per API key -----------------------------------------------------------------


def test_a_key_is_scoped_to_the_api_key_that_sent_it(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    one = make_client(settings, sessions, key=make_key(sessions, scope=Scope.SEARCH))
    two = make_client(settings, sessions, key=make_key(sessions, scope=Scope.SEARCH))
    first = post_search(one, jpeg(5), "same")
    other = post_search(two, jpeg(5), "same")
    assert first.status_code == other.status_code == 202
    assert first.get_json()["job_id"] != other.get_json()["job_id"]
    # Each key's retry finds its own job.
    assert post_search(two, jpeg(5), "same").get_json()["job_id"] == other.get_json()["job_id"]
    # A different request under another key's Idempotency-Key is no conflict either.
    assert post_search(two, jpeg(6), "only-one's").status_code == 202


# --- expiry -----------------------------------------------------------------------------


def test_an_expired_key_makes_a_new_job(
    client: FlaskClient, settings: Settings, session: Session
) -> None:
    first = post_search(client, jpeg(7), "daily").get_json()["job_id"]
    # Older than IDEMPOTENCY_KEY_TTL_S (24 h by default).
    age = timedelta(seconds=settings.idempotency_key_ttl_s + 60)
    session.execute(update(Job).where(Job.id == first).values(created_at=utcnow() - age))
    session.commit()
    # Expired: even another request may use the key now, and makes a new job.
    second = post_search(client, jpeg(8), "daily")
    assert second.status_code == 202
    assert second.get_json()["job_id"] != first
    old = session.get_one(Job, first)
    session.refresh(old)
    assert old.idempotency_key is None  # released
    assert post_search(client, jpeg(8), "daily").get_json()["job_id"] == second.get_json()["job_id"]


# --- concurrent duplicates --------------------------------------------------------------


def test_a_duplicate_not_yet_visible_is_a_409(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The constraint refused the key, but the job that holds it cannot be read yet."""

    def conflict(*_: Any) -> None:
        raise IntegrityError("UPDATE jobs ...", {}, Exception("duplicate key value"))

    monkeypatch.setattr("api.searches.claim_key", conflict)
    response = post_search(client, jpeg(9), "racing")
    assert response.status_code == 409
    assert error_of(response)["code"] == "idempotency_key_in_use"
    assert response.headers["Retry-After"] == "1"


@pytest.mark.parametrize("route", ["/v1/searches", "/v1/images"])
def test_concurrent_duplicates_get_one_job_never_a_500(
    committed: tuple[Settings, sessionmaker[Session]], route: str
) -> None:
    settings, sessions = committed
    key = make_key(sessions)
    clients = [make_client(settings, sessions, key=key) for _ in range(4)]
    data = jpeg(10)
    barrier = threading.Barrier(len(clients))
    answers: list[tuple[int, Any]] = []

    def post(client: FlaskClient) -> None:
        barrier.wait()
        response = client.post(
            route,
            data={"file": (io.BytesIO(data), "q.jpg")},
            content_type="multipart/form-data",
            headers={"Idempotency-Key": "four-at-once"},
        )
        answers.append((response.status_code, response.get_json()))

    threads = [threading.Thread(target=post, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    statuses = sorted(status for status, _ in answers)
    assert len(statuses) == 4
    assert set(statuses) <= {202, 409}, answers
    assert 202 in statuses
    job_ids = {body["job_id"] for status, body in answers if status == 202}
    assert len(job_ids) == 1, answers
    with sessions() as session:
        assert len(session.scalars(select(Job)).all()) == 1
