"""Archive ingest: the upload API, the hostile-member checks, dedup, resume, cancel, progress
and paging. The scan runs directly (no TensorFlow); the pipeline part is in the slow tests."""

from __future__ import annotations

import gzip
import io
import json
import stat
import tarfile
import threading
import time
import zipfile
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from flask.testing import FlaskClient
from PIL import Image as PILImage
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from core.settings import Settings
from core.storage import open_store
from models import Image, Job, JobItem, JobKind, JobStatus
from tests.conftest import create_database, drop_database, make_key, migrate
from tests.test_api import error_of, make_client, queued_messages
from workers.archives import member_label, scan_archive

MAX_MEMBER = 200_000
MAX_PIXELS = 2_000_000


def jpeg(seed: int, size: tuple[int, int] = (64, 48)) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    PILImage.fromarray(pixels).save(buffer, format="JPEG")
    return buffer.getvalue()


def bomb_png() -> bytes:
    """A few KB that decode to 40 million pixels."""
    buffer = io.BytesIO()
    PILImage.new("1", (8000, 5000)).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def add_file(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def add_special(tar: tarfile.TarFile, name: str, kind: bytes, linkname: str = "") -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    tar.addfile(info)


def make_tar(members: list[tuple[str, bytes]], *, compress: bool = True) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz" if compress else "w") as tar:
        for name, data in members:
            add_file(tar, name, data)
    return buffer.getvalue()


def hostile_tar() -> bytes:
    nested = make_tar([("inner/a.jpg", jpeg(99))])
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        add_special(tar, "lfw", tarfile.DIRTYPE)
        add_file(tar, "lfw/Ada_Lovelace/Ada_Lovelace_0001.jpg", jpeg(1))
        add_file(tar, "lfw/Ada_Lovelace/Ada_Lovelace_0002.jpg", jpeg(2))
        add_file(tar, "lfw/Alan_Turing/Alan_Turing_0001.jpg", jpeg(3))
        add_file(tar, "lfw/Alan_Turing/copy_of_ada.jpg", jpeg(1))  # same bytes as 0001
        add_file(tar, "../escape.jpg", jpeg(4))
        add_file(tar, "/etc/absolute.jpg", jpeg(5))
        add_special(tar, "lfw/link.jpg", tarfile.SYMTYPE, "/etc/passwd")
        add_special(tar, "lfw/hard.jpg", tarfile.LNKTYPE, "lfw/Alan_Turing/Alan_Turing_0001.jpg")
        add_special(tar, "lfw/fifo", tarfile.FIFOTYPE)
        add_special(tar, "lfw/null", tarfile.CHRTYPE)
        add_file(tar, "lfw/huge.jpg", b"\xff\xd8" + bytes(MAX_MEMBER))
        add_file(tar, "lfw/bomb.png", bomb_png())
        add_file(tar, "lfw/README.txt", b"these are faces\n")
        add_file(tar, "lfw/corrupt.jpg", jpeg(6)[:300])
        add_file(tar, "lfw/nested.tgz", nested)
    return buffer.getvalue()


EXPECTED_TAR = {
    "lfw/Ada_Lovelace/Ada_Lovelace_0001.jpg": ("pending", None),
    "lfw/Ada_Lovelace/Ada_Lovelace_0002.jpg": ("pending", None),
    "lfw/Alan_Turing/Alan_Turing_0001.jpg": ("pending", None),
    "lfw/Alan_Turing/copy_of_ada.jpg": ("skipped", "already in the gallery"),
    "../escape.jpg": ("failed", "'..'"),
    "/etc/absolute.jpg": ("failed", "absolute path"),
    "lfw/link.jpg": ("failed", "link"),
    "lfw/hard.jpg": ("failed", "link"),
    "lfw/fifo": ("failed", "device or FIFO"),
    "lfw/null": ("failed", "device or FIFO"),
    "lfw/huge.jpg": ("failed", "the limit is 200,000"),
    "lfw/bomb.png": ("failed", "pixels"),
    "lfw/README.txt": ("failed", "not an image"),
    "lfw/corrupt.jpg": ("failed", "truncated or corrupt"),
    "lfw/nested.tgz": ("failed", "nested archives"),
}


@pytest.fixture
def archive_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"max_upload_bytes": MAX_MEMBER, "max_image_pixels": MAX_PIXELS}
    )


