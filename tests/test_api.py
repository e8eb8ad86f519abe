"""The HTTP API: contract, error paths and bad input. No worker runs here: these tests check
what the API itself promises (validation, rows, stored bytes, queued tasks, clear errors)."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flask.testing import FlaskClient
from PIL import Image as PILImage
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.settings import Settings
from models import Face, Image, ImageStatus, ItemStatus, Job, JobStatus, utcnow
from tests.conftest import make_client


def jpeg(seed: int = 0, size: tuple[int, int] = (80, 60)) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    PILImage.fromarray(pixels).save(buffer, format="JPEG")
    return buffer.getvalue()


def queued_messages(settings: Settings) -> list[dict[str, Any]]:
    folder = settings.broker_folder / "queue"
    return [json.loads(p.read_bytes()) for p in sorted(folder.glob("*.msg"))]


def upload(
    client: FlaskClient,
    *files: tuple[bytes, str],
    label: str | None = None,
    headers: dict[str, str] | None = None,
) -> Any:
    data: dict[str, Any] = {"file": [(io.BytesIO(b), name) for b, name in files]}
    if label is not None:
        data["label"] = label
    return client.post(
        "/v1/images", data=data, content_type="multipart/form-data", headers=headers or {}
    )


def error_of(response: Any) -> dict[str, Any]:
    body = response.get_json()
    assert set(body) == {"error"}, body
    assert body["error"]["message"], body
    return body["error"]


# --- upload and poll ---------------------------------------------------------------------


def test_upload_answers_202_with_job_location_and_queues_one_task(
    client: FlaskClient, settings: Settings, session: Session
) -> None:
    response = upload(client, (jpeg(1), "a.jpg"), (jpeg(2), "b.jpg"), label="Ada Lovelace")
    assert response.status_code == 202
    body = response.get_json()
    assert body["status"] == "queued"
    assert response.headers["Location"] == f"/v1/jobs/{body['job_id']}"

    job = client.get(response.headers["Location"]).get_json()
    assert job["kind"] == "ingest"
    assert job["progress"] == {"total": 2, "done": 0, "failed": 0, "skipped": 0} | {
        "total_known": True,
        "images_per_s": None,
        "eta_s": None,
    }
    assert {
        "id",
        "kind",
        "status",
        "progress",
        "error",
        "created_at",
        "finished_at",
        "result",
    } <= set(job)

    images = session.scalars(select(Image).order_by(Image.id)).all()
    assert [(i.label, i.status, i.filename) for i in images] == [
        ("Ada Lovelace", ImageStatus.PENDING, "a.jpg"),
        ("Ada Lovelace", ImageStatus.PENDING, "b.jpg"),
    ]
    messages = queued_messages(settings)
    assert len(messages) == 1
    assert messages[0]["headers"]["task"] == "facesearch.ingest_images"


def test_same_bytes_are_stored_once_and_skipped(
    client: FlaskClient, settings: Settings, session: Session
) -> None:
    data = jpeg(3)
    first = upload(client, (data, "one.jpg"), (data, "same-again.jpg")).get_json()
    job = client.get(f"/v1/jobs/{first['job_id']}").get_json()
    assert job["progress"]["skipped"] == 1
    assert job["items"][1]["status"] == "skipped"
    assert "already in the gallery" in job["items"][1]["error"]

    second = upload(client, (data, "third.jpg")).get_json()
    assert second["status"] == "succeeded"  # nothing new to do: finished at once
    assert len(session.scalars(select(Image)).all()) == 1
    stored = list((settings.data_dir / "objects").rglob("*"))
    assert len([p for p in stored if p.is_file()]) == 1
    assert len(queued_messages(settings)) == 1  # no task for a job with nothing to do


def test_idempotency_key_returns_the_same_job(client: FlaskClient, session: Session) -> None:
    headers = {"Idempotency-Key": "upload-42"}
    first = upload(client, (jpeg(4), "x.jpg"), headers=headers).get_json()
    again = upload(client, (jpeg(4), "x.jpg"), headers=headers).get_json()
    assert again["job_id"] == first["job_id"]
    assert len(session.scalars(select(Image)).all()) == 1


def test_idempotency_key_of_another_kind_is_a_conflict(client: FlaskClient) -> None:
    headers = {"Idempotency-Key": "k-1"}
    upload(client, (jpeg(6), "x.jpg"), headers=headers)
    response = client.post(
        "/v1/searches",
        data={"file": (io.BytesIO(jpeg(7)), "q.jpg")},
        headers=headers,
        content_type="multipart/form-data",
    )
    assert response.status_code == 409
    assert "ingest" in error_of(response)["message"]


# --- bad input -----------------------------------------------------------------------------


def test_no_file_part(client: FlaskClient) -> None:
    response = client.post("/v1/images", data={"label": "x"}, content_type="multipart/form-data")
    assert response.status_code == 422
    assert "file" in error_of(response)["message"]


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        (b"", 422, "empty"),
        (b"just some text, not an image", 415, "not_an_image"),
        (jpeg(8, (300, 300))[:700], 422, "corrupt"),
    ],
)
def test_single_bad_file_is_refused_with_a_reason(
    client: FlaskClient, session: Session, data: bytes, status: int, code: str
) -> None:
    response = upload(client, (data, "bad.jpg"))
    assert response.status_code == status
    error = error_of(response)
    assert error["code"] == code
    assert error["message"].startswith("bad.jpg: ")
    assert session.scalars(select(Job)).all() == []  # nothing half-written


def test_unsupported_format(client: FlaskClient) -> None:
    buffer = io.BytesIO()
    PILImage.new("RGB", (32, 32)).save(buffer, format="ICO")
    response = upload(client, (buffer.getvalue(), "icon.ico"))
    assert response.status_code == 415
    assert "ICO images are not supported" in error_of(response)["message"]


def test_oversized_file_and_oversized_request(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    small = settings.model_copy(update={"max_upload_bytes": 10_000, "max_request_bytes": 200_000})
    client = make_client(small, sessions)
    big = jpeg(9, (400, 400))
    assert len(big) > 10_000
    response = upload(client, (big, "big.jpg"))
    assert response.status_code == 413
    assert "10,000 bytes" in error_of(response)["message"]

    response = upload(client, *[(big, f"{i}.jpg") for i in range(3)])
    assert response.status_code == 413
    assert "200,000 bytes" in error_of(response)["message"]


def test_too_many_files(settings: Settings, sessions: sessionmaker[Session]) -> None:
    client = make_client(settings.model_copy(update={"max_files_per_request": 2}), sessions)
    response = upload(client, *[(jpeg(i), f"{i}.jpg") for i in range(3)])
    assert response.status_code == 413
    assert "the limit is 2" in error_of(response)["message"]


def test_decompression_bomb_is_refused(client: FlaskClient) -> None:
    buffer = io.BytesIO()
    PILImage.new("L", (9000, 9000)).save(buffer, format="PNG")  # 81 Mpx in ~80 KB
    response = upload(client, (buffer.getvalue(), "bomb.png"))
    assert response.status_code == 422
    assert error_of(response)["code"] == "too_many_pixels"


def test_many_files_each_get_their_own_image_and_stored_bytes(
    client: FlaskClient, settings: Settings, session: Session
) -> None:
    """A request's new images are inserted together and its bytes stored several at a
    time: every item must still point at the image of its own bytes."""
    blobs = [jpeg(20 + i) for i in range(6)]
    files = [(b, f"{i}.jpg") for i, b in enumerate(blobs)] + [(blobs[2], "2-again.jpg")]
    response = upload(client, *files)
    assert response.status_code == 202
    job = session.get_one(Job, response.get_json()["job_id"])
    items = sorted(job.items, key=lambda item: item.position)
    assert [item.status for item in items] == [ItemStatus.PENDING] * 6 + [ItemStatus.SKIPPED]
    for item, data in zip(items, [*blobs, blobs[2]], strict=True):
        image = session.get_one(Image, item.image_id)
        assert image.sha256 == hashlib.sha256(data).hexdigest()
        assert image.filename == item.name.replace("-again", "")
    stored = [p for p in (settings.data_dir / "objects").rglob("*") if p.is_file()]
    assert sorted(p.read_bytes() for p in stored) == sorted(blobs)


def test_mixed_upload_keeps_the_good_files_and_records_the_bad(
    client: FlaskClient, session: Session
) -> None:
    response = upload(client, (jpeg(10), "good.jpg"), (b"%PDF-1.4 nope", "doc.pdf"))
    assert response.status_code == 202
    job = client.get(f"/v1/jobs/{response.get_json()['job_id']}").get_json()
    assert job["progress"]["failed"] == 1
    assert job["items"][1]["status"] == "failed"
    assert "not an image" in job["items"][1]["error"]
    assert len(session.scalars(select(Image)).all()) == 1


def test_one_label_per_file(client: FlaskClient, session: Session) -> None:
    data = {
        "file": [(io.BytesIO(jpeg(i)), f"{i}.jpg") for i in range(3)],
        "label": ["Ada", "Grace", "Ada"],
    }
    response = client.post("/v1/images", data=data, content_type="multipart/form-data")
    assert response.status_code == 202
    labels = session.scalars(select(Image.label).order_by(Image.id)).all()
    assert labels == ["Ada", "Grace", "Ada"]


def test_label_count_must_match_file_count(client: FlaskClient, session: Session) -> None:
    data = {"file": [(io.BytesIO(jpeg(i)), f"{i}.jpg") for i in range(3)], "label": ["a", "b"]}
    response = client.post("/v1/images", data=data, content_type="multipart/form-data")
    assert response.status_code == 422
    assert "2 labels for 3 files" in error_of(response)["message"]
    assert session.scalars(select(Image)).all() == []


def test_label_too_long(client: FlaskClient) -> None:
    response = upload(client, (jpeg(11), "a.jpg"), label="x" * 201)
    assert response.status_code == 422
    assert "label" in error_of(response)["message"]


# --- searches ------------------------------------------------------------------------------


def search(client: FlaskClient, data: bytes, **form: str) -> Any:
    return client.post(
        "/v1/searches",
        data={"file": (io.BytesIO(data), "q.jpg"), **form},
        content_type="multipart/form-data",
    )


def test_search_answers_202_and_is_readable_before_it_runs(
    client: FlaskClient, settings: Settings
) -> None:
    response = search(client, jpeg(12), top_k="5")
    assert response.status_code == 202
    body = response.get_json()
    assert set(body) >= {"job_id", "search_id"}
    result = client.get(body["search_url"]).get_json()
    assert (result["status"], result["top_k"], result["faces"]) == ("queued", 5, [])
    assert client.get(result["query"]["image_url"]).data == jpeg(12)
    assert queued_messages(settings)[0]["headers"]["task"] == "facesearch.run_search"


def test_search_default_top_k_is_10(client: FlaskClient) -> None:
    body = search(client, jpeg(13)).get_json()
    assert client.get(body["search_url"]).get_json()["top_k"] == 10


@pytest.mark.parametrize("top_k", ["0", "101", "-3", "ten", "2.5"])
def test_bad_top_k(client: FlaskClient, top_k: str) -> None:
    response = search(client, jpeg(14), top_k=top_k)
    assert response.status_code == 422
    assert "top_k" in error_of(response)["message"]


def test_search_with_a_non_image(client: FlaskClient) -> None:
    response = search(client, b"GIF89a but not really")
    assert response.status_code in (415, 422)
    assert error_of(response)["message"].startswith("q.jpg: ")


# --- reading and deleting -------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/v1/images/999999",
        "/v1/images/999999/content",
        "/v1/jobs/no-such-job",
        "/v1/searches/no-such-search",
        "/v1/nothing-here",
    ],
)
def test_unknown_ids_are_404_with_a_message(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


def test_delete_of_unknown_image_is_404(client: FlaskClient) -> None:
    assert client.delete("/v1/images/999999").status_code == 404


def test_image_resource_content_and_delete(
    client: FlaskClient, settings: Settings, session: Session
) -> None:
    data = jpeg(15)
    upload(client, (data, "p.jpg"), label="Grace Hopper")
    image = session.scalars(select(Image)).one()
    # What the worker would have written: one indexed face.
    session.add(
        Face(
            image_id=image.id,
            face_index=0,
            model_name="m",
            dim=2,
            embedding=np.zeros(2, "<f4").tobytes(),
            box_x=1,
            box_y=2,
            box_w=3,
            box_h=4,
            confidence=0.99,
            landmarks={},
            indexed_at=utcnow(),
        )
    )
    session.commit()

    body = client.get(f"/v1/images/{image.id}").get_json()
    assert body["label"] == "Grace Hopper"
    assert body["faces"][0]["box"] == {"x": 1, "y": 2, "width": 3, "height": 4}
    assert body["faces"][0]["indexed"] is True

    content = client.get(body["image_url"])
    assert content.status_code == 200
    assert content.data == data
    assert content.mimetype == "image/jpeg"
    assert (
        client.get(
            body["image_url"], headers={"If-None-Match": content.headers["ETag"]}
        ).status_code
        == 304
    )

    before = len(queued_messages(settings))
    assert client.delete(f"/v1/images/{image.id}").status_code == 204
    assert client.get(f"/v1/images/{image.id}").status_code == 404
    assert session.scalars(select(Face)).all() == []
    assert not [p for p in (settings.data_dir / "objects").rglob("*") if p.is_file()]
    deletion = queued_messages(settings)[before:]
    assert [m["headers"]["task"] for m in deletion] == ["facesearch.delete_vectors"]


def test_delete_keeps_bytes_that_a_search_still_uses(
    client: FlaskClient, settings: Settings, session: Session
) -> None:
    data = jpeg(16)
    upload(client, (data, "p.jpg"))
    search(client, data)
    image = session.scalars(select(Image)).one()
    assert client.delete(f"/v1/images/{image.id}").status_code == 204
    assert [p for p in (settings.data_dir / "objects").rglob("*") if p.is_file()]


# --- infrastructure -------------------------------------------------------------------------


def test_broker_down_gives_503_and_the_job_waits_for_the_reconciler(
    settings: Settings, sessions: sessionmaker[Session], session: Session
) -> None:
    """The upload is kept (queued, its item pending): the reconciler sends its task once the
    broker is back (tests/test_reconcile.py), so the photo is not lost."""
    client = make_client(
        settings.model_copy(update={"broker_url": "redis://127.0.0.1:1/0"}), sessions
    )
    response = upload(client, (jpeg(17), "a.jpg"))
    assert response.status_code == 503
    assert response.headers["Retry-After"]
    job = session.get(Job, error_of(response)["details"]["job_id"])
    assert job is not None
    assert job.status == JobStatus.QUEUED
    assert [i.status for i in job.items] == [ItemStatus.PENDING]


def test_health_and_readiness(client: FlaskClient) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.get_json()
    checks = ready.get_json()["checks"]
    assert checks["database"] == checks["storage"] == checks["broker"] == "ok"
    assert checks["index"].startswith("skipped")


def test_readiness_reports_a_broken_part(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    client = make_client(
        settings.model_copy(update={"broker_url": "redis://127.0.0.1:1/0"}), sessions
    )
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["checks"]["broker"].startswith("error")


def test_openapi_document_describes_the_contract(client: FlaskClient) -> None:
    spec = client.get("/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    for path in (
        "/v1/images",
        "/v1/images/{image_id}",
        "/v1/images/{image_id}/content",
        "/v1/jobs/{job_id}",
        "/v1/searches",
        "/v1/searches/{search_id}",
        "/healthz",
        "/readyz",
    ):
        assert path in spec["paths"], path
    upload_body = spec["paths"]["/v1/images"]["post"]["requestBody"]
    assert "multipart/form-data" in upload_body["content"]
    docs = client.get("/docs")
    assert docs.status_code == 200
    # The UI's assets are served by the API itself: the page works without internet access.
    assert b"cdn." not in docs.data
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        assert f"/docs/assets/{asset}".encode() in docs.data
        with client.get(f"/docs/assets/{asset}") as response:
            assert response.status_code == 200


def test_wrong_method_is_a_json_405(client: FlaskClient) -> None:
    response = client.put("/v1/images")
    assert response.status_code == 405
    assert error_of(response)["code"] == "method_not_allowed"


def test_images_path_is_under_tmp(settings: Settings) -> None:
    # Guard for the tests above: they must never write into the project's own var/.
    assert Path(settings.storage_url.removeprefix("file://")).is_relative_to(settings.data_dir)
