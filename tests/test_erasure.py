"""Erasure is real: deleting a person, an image or a gallery leaves nothing of them in any
table or in the object store; searches expire. Real Postgres, rows made by the API (uploads,
searches) and, for what a worker would write (faces, matches, webhook events), directly."""

from __future__ import annotations

import base64
import hashlib
import io
import json
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient
from PIL import Image as PILImage
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from core.queue import ERASE_GALLERY_TASK, PURGE_SEARCHES_TASK
from core.settings import Settings
from core.storage import LocalStore, open_store
from models import (
    DEFAULT_GALLERY_ID,
    ApiKey,
    Base,
    DeliveryAttempt,
    EventType,
    Face,
    Gallery,
    Image,
    Job,
    JobItem,
    JobStatus,
    Scope,
    Search,
    SearchFace,
    SearchMatch,
    WebhookDelivery,
    WebhookEvent,
    WebhookSubscription,
    utcnow,
)
from services.erasure import ERASED_NAME
from tests.conftest import make_client, make_key

PERSON = "Zelda Quixote-Erasure"
OTHER = "Otto Keepme"


def jpeg(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    PILImage.fromarray(pixels).save(buffer, format="JPEG")
    return buffer.getvalue()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def upload(client: FlaskClient, files: list[tuple[bytes, str]], label: str) -> dict[str, Any]:
    response = client.post(
        "/v1/images",
        data={"file": [(io.BytesIO(b), name) for b, name in files], "label": label},
        content_type="multipart/form-data",
    )
    assert response.status_code == 202, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


def search(client: FlaskClient, data: bytes) -> dict[str, Any]:
    response = client.post(
        "/v1/searches",
        data={"file": (io.BytesIO(data), "query.jpg")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 202, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


def add_face(session: Session, image_id: int, index: int = 0, label: str | None = None) -> Face:
    face = Face(
        label=label,
        image_id=image_id,
        face_index=index,
        model_name="m",
        dim=2,
        embedding=np.array([0.6, 0.8], "<f4").tobytes(),
        box_x=11 + index,
        box_y=12,
        box_w=30,
        box_h=40,
        confidence=0.99,
        landmarks={"left_eye": [20, 25]},
        indexed_at=utcnow(),
    )
    session.add(face)
    session.flush()
    return face


def add_results(
    session: Session, search_id: str, faces: list[tuple[Face, str | None]]
) -> list[dict[str, Any]]:
    """What the search worker writes: one query face whose matches are ``faces`` in rank
    order. Returns the matches as a payload renders them."""
    query_face = SearchFace(
        search_id=search_id,
        face_index=0,
        box_x=1,
        box_y=2,
        box_w=3,
        box_h=4,
        confidence=0.98,
        landmarks={},
    )
    rendered = []
    for rank, (face, label) in enumerate(faces, start=1):
        query_face.matches.append(
            SearchMatch(
                rank=rank,
                score=1.0 - rank / 10,
                face_id=face.id,
                image_id=face.image_id,
                label=label,
                box_x=face.box_x,
                box_y=face.box_y,
                box_w=face.box_w,
                box_h=face.box_h,
            )
        )
        rendered.append(
            {
                "rank": rank,
                "score": 1.0 - rank / 10,
                "image_id": face.image_id,
                "face_id": face.id,
                "label": label,
                "box": face.box,
                "image_url": f"/v1/images/{face.image_id}/content",
            }
        )
    session.add(query_face)
    session.flush()
    return rendered


def add_event(
    session: Session, gallery_id: int, event_type: EventType, data: dict[str, Any]
) -> WebhookEvent:
    """A stored event with one delivery whose receiver echoed the payload back."""
    subscription = session.scalar(
        select(WebhookSubscription).where(WebhookSubscription.gallery_id == gallery_id)
    )
    if subscription is None:
        subscription = WebhookSubscription(
            gallery_id=gallery_id,
            url="https://hooks.example.com/in",
            events=[t.value for t in EventType],
            secret="s" * 32,
        )
        session.add(subscription)
        session.flush()
    event = WebhookEvent(type=event_type, gallery_id=gallery_id, payload={})
    session.add(event)
    session.flush()
    event.payload = {"id": event.id, "type": event_type.value, "created": 0, "data": data}
    delivery = WebhookDelivery(event_id=event.id, subscription_id=subscription.id, url="x")
    session.add(delivery)
    session.flush()
    session.add(
        DeliveryAttempt(
            delivery_id=delivery.id,
            number=1,
            attempted_at=utcnow(),
            status_code=200,
            succeeded=True,
            response_excerpt=json.dumps({"echo": event.payload}, ensure_ascii=False),
        )
    )
    session.flush()
    return event


def render(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, default=str)
    if isinstance(value, bytes | memoryview):
        raw = bytes(value)
        return raw.hex() + " " + raw.decode("latin-1")
    return str(value)


def dump_database(session: Session) -> str:
    """Every row of every table, every value rendered to text (JSON included)."""
    lines = []
    for table in Base.metadata.sorted_tables:
        for row in session.execute(select(table)).all():
            lines.append(table.name + ": " + " | ".join(render(v) for v in row))
    return "\n".join(lines)


def dump_store(settings: Settings) -> dict[str, bytes]:
    """Every object in the store: its key and its bytes."""
    store = open_store(settings.storage_url)
    assert isinstance(store, LocalStore)
    if not store.root.exists():
        return {}
    keys = [p.relative_to(store.root).as_posix() for p in store.root.rglob("*") if p.is_file()]
    return {key: store.get(key) for key in keys}


def traces(session: Session, settings: Settings, needles: list[str]) -> list[str]:
    """Where any of ``needles`` (text, or the sha256 of bytes) is still found: rows, object
    keys, object bytes, or bytes whose sha256 is a needle."""
    database = dump_database(session)
    objects = dump_store(settings)
    found = [f"row: {n}" for n in needles if n in database]
    for key, data in objects.items():
        text = data.decode("latin-1")
        found += [f"key {key}: {n}" for n in needles if n in key]
        found += [f"bytes of {key}: {n}" for n in needles if n in text or n == sha(data)]
    return found


def queued(settings: Settings) -> list[dict[str, Any]]:
    folder = settings.broker_folder / "queue"
    return [json.loads(p.read_bytes()) for p in sorted(folder.glob("*.msg"))]


def task_args(message: dict[str, Any]) -> Any:
    return json.loads(base64.b64decode(message["body"]))[0]


# --- a person ---------------------------------------------------------------------------------


def test_erasing_a_person_leaves_nothing_of_them_in_any_table_or_object(
    client: FlaskClient, settings: Settings, session: Session
) -> None:
    person = [jpeg(1), jpeg(2), jpeg(3)]
    names = [f"{PERSON}_{n:04}.jpg" for n in (1, 2, 3)]
    kept = jpeg(4)
    job = upload(client, list(zip(person, names, strict=True)), PERSON)
    upload(client, [(kept, "otto_0001.jpg")], OTHER)
    images = {i.label: i for i in session.scalars(select(Image))}  # one of each is enough
    mine = session.scalars(select(Image).where(Image.label == PERSON).order_by(Image.id)).all()
    assert len(mine) == 3
    # As the worker writes them: the image's label on one face of each image.
    faces = [
        add_face(session, image.id, index, label=PERSON if index == 0 else None)
        for image in mine
        for index in (0, 1)
    ]
    other_face = add_face(session, images[OTHER].id, label=OTHER)
    ingest = session.get_one(Job, job["job_id"])
    ingest.result = {"image_ids": [i.id for i in mine], "faces": len(faces)}

    # A stored search whose matches name them (and the other person), its webhook events,
    # and a delivery whose receiver echoed the payload.
    query = search(client, jpeg(5))
    matched = [(faces[0], PERSON), (other_face, OTHER), (faces[2], PERSON)]
    rendered = add_results(session, query["search_id"], matched)
    add_event(
        session,
        DEFAULT_GALLERY_ID,
        EventType.SEARCH_COMPLETED,
        {
            "search_id": query["search_id"],
            "job_id": query["job_id"],
            "match_count": 3,
            "faces": [{"box": {"x": 1}, "matches": rendered}],
        },
    )
    add_event(
        session,
        DEFAULT_GALLERY_ID,
        EventType.JOB_COMPLETED,
        {"job_id": ingest.id, "result": dict(ingest.result)},
    )
    # A match left from before (its image deleted, ids nulled) that names them by label only.
    add_results(session, search(client, jpeg(6))["search_id"], [(other_face, OTHER)])
    stale = SearchMatch(
        search_face_id=session.scalars(select(SearchFace.id).order_by(SearchFace.id)).all()[-1],
        rank=2,
        score=0.5,
        face_id=None,
        image_id=None,
        label=PERSON,
        box_x=0,
        box_y=0,
        box_w=1,
        box_h=1,
    )
    session.add(stale)
    session.commit()

    face_ids = sorted(f.id for f in faces)
    needles = [PERSON, *names, *(sha(data) for data in person)]
    # The dumps see them before: the search below can find what it looks for.
    before = traces(session, settings, needles)
    assert any(t.startswith("row:") for t in before)
    assert any(t.startswith("key") for t in before)
    assert any(t.startswith("bytes of") for t in before)

    sent = len(queued(settings))
    response = client.delete(f"/v1/labels/{quote(PERSON)}")
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {
        "images": 3,
        "faces": 6,
        "matches": 3,
        "webhook_events": 2,
        "job_items": 3,
    }

    session.expire_all()
    assert traces(session, settings, needles) == []
    # The vectors: one delete task naming every face of the person.
    deletions = [m for m in queued(settings)[sent:] if "delete_vectors" in m["headers"]["task"]]
    assert len(deletions) == 1
    assert sorted(task_args(deletions[0])[1]) == face_ids

    # Everything else is still there, and still reads well.
    assert client.get(f"/v1/images/{images[OTHER].id}/content").data == kept
    other_matches = session.scalars(select(SearchMatch).order_by(SearchMatch.id)).all()
    assert [(m.label, m.rank) for m in other_matches] == [(OTHER, 1), (OTHER, 1)]
    event = session.scalars(
        select(WebhookEvent).where(WebhookEvent.type == EventType.SEARCH_COMPLETED)
    ).one()
    assert event.payload["data"]["match_count"] == 1
    assert [m["label"] for m in event.payload["data"]["faces"][0]["matches"]] == [OTHER]
    assert event.payload["data"]["faces"][0]["matches"][0]["rank"] == 1
    items = session.scalars(select(JobItem).where(JobItem.job_id == ingest.id)).all()
    assert [(i.name, i.image_id) for i in items] == [(ERASED_NAME, None)] * 3
    assert session.get_one(Job, ingest.id).result["image_ids"] == []
    labels = client.get("/v1/labels").get_json()["items"]
    assert [item["label"] for item in labels] == [OTHER]

    again = client.delete(f"/v1/labels/{quote(PERSON)}")
    assert again.status_code == 404
    assert again.get_json()["error"]["code"] == "no_such_label"


def test_erasing_a_label_needs_the_write_scope(
    settings: Settings, sessions: sessionmaker[Session], session: Session
) -> None:
    upload(make_client(settings, sessions), [(jpeg(7), "a.jpg")], PERSON)
    reader = make_client(settings, sessions, key=make_key(sessions, scope=Scope.SEARCH))
    assert reader.delete(f"/v1/labels/{quote(PERSON)}").status_code == 403
    assert session.scalar(select(func.count(Image.id)).where(Image.label == PERSON)) == 1


# --- an image -------------------------------------------------------------------------------------


def test_erasing_an_image_removes_its_copies_and_keeps_its_neighbours(
    client: FlaskClient, settings: Settings, session: Session
) -> None:
    first, second = jpeg(10), jpeg(11)
    job = upload(client, [(first, "first.jpg"), (second, "second.jpg")], PERSON)
    one, two = session.scalars(select(Image).order_by(Image.id)).all()
    face_one, face_two = add_face(session, one.id), add_face(session, two.id)
    query = search(client, jpeg(12))
    rendered = add_results(session, query["search_id"], [(face_one, PERSON), (face_two, PERSON)])
    event = add_event(
        session,
        DEFAULT_GALLERY_ID,
        EventType.SEARCH_COMPLETED,
        {"search_id": query["search_id"], "match_count": 2, "faces": [{"matches": rendered}]},
    )
    session.commit()
    sent = len(queued(settings))
    one_id, two_id, face_one_id = one.id, two.id, face_one.id

    assert client.delete(f"/v1/images/{one_id}").status_code == 204

    session.expire_all()
    assert session.get(Image, one_id) is None
    assert session.get(Face, face_one_id) is None
    matches = session.scalars(select(SearchMatch)).all()
    assert [(m.image_id, m.rank) for m in matches] == [(two_id, 1)]
    data = session.get_one(WebhookEvent, event.id).payload["data"]
    assert [(m["image_id"], m["rank"]) for m in data["faces"][0]["matches"]] == [(two_id, 1)]
    assert data["match_count"] == 1
    attempt = session.scalars(select(DeliveryAttempt)).one()
    assert attempt.response_excerpt is None  # it echoed the erased match
    items = session.scalars(
        select(JobItem).where(JobItem.job_id == job["job_id"]).order_by(JobItem.position)
    ).all()
    assert [(i.name, i.image_id) for i in items] == [(ERASED_NAME, None), ("second.jpg", two_id)]
    objects = dump_store(settings)
    assert sha(first) not in {sha(b) for b in objects.values()}
    assert second in objects.values()
    deletions = queued(settings)[sent:]
    assert [task_args(m) for m in deletions] == [["m", [face_one_id]]]


def test_erasing_with_the_broker_down_still_erases_and_answers(
    settings: Settings, sessions: sessionmaker[Session], session: Session
) -> None:
    client = make_client(settings, sessions)
    upload(client, [(jpeg(13), "a.jpg")], PERSON)
    image_id = session.scalars(select(Image.id)).one()
    add_face(session, image_id)
    session.commit()
    down = make_client(
        settings.model_copy(update={"broker_url": "redis://127.0.0.1:1/0"}), sessions
    )
    assert down.delete(f"/v1/images/{image_id}").status_code == 204
    session.expire_all()
    assert session.get(Image, image_id) is None
    assert dump_store(settings) == {}


# --- galleries do not see each other -----------------------------------------------------------


def _second_gallery(sessions: sessionmaker[Session], name: str) -> int:
    with sessions() as s:
        gallery = Gallery(name=name)
        s.add(gallery)
        s.commit()
        return gallery.id


def test_another_gallery_cannot_erase_and_keeps_its_own_copy_of_the_same_bytes(
    client: FlaskClient, settings: Settings, sessions: sessionmaker[Session], session: Session
) -> None:
    shared, query_bytes = jpeg(20), jpeg(21)
    upload(client, [(shared, "mine.jpg")], PERSON)
    mine = session.scalars(select(Image)).one()
    other_id = _second_gallery(sessions, "other")
    other = make_client(
        settings, sessions, key=make_key(sessions, scope=Scope.WRITE, gallery_id=other_id)
    )
    # The same bytes in the other gallery, under the same label; and a search there whose
    # query photo is this gallery's second image.
    upload(other, [(shared, "theirs.jpg")], PERSON)
    upload(client, [(query_bytes, "q.jpg")], OTHER)
    search(other, query_bytes)
    theirs = session.scalars(select(Image).where(Image.gallery_id == other_id)).one()
    mine_id, theirs_id = mine.id, theirs.id

    # Another gallery's key: 404 for this gallery's image and for a label it does not have.
    refused = other.delete(f"/v1/images/{mine_id}")
    assert refused.status_code == 404
    assert set(refused.get_json()) == {"error"}
    assert other.delete(f"/v1/labels/{quote(OTHER)}").status_code == 404
    session.expire_all()
    assert session.get(Image, mine_id) is not None
    assert len(session.scalars(select(Image)).all()) == 3

    # The other gallery erases its person: this gallery's image of the same bytes survives.
    assert other.delete(f"/v1/labels/{quote(PERSON)}").get_json()["images"] == 1
    session.expire_all()
    assert session.get(Image, theirs_id) is None
    assert session.get(Image, mine_id) is not None
    assert client.get(f"/v1/images/{mine_id}/content").data == shared
    assert [i["label"] for i in client.get("/v1/labels").get_json()["items"]] == [OTHER, PERSON]

    # This gallery erases the image that the other gallery's search used as its query:
    # the query's bytes stay while that search exists.
    second = session.scalars(select(Image).where(Image.label == OTHER)).one()
    assert client.delete(f"/v1/images/{second.id}").status_code == 204
    assert query_bytes in dump_store(settings).values()


# --- a gallery ------------------------------------------------------------------------------------


def test_erasing_a_gallery_through_the_worker(
    settings: Settings, sessions: sessionmaker[Session], session: Session
) -> None:
    from workers.erasure import run_gallery_erasure

    admin = make_client(settings, sessions, key=make_key(sessions, gallery_id=None))
    made = admin.post("/v1/galleries", json={"name": "doomed"})
    assert made.status_code == 201
    doomed = made.get_json()["id"]
    writer = make_client(
        settings, sessions, key=make_key(sessions, scope=Scope.WRITE, gallery_id=doomed)
    )
    own, shared, query_bytes = jpeg(30), jpeg(31), jpeg(32)
    upload(writer, [(own, f"{PERSON}_1.jpg"), (shared, f"{PERSON}_2.jpg")], PERSON)
    upload(make_client(settings, sessions), [(shared, "default.jpg")], OTHER)
    images = session.scalars(select(Image).where(Image.gallery_id == doomed)).all()
    faces = [add_face(session, image.id) for image in images]
    face_ids = sorted(f.id for f in faces)
    query = search(writer, query_bytes)
    rendered = add_results(session, query["search_id"], [(faces[0], PERSON)])
    add_event(
        session,
        doomed,
        EventType.SEARCH_COMPLETED,
        {"search_id": query["search_id"], "faces": [{"matches": rendered}]},
    )
    session.commit()

    response = admin.delete(f"/v1/galleries/{doomed}")
    assert response.status_code == 202
    job_id = response.get_json()["job_id"]
    assert queued(settings)[-1]["headers"]["task"] == ERASE_GALLERY_TASK
    assert writer.get("/v1/labels").status_code in (401, 403, 404)  # its keys stop working

    vectors: list[tuple[str, list[int]]] = []
    continuations: list[str] = []

    def run() -> None:
        run_gallery_erasure(
            job_id,
            sessions=sessions,
            store=open_store(settings.storage_url),
            send_vector_deletion=lambda model, ids: vectors.append((model, ids)),
            continue_later=lambda: continuations.append(job_id),
            batch_size=1,
            budget_s=0,  # one step per run: every step is also a resumption
        )

    for _ in range(50):
        run()
        session.expire_all()
        if session.get_one(Job, job_id).status.finished:
            break
    job = session.get_one(Job, job_id)
    assert job.status == JobStatus.SUCCEEDED
    assert len(continuations) > 5
    assert job.result["images"] == 2
    assert job.result["faces"] == 2
    assert job.result["searches"] == 1
    assert job.result["webhook_subscriptions"] == 1
    assert job.result["galleries"] == 1
    assert job.result["objects"] == 2  # its own image and the query; not the shared bytes
    assert sorted(i for _, ids in vectors for i in ids) == face_ids

    assert session.get(Gallery, doomed) is None
    assert job.gallery_id is None
    for model in (Image, Search, WebhookEvent, WebhookSubscription, ApiKey):
        assert session.scalar(select(func.count()).where(model.gallery_id == doomed)) == 0
    assert session.scalar(select(func.count(Job.id)).where(Job.gallery_id == doomed)) == 0
    assert session.scalar(select(func.count(WebhookDelivery.id))) == 0
    needles = [PERSON, f"{PERSON}_1.jpg", sha(own), sha(query_bytes)]
    assert traces(session, settings, needles) == []
    # The other gallery's image with the same bytes is intact.
    assert shared in dump_store(settings).values()
    kept = session.scalars(select(Image).where(Image.gallery_id == DEFAULT_GALLERY_ID)).one()
    assert kept.label == OTHER

    # A redelivered task does no harm.
    result = dict(job.result)
    run()
    session.expire_all()
    assert session.get_one(Job, job_id).result == result
    assert session.get_one(Job, job_id).status == JobStatus.SUCCEEDED


# --- retention ----------------------------------------------------------------------------------


def test_searches_past_retention_are_purged_by_the_command(
    client: FlaskClient,
    settings: Settings,
    sessions: sessionmaker[Session],
    session: Session,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from cli import main as cli_main
    from models import db as models_db

    upload(client, [(jpeg(40), "g.jpg")], PERSON)
    face = add_face(session, session.scalars(select(Image)).one().id)  # stays: not expired
    old_query, new_query = jpeg(41), jpeg(42)
    old, new = search(client, old_query), search(client, new_query)
    for made in (old, new):
        rendered = add_results(session, made["search_id"], [(face, PERSON)])
        add_event(
            session,
            DEFAULT_GALLERY_ID,
            EventType.SEARCH_COMPLETED,
            {"search_id": made["search_id"], "faces": [{"matches": rendered}]},
        )
        add_event(session, DEFAULT_GALLERY_ID, EventType.JOB_COMPLETED, {"job_id": made["job_id"]})
    session.get_one(Search, old["search_id"]).created_at = utcnow() - timedelta(days=31)
    session.commit()

    monkeypatch.setattr(cli_main, "get_settings", lambda: settings)
    monkeypatch.setattr(models_db, "make_session_factory", lambda engine: sessions)
    outcome = CliRunner().invoke(cli_main.cli, ["purge"])
    assert outcome.exit_code == 0, outcome.output
    assert "older than 30 days: 1 searches, 1 matches, 2 webhook events, 1 objects" in (
        outcome.output
    )

    session.expire_all()
    assert session.get(Search, old["search_id"]) is None
    assert session.get(Job, old["job_id"]) is None
    assert session.get(Search, new["search_id"]) is not None
    events = session.scalars(select(WebhookEvent)).all()
    assert {e.payload["data"].get("search_id") or e.payload["data"]["job_id"] for e in events} == {
        new["search_id"],
        new["job_id"],
    }
    assert traces(session, settings, [old["search_id"], old["job_id"], sha(old_query)]) == []
    assert new_query in dump_store(settings).values()

    # Nothing more is due: a second run removes nothing.
    again = CliRunner().invoke(cli_main.cli, ["purge"])
    assert "0 searches" in again.output
    assert session.get(Search, new["search_id"]) is not None


def test_beat_schedules_the_purge_and_the_tasks_are_registered(tmp_path: Path) -> None:
    from cli.main import cli
    from workers.celery_app import celery_app

    schedule = celery_app.conf.beat_schedule
    assert PURGE_SEARCHES_TASK in [entry["task"] for entry in schedule.values()]
    assert all(float(entry["schedule"]) >= 60 for entry in schedule.values())
    assert {PURGE_SEARCHES_TASK, ERASE_GALLERY_TASK} <= set(celery_app.tasks)
    assert CliRunner().invoke(cli, ["beat", "--help"]).exit_code == 0