@pytest.fixture
def client(archive_settings: Settings, sessions: sessionmaker[Session]) -> FlaskClient:
    return make_client(archive_settings, sessions)


def post_raw(client: FlaskClient, data: bytes, **query: str) -> Any:
    return client.post(
        "/v1/archives",
        data=data,
        query_string=query,
        content_type="application/octet-stream",
    )


def scan(
    job_id: str,
    settings: Settings,
    sessions: sessionmaker[Session],
    *,
    batch: int = 4,
    deadline: float | None = None,
) -> bool:
    return scan_archive(
        job_id,
        sessions=sessions,
        store=open_store(settings.storage_url),
        max_member_bytes=settings.max_upload_bytes,
        max_pixels=settings.max_image_pixels,
        scan_batch=batch,
        deadline=deadline,
    )


def items_of(session: Session, job_id: str) -> dict[str, tuple[str, str | None]]:
    session.expire_all()
    rows = session.scalars(select(JobItem).where(JobItem.job_id == job_id)).all()
    return {i.name: (i.status.value, i.error) for i in rows}


def create_and_scan(
    client: FlaskClient, settings: Settings, sessions: sessionmaker[Session], data: bytes
) -> str:
    response = post_raw(client, data, filename="x.tgz")
    assert response.status_code == 202, response.get_json()
    job_id: str = response.get_json()["job_id"]
    assert scan(job_id, settings, sessions)
    return job_id


# --- the upload ------------------------------------------------------------------------


def test_raw_upload_streams_to_the_store_and_queues_an_archive_job(
    client: FlaskClient,
    archive_settings: Settings,
    sessions: sessionmaker[Session],
    session: Session,
) -> None:
    data = make_tar([("a/a_0001.jpg", jpeg(1))])
    response = post_raw(client, data, filename="faces.tgz", label_from="filename")
    assert response.status_code == 202, response.get_json()
    body = response.get_json()
    assert response.headers["Location"] == f"/v1/jobs/{body['job_id']}"
    job = session.get_one(Job, body["job_id"])
    assert (job.kind, job.status) == (JobKind.ARCHIVE, JobStatus.QUEUED)
    assert job.params["label_from"] == "filename"
    assert job.params["size_bytes"] == len(data)
    store = open_store(archive_settings.storage_url)
    assert store.get(job.params["object_key"]) == data
    [message] = queued_messages(archive_settings)
    assert message["headers"]["task"] == "facesearch.ingest_archive"

    shown = client.get(f"/v1/jobs/{job.id}").get_json()
    assert shown["kind"] == "archive"
    assert shown["progress"]["total_known"] is False
    # Once read, the uploaded copy is deleted: each image is its own object now.
    assert scan(job.id, archive_settings, sessions)
    assert not store.exists(job.params["object_key"])
    session.expire_all()
    assert session.scalars(select(Image.label)).all() == ["a"]


