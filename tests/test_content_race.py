"""Deleting an image while the same bytes are uploaded again never leaves a row whose bytes
are gone (services.content): two clients race in a loop on a database whose requests really
commit."""

from __future__ import annotations

import hashlib
import io
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.images import inspect_image
from core.settings import Settings
from core.storage import open_store
from models import DEFAULT_GALLERY_ID, Image
from services.erasure import erase_images, remove_unused_objects
from services.galleries import create_gallery
from services.images import UploadedFile, create_ingest_job
from tests.conftest import image_row, make_client, make_key
from tests.test_api import jpeg

ROUNDS = 40


def race(settings: Settings, sessions: sessionmaker[Session]) -> list[Image]:
    """One client uploads the same photo again and again while another deletes it; returns
    the image rows whose bytes are missing from the store at the end."""
    key = make_key(sessions)
    uploader = make_client(settings, sessions, key=key)
    deleter = make_client(settings, sessions, key=key)
    data = jpeg(21)
    errors: list[Any] = []

    def upload_loop(client: FlaskClient) -> None:
        for _ in range(ROUNDS):
            response = client.post(
                "/v1/images",
                data={"file": (io.BytesIO(data), "a.jpg")},
                content_type="multipart/form-data",
            )
            if response.status_code != 202:
                errors.append(("upload", response.status_code, response.get_json()))

    def delete_loop(client: FlaskClient) -> None:
        for _ in range(ROUNDS):
            for image in client.get("/v1/images").get_json()["items"]:
                response = client.delete(f"/v1/images/{image['id']}")
                if response.status_code not in (204, 404):
                    errors.append(("delete", response.status_code, response.get_json()))

    threads = [
        threading.Thread(target=upload_loop, args=(uploader,)),
        threading.Thread(target=delete_loop, args=(deleter,)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    store = open_store(settings.storage_url)
    with sessions() as session:
        images = list(session.scalars(select(Image)))
    return [image for image in images if not store.exists(image.object_key)]


def test_a_delete_racing_a_reupload_never_loses_the_bytes(
    committed: tuple[Settings, sessionmaker[Session]],
) -> None:
    settings, sessions = committed
    assert race(settings, sessions) == []


class PausingStore:
    """The uploader's store: right after it has the bytes stored (it put them, or found them
    already there), it lets the eraser run and waits a moment, which is the race's window."""

    def __init__(self, store: Any, window: threading.Event) -> None:
        self._store = store
        self._window = window

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def _pause(self) -> None:
        if not self._window.is_set():
            self._window.set()
            time.sleep(1.0)

    def exists(self, key: str) -> bool:
        found = bool(self._store.exists(key))
        if found:
            self._pause()
        return found

    def put(self, key: str, data: bytes, **kwargs: Any) -> None:
        self._store.put(key, data, **kwargs)
        self._pause()


def erase_during_upload(settings: Settings, sessions: sessionmaker[Session]) -> bool:
    """Gallery A's image is erased while gallery B uploads the same bytes; whether B's new
    image still has its bytes at the end."""
    store = open_store(settings.storage_url)
    data = jpeg(22)
    upload = UploadedFile("a.jpg", data, hashlib.sha256(data).hexdigest(), info=inspect(data))
    with sessions() as session:
        gallery_b = create_gallery(session, "b").id
        first = create_ingest_job(
            session,
            gallery_id=DEFAULT_GALLERY_ID,
            store=store,
            uploads=[upload],
            labels=[None],
            idempotency_key=None,
        )
        session.commit()
        image_a = first.items[0].image_id
    assert image_a is not None
    window = threading.Event()

    def erase() -> None:
        window.wait(timeout=30)
        with sessions() as session:
            erasure = erase_images(session, gallery_id=DEFAULT_GALLERY_ID, image_ids=[image_a])
            remove_unused_objects(session, store, erasure.object_keys)
            session.commit()

    eraser = threading.Thread(target=erase)
    eraser.start()
    with sessions() as session:
        second = create_ingest_job(
            session,
            gallery_id=gallery_b,
            store=PausingStore(store, window),  # type: ignore[arg-type]
            uploads=[upload],
            labels=[None],
            idempotency_key=None,
        )
        session.commit()
        image_b = session.get_one(Image, second.items[0].image_id)
    eraser.join(timeout=30)
    return bool(store.exists(image_b.object_key))


def test_an_erasure_during_an_upload_of_the_same_bytes_keeps_them(
    committed: tuple[Settings, sessionmaker[Session]],
) -> None:
    settings, sessions = committed
    assert erase_during_upload(settings, sessions)


def test_without_the_lock_that_erasure_loses_the_bytes(
    committed: tuple[Settings, sessionmaker[Session]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same interleaving with the lock taken away: the test above can fail."""
    for module in ("services.images", "services.erasure"):
        monkeypatch.setattr(f"{module}.lock_objects", lambda *_args, **_kw: None)
    settings, sessions = committed
    assert not erase_during_upload(settings, sessions)


def inspect(data: bytes) -> Any:
    return inspect_image(data, max_pixels=10_000_000)


def _scanned_members(session: Session, seeds: tuple[int, ...]) -> tuple[str, list[Any]]:
    """A new archive job and members of it, stored (as far as the rows know) but unrecorded."""
    from core.storage import content_key
    from models import Job, JobKind
    from workers.archives import Scanned

    job = Job(kind=JobKind.ARCHIVE, gallery_id=DEFAULT_GALLERY_ID)
    session.add(job)
    session.flush()
    members = []
    for position, seed in enumerate(seeds):
        data = jpeg(seed)
        digest = hashlib.sha256(data).hexdigest()
        members.append(
            Scanned(
                position,
                f"x/m{position}.jpg",
                sha256=digest,
                object_key=content_key(digest),
                info=inspect(data),
                size=len(data),
            )
        )
    return job.id, members


def test_an_archive_member_whose_bytes_were_erased_meanwhile_fails_alone(
    session: Session,
) -> None:
    """An archive's members are stored before they are recorded; one whose bytes an erasure
    removed in between fails with the reason instead of becoming an image without bytes."""
    from models import ItemStatus, JobItem
    from services.content import deletions_mark, note_deletions
    from workers.archives import BYTES_REMOVED_REASON, _record

    job_id, members = _scanned_members(session, (31, 32))
    mark = deletions_mark(session)
    note_deletions(session)  # an erasure deleted bytes after the batch was stored
    erased = members[1].object_key
    _record(
        session,
        job_id,
        DEFAULT_GALLERY_ID,
        members,
        still_stored=lambda key: key != erased,
        mark=mark,
    )
    session.flush()
    items = session.scalars(select(JobItem).where(JobItem.job_id == job_id)).all()
    outcome = {i.position: (i.status, i.error, i.image_id is not None) for i in items}
    assert outcome == {
        0: (ItemStatus.PENDING, None, True),
        1: (ItemStatus.FAILED, BYTES_REMOVED_REASON, False),
    }


def test_the_store_is_not_asked_when_no_bytes_were_deleted_since_the_batch_was_stored(
    session: Session,
) -> None:
    from models import ItemStatus, JobItem
    from services.content import deletions_mark
    from workers.archives import _record

    job_id, members = _scanned_members(session, (33, 34))
    asked: list[str] = []

    def still_stored(key: str) -> bool:
        asked.append(key)
        return True

    mark = deletions_mark(session)
    assert mark is not None
    _record(session, job_id, DEFAULT_GALLERY_ID, members, still_stored=still_stored, mark=mark)
    session.flush()
    assert asked == []
    statuses = session.scalars(select(JobItem.status).where(JobItem.job_id == job_id)).all()
    assert statuses == [ItemStatus.PENDING, ItemStatus.PENDING]
    # Without a mark (SQLite has no counter), the store is asked about each new member.
    job_id, members = _scanned_members(session, (35, 36))
    _record(session, job_id, DEFAULT_GALLERY_ID, members, still_stored=still_stored, mark=None)
    assert sorted(asked) == sorted(m.object_key for m in members)


def test_an_erasure_that_deletes_bytes_moves_the_deletion_counter(
    session: Session, tmp_path: Path
) -> None:
    from core.storage import LocalStore, content_key
    from services.content import deletions_mark
    from services.erasure import remove_unused_objects

    store = LocalStore(tmp_path / "objects")
    data = jpeg(37)
    key = content_key(hashlib.sha256(data).hexdigest())
    store.put(key, data, content_type="image/jpeg")
    image = image_row(sha256=hashlib.sha256(data).hexdigest(), object_key=key)
    session.add(image)
    session.flush()
    before = deletions_mark(session)
    assert remove_unused_objects(session, store, [key]) == 0  # an image still uses them
    assert deletions_mark(session) == before  # nothing deleted: the counter stays
    session.delete(image)
    session.flush()
    assert remove_unused_objects(session, store, [key]) == 1
    after = deletions_mark(session)
    assert before is not None
    assert after is not None
    assert after > before
    assert not store.exists(key)