def test_multipart_upload_and_an_object_already_in_the_store(
    client: FlaskClient,
    archive_settings: Settings,
    sessions: sessionmaker[Session],
    session: Session,
) -> None:
    data = make_tar([("a/a_0001.jpg", jpeg(1))], compress=False)
    response = client.post(
        "/v1/archives",
        data={"file": (io.BytesIO(data), "faces.tar"), "label_from": "none"},
        content_type="multipart/form-data",
    )
    assert response.status_code == 202, response.get_json()
    uploaded = session.get_one(Job, response.get_json()["job_id"]).params["object_key"]
    # An uploaded archive's own key is not the gallery's to name: only its imports are.
    refused = client.post("/v1/archives", json={"object_key": uploaded})
    assert refused.status_code == 403
    assert error_of(refused)["code"] == "outside_import_prefix"

    key = "imports/default/faces.tar"
    open_store(archive_settings.storage_url).put(key, data)
    response = client.post("/v1/archives", json={"object_key": key})
    assert response.status_code == 202, response.get_json()
    by_key = response.get_json()["job_id"]
    assert session.get_one(Job, by_key).params["object_key"] == key
    # Once read, an archive named by the client stays in the store.
    assert scan(by_key, archive_settings, sessions)
    assert open_store(archive_settings.storage_url).exists(key)

    response = client.post("/v1/archives", json={"object_key": "imports/default/nothing-here"})
    assert response.status_code == 404
    assert "nothing-here" in error_of(response)["message"]


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        (b"this is not an archive at all " * 40, 415, "not_an_archive"),
        (jpeg(1), 415, "not_an_archive"),
        (b"", 400, "empty"),
    ],
)
def test_what_is_not_an_archive_is_refused(
    client: FlaskClient, archive_settings: Settings, data: bytes, status: int, code: str
) -> None:
    response = post_raw(client, data)
    assert response.status_code == status
    assert error_of(response)["code"] == code
    assert queued_messages(archive_settings) == []


def test_an_unknown_label_source_is_refused(client: FlaskClient) -> None:
    response = post_raw(client, make_tar([("a.jpg", jpeg(1))]), label_from="exif")
    assert response.status_code == 422
    assert "label_from" in error_of(response)["message"]


# --- hostile members --------------------------------------------------------------------


def test_each_hostile_tar_member_is_refused_with_a_reason_and_the_rest_is_kept(
    client: FlaskClient,
    archive_settings: Settings,
    sessions: sessionmaker[Session],
    session: Session,
) -> None:
    job_id = create_and_scan(client, archive_settings, sessions, hostile_tar())
    items = items_of(session, job_id)
    assert set(items) == set(EXPECTED_TAR)  # the folder is not an item
    for name, (status, reason) in EXPECTED_TAR.items():
        assert items[name][0] == status, (name, items[name])
        if reason:
            assert reason in (items[name][1] or ""), (name, items[name])
    images = session.scalars(select(Image).order_by(Image.id)).all()
    assert [(i.filename, i.label) for i in images] == [
        ("Ada_Lovelace_0001.jpg", "Ada_Lovelace"),
        ("Ada_Lovelace_0002.jpg", "Ada_Lovelace"),
        ("Alan_Turing_0001.jpg", "Alan_Turing"),
    ]
    # Nothing was written outside the store: only content-addressed objects and the archive.
    written = {p.name for p in archive_settings.data_dir.parent.rglob("*.jpg")}
    assert "escape.jpg" not in written
    assert "absolute.jpg" not in written

    job = client.get(f"/v1/jobs/{job_id}").get_json()
    assert job["progress"] | {"images_per_s": None} == {
        "total": 15,
        "done": 0,
        "failed": 11,
        "skipped": 1,
        "total_known": True,
        "images_per_s": None,
        "eta_s": job["progress"]["eta_s"],
    }


def test_hostile_zip_members(
    client: FlaskClient,
    archive_settings: Settings,
    sessions: sessionmaker[Session],
    session: Session,
) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("people/Grace_Hopper_0001.jpg", jpeg(10))
        archive.writestr("../../up.jpg", jpeg(11))
        link = zipfile.ZipInfo("people/link.jpg")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/passwd")
        archive.writestr("people/inner.zip", make_zip([("x.jpg", jpeg(12))]))
        archive.writestr("people/notes.txt", "hello")
        archive.writestr("people/huge.bin", bytes(MAX_MEMBER + 10))  # deflates to almost nothing
    response = post_raw(client, buffer.getvalue(), label_from="filename")
    job_id = response.get_json()["job_id"]
    assert scan(job_id, archive_settings, sessions)
    items = items_of(session, job_id)
    assert items["people/Grace_Hopper_0001.jpg"] == ("pending", None)
    assert "'..'" in (items["../../up.jpg"][1] or "")
    assert "link" in (items["people/link.jpg"][1] or "")
    assert "nested archives" in (items["people/inner.zip"][1] or "")
    assert "not an image" in (items["people/notes.txt"][1] or "")
    assert "limit" in (items["people/huge.bin"][1] or "")
    assert session.scalars(select(Image.label)).all() == ["Grace_Hopper"]


def make_zip(members: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members:
            archive.writestr(name, data)
    return buffer.getvalue()


def test_a_truncated_archive_keeps_the_members_before_the_damage(
    client: FlaskClient,
    archive_settings: Settings,
    sessions: sessionmaker[Session],
    session: Session,
) -> None:
    whole = make_tar([(f"p/p_{i:04d}.jpg", jpeg(i, (200, 200))) for i in range(6)], compress=False)
    truncated = gzip.compress(whole)[: len(gzip.compress(whole)) * 2 // 3]
    job_id = create_and_scan(client, archive_settings, sessions, truncated)
    items = items_of(session, job_id)
    assert 0 < sum(status == "pending" for status, _ in items.values()) < 6
    assert "truncated or corrupt" in (items["(archive)"][1] or "")
    assert "truncated or corrupt" in (session.get_one(Job, job_id).error or "")


def test_an_object_that_is_not_an_archive_fails_the_job(
    client: FlaskClient,
    archive_settings: Settings,
    sessions: sessionmaker[Session],
    session: Session,
) -> None:
    from models import DEFAULT_GALLERY_ID, EventType, WebhookEvent, WebhookSubscription

    session.add(
        WebhookSubscription(
            gallery_id=DEFAULT_GALLERY_ID, url="http://x/", events=["job.completed"], secret="s"
        )
    )
    session.commit()
    store = open_store(archive_settings.storage_url)
    store.put("imports/default/notes.txt", b"PK\x03\x04 but not really a zip")
    response = client.post("/v1/archives", json={"object_key": "imports/default/notes.txt"})
    job_id = response.get_json()["job_id"]
    assert scan(job_id, archive_settings, sessions)
    session.expire_all()
    job = session.get_one(Job, job_id)
    assert job.status == JobStatus.FAILED
    assert "zip archive is truncated or corrupt" in (job.error or "")
    # Ended like every job: its subscribers are told.
    events = session.query(WebhookEvent).filter_by(type=EventType.JOB_COMPLETED).all()
    assert [e.payload["data"]["job_id"] for e in events] == [job_id]


def test_labels_from_folder_filename_or_none() -> None:
    assert member_label("lfw/Ada_Lovelace/Ada_Lovelace_0001.jpg", "folder") == "Ada_Lovelace"
    assert member_label("flat.jpg", "folder") is None
    assert member_label("x/Ada_Lovelace_0001.jpg", "filename") == "Ada_Lovelace"
    assert member_label("x/Ada Lovelace 12.png", "filename") == "Ada Lovelace"
    assert member_label("x/Ada/0001.jpg", "none") is None


# --- dedup, resume, cancel, paging -------------------------------------------------------


def test_the_same_archive_twice_adds_nothing(
    client: FlaskClient,
    archive_settings: Settings,
    sessions: sessionmaker[Session],
    session: Session,
) -> None:
    data = hostile_tar()
    create_and_scan(client, archive_settings, sessions, data)
    images = session.scalar(select(func.count(Image.id)))
    second = create_and_scan(client, archive_settings, sessions, data)
    assert session.scalar(select(func.count(Image.id))) == images == 3
    statuses = [status for status, _ in items_of(session, second).values()]
    assert statuses.count("skipped") == 4
    assert "pending" not in statuses


def test_a_scan_stopped_and_run_again_records_each_member_once(
    client: FlaskClient,
    archive_settings: Settings,
    sessions: sessionmaker[Session],
    session: Session,
) -> None:
    response = post_raw(client, hostile_tar())
    job_id = response.get_json()["job_id"]
    # A deadline already passed: each run records one batch of 4, then stops (as a run
    # stopped by its budget, or killed after a commit, would).
    runs = 1
    while not scan(job_id, archive_settings, sessions, deadline=time.monotonic()):
        runs += 1
    assert runs == 4
    assert scan(job_id, archive_settings, sessions)  # a duplicate delivery: no new rows
    positions = session.scalars(select(JobItem.position).where(JobItem.job_id == job_id)).all()
    assert len(positions) == len(set(positions)) == len(EXPECTED_TAR)
    assert session.scalar(select(func.count(Image.id))) == 3


def test_items_page_by_page_and_by_status(
    client: FlaskClient, archive_settings: Settings, sessions: sessionmaker[Session]
) -> None:
    job_id = create_and_scan(client, archive_settings, sessions, hostile_tar())
    seen: list[dict[str, Any]] = []
    cursor: int | None = None
    while True:
        query: dict[str, Any] = {"status": "failed", "limit": 4}
        if cursor is not None:
            query["cursor"] = cursor
        page = client.get(f"/v1/jobs/{job_id}/items", query_string=query).get_json()
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 11
    assert all(item["status"] == "failed" and item["error"] for item in seen)
    positions = [item["position"] for item in seen]
    assert positions == sorted(set(positions))
    assert client.get(f"/v1/jobs/{job_id}/items?status=lost").status_code == 422
    assert client.get("/v1/jobs/nope/items").status_code == 404


def test_cancel_keeps_what_was_done_and_skips_the_rest(
    client: FlaskClient,
    archive_settings: Settings,
    sessions: sessionmaker[Session],
    session: Session,
) -> None:
    job_id = create_and_scan(client, archive_settings, sessions, hostile_tar())
    response = client.post(f"/v1/jobs/{job_id}/cancel")
    assert response.status_code == 200, response.get_json()
    job = response.get_json()
    assert job["status"] == "cancelled"
    assert job["progress"]["skipped"] == 4
    assert job["progress"]["eta_s"] is None
    items = items_of(session, job_id)
    assert items["lfw/Ada_Lovelace/Ada_Lovelace_0001.jpg"][0] == "skipped"
    assert "cancelled" in (items["lfw/Ada_Lovelace/Ada_Lovelace_0001.jpg"][1] or "")
    assert session.scalar(select(func.count(Image.id))) == 3  # stored images stay
    # A worker that comes back finds nothing to do.
    assert not scan(job_id, archive_settings, sessions) or items_of(session, job_id) == items
    again = client.post(f"/v1/jobs/{job_id}/cancel")
    assert again.status_code == 409
    assert error_of(again)["code"] == "already_finished"


def test_progress_is_shown_while_an_archive_is_read(
    client: FlaskClient, archive_settings: Settings, sessions: sessionmaker[Session]
) -> None:
    response = post_raw(client, hostile_tar())
    job_id = response.get_json()["job_id"]
    assert not scan(job_id, archive_settings, sessions, deadline=time.monotonic())
    progress = client.get(f"/v1/jobs/{job_id}").get_json()["progress"]
    assert progress["total"] == 4
    assert progress["total_known"] is False
    assert progress["eta_s"] is None
    body = json.loads(client.get("/openapi.json").data)
    assert "/v1/archives" in body["paths"]
    assert "/v1/jobs/{job_id}/items" in body["paths"]


# --- the whole path, with the real pipeline ------------------------------------------------


@pytest.mark.slow
def test_an_lfw_archive_is_ingested_in_bounded_runs_indexed_and_closed(
    settings: Settings,
    sessions: sessionmaker[Session],
    face_pipeline: Any,
    lfw_faces: dict[str, list[Any]],
) -> None:
    from core.index import VectorIndex
    from workers.archives import run_archive
    from workers.indexing import run_index

    client = make_client(settings, sessions)
    faces = [(f"lfw/{i.label}/{i.name}", i.data) for images in lfw_faces.values() for i in images]
    blank = io.BytesIO()
    PILImage.new("RGB", (200, 200), (120, 140, 160)).save(blank, format="JPEG")
    members = [*faces, ("lfw/Nobody/Nobody_0001.jpg", blank.getvalue())]
    response = post_raw(client, make_tar(members))
    job_id = response.get_json()["job_id"]

    index_requests: list[tuple[str, str | None]] = []
    runs = 0
    continued: list[bool] = [True]
    with VectorIndex(settings.milvus_uri, index_type="FLAT") as index:
        while continued:
            runs += 1
            continued.clear()
            run_archive(
                job_id,
                sessions=sessions,
                store=open_store(settings.storage_url),
                pipeline=face_pipeline,
                request_index=lambda m, j: index_requests.append((m, j)),
                continue_later=partial(continued.append, True),
                batch_size=8,
                max_pixels=settings.max_image_pixels,
                max_member_bytes=settings.max_upload_bytes,
                scan_batch=5,
                budget_s=0,  # every run stops after one batch and queues its continuation
            )
            assert runs < 30
        for model, job in index_requests:
            run_index(model, job, sessions=sessions, index=index, batch_size=50)
    assert runs > 3
    job_body = client.get(f"/v1/jobs/{job_id}").get_json()
    assert job_body["status"] == "partial", job_body  # the blank image has no face
    progress = job_body["progress"]
    assert (progress["total"], progress["done"], progress["failed"]) == (19, 18, 1)
    assert progress["images_per_s"] > 0
    assert progress["eta_s"] is None
    assert job_body["result"]["faces"] >= 18
    failed = client.get(f"/v1/jobs/{job_id}/items?status=failed").get_json()["items"]
    assert [(i["name"], i["error"]) for i in failed] == [
        ("lfw/Nobody/Nobody_0001.jpg", "no face found in the image")
    ]


@pytest.mark.slow
def test_the_ingest_command_streams_an_archive_and_follows_its_job(
    settings: Settings,
    sessions: sessionmaker[Session],
    face_pipeline: Any,
    lfw_faces: dict[str, list[Any]],
    tmp_path: Path,
) -> None:
    """Through a real HTTP server on loopback. Each poll of the job first runs one bounded
    step of the worker's functions, in the server's thread (the test's one connection is
    never used by two threads at once)."""
    from werkzeug.serving import make_server

    from api import create_app
    from api.context import EXTENSION
    from cli.ingest import run as run_command
    from cli.ingest import summary
    from core.index import VectorIndex
    from workers.archives import run_archive
    from workers.indexing import run_index

    images = lfw_faces["Albert_Costa"][:3]
    archive = tmp_path / "faces.tgz"
    archive.write_bytes(
        make_tar([*[(f"x/{i.label}/{i.name}", i.data) for i in images], ("x/notes.txt", b"hi")])
    )
    app = create_app(settings)
    app.extensions[EXTENSION].sessions = sessions
    index = VectorIndex(settings.milvus_uri, index_type="FLAT")
    store = open_store(settings.storage_url)

    @app.before_request
    def _one_worker_step() -> None:
        from flask import request

        if request.method != "GET" or request.path.count("/") != 3:
            return
        job_id = request.path.rsplit("/", 1)[1]
        requests: list[tuple[str, str | None]] = []
        run_archive(
            job_id,
            sessions=sessions,
            store=store,
            pipeline=face_pipeline,
            request_index=lambda m, j: requests.append((m, j)),
            continue_later=lambda: None,
            batch_size=2,
            max_pixels=settings.max_image_pixels,
            max_member_bytes=settings.max_upload_bytes,
            scan_batch=2,
            budget_s=0,
        )
        for model, job in requests:
            run_index(model, job, sessions=sessions, index=index, batch_size=50)

    server = make_server("127.0.0.1", 0, app, threaded=False)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        key = make_key(sessions)
        job = run_command(archive, url=url, key=key, label_from="folder", poll_s=0, quiet=True)
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}) as client:
            text = summary(client, job, wall_s=1.0)
    finally:
        server.shutdown()
        thread.join()
        server.server_close()
        index.close()
        app.extensions[EXTENSION].close()
    assert job["status"] == "partial"
    assert f"job {job['id']}: partial" in text
    assert "done 3, failed 1, skipped 0" in text
    assert "x/notes.txt: the file is not an image" in text


def test_the_ingest_command_has_help() -> None:
    from click.testing import CliRunner

    from cli.main import cli

    result = CliRunner().invoke(cli, ["ingest", "--help"])
    assert result.exit_code == 0, result.output
    assert "--label-from [folder|filename|none]" in result.output


class GatedStore:
    """An object store whose writes of new images wait for ``gate`` once ``open_after`` of
    them are done: the archive's reader cannot finish before the test lets it. After
    ``timeout_s`` without the gate, it records ``timed_out`` and waits no more."""

    def __init__(self, store: Any, gate: threading.Event, open_after: int, timeout_s: float):
        self._store = store
        self._gate = gate
        self._open_after = open_after
        self._timeout_s = timeout_s
        self.puts = 0
        self.timed_out = False

    def put(self, key: str, data: bytes, **kwargs: Any) -> None:
        self.puts += 1
        if self.puts > self._open_after and not self._gate.wait(self._timeout_s):
            self.timed_out = True
            self._gate.set()
        self._store.put(key, data, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


@pytest.fixture
def committing_sessions() -> Iterator[sessionmaker[Session]]:
    """Sessions that really commit, each on its own connection (threads may share the
    factory), in a database of their own: what they commit cannot leak into other tests."""
    from models.db import make_engine, make_session_factory

    url = create_database()
    migrate(url)
    engine = make_engine(url)
    try:
        yield make_session_factory(engine)
    finally:
        engine.dispose()
        drop_database(url)


def test_the_pipeline_runs_while_the_archive_is_still_being_read(
    archive_settings: Settings, committing_sessions: sessionmaker[Session], face_pipeline: Any
) -> None:
    """Reading and the pipeline overlap in one task run: the first pipeline batch runs while
    the reader is held back, mid-archive. Run one after the other, the reader would wait out
    its timeout and the pipeline would only ever see a fully read archive."""
    from workers.archives import run_archive

    sessions = committing_sessions  # the reader thread and the pipeline commit separately
    client = make_client(archive_settings, sessions)
    members = [(f"photos/p{i:02d}.jpg", jpeg(1000 + i)) for i in range(24)]
    job_id = post_raw(client, make_tar(members)).get_json()["job_id"]

    read_through: threading.Event = threading.Event()
    seen: list[tuple[bool, int]] = []  # per pipeline call: (archive fully read?, images)

    class WatchedPipeline:
        model_name = face_pipeline.model_name
        embedding_version = face_pipeline.embedding_version

        def process(self, images: list[Any]) -> Any:
            with sessions() as session:
                job = session.get_one(Job, job_id)
                seen.append((bool(job.params.get("scanned")), len(images)))
            read_through.set()
            return face_pipeline.process(images)

    store = GatedStore(
        open_store(archive_settings.storage_url), read_through, open_after=8, timeout_s=20
    )
    run_archive(
        job_id,
        sessions=sessions,
        store=store,  # type: ignore[arg-type]
        pipeline=WatchedPipeline(),  # type: ignore[arg-type]
        request_index=lambda m, j: None,
        continue_later=lambda: None,
        batch_size=4,
        max_pixels=archive_settings.max_image_pixels,
        max_member_bytes=archive_settings.max_upload_bytes,
        scan_batch=4,
        budget_s=120,
    )

    assert not store.timed_out, "the reader waited for a pipeline that never ran"
    assert seen, "the pipeline never ran"
    assert seen[0][0] is False, "the first batch ran only once the archive was fully read"
    assert sum(n for _, n in seen) == 24  # every member went through the pipeline once
    with sessions() as session:
        job = session.get_one(Job, job_id)
        assert job.params.get("scanned") is True
        statuses = session.scalars(select(JobItem.status).where(JobItem.job_id == job_id)).all()
    assert len(statuses) == 24
    assert {str(s) for s in statuses} == {"failed"}  # synthetic images hold no face
