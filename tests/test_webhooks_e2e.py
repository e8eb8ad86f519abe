"""Webhooks end to end: upload, search, and the signed webhook sent by a real Celery worker
process (Postgres, a folder broker and store, milvus-lite) to a real receiver on loopback,
which verifies it with the ``standardwebhooks`` library as a receiver would."""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from standardwebhooks import Webhook

from api import create_app
from api.context import EXTENSION
from cli.lfw import LfwImage
from core.settings import Settings
from models import Scope
from tests.conftest import MODEL_DIR, create_database, drop_database, migrate
from tests.webhook_receiver import Answer, running_receiver
from tests.worker_process import keyed_client, make_api_key, start_worker, stop_worker, wait_for_job

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

TIMEOUT_S = 120


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, Path]]:
    data_dir = tmp_path_factory.mktemp("webhooks-e2e")
    database_url = create_database()
    migrate(database_url)
    settings = Settings(
        data_dir=data_dir,
        database_url=database_url,
        broker_url=f"filesystem://{data_dir / 'broker'}",
        storage_url=f"file://{data_dir / 'objects'}",
        milvus_uri=str(data_dir / "milvus.db"),
        milvus_index_type="FLAT",
        model_dir=MODEL_DIR,
        webhook_allowed_hosts="127.0.0.1",
    )
    env = {
        **os.environ,
        "DATA_DIR": str(data_dir),
        "DATABASE_URL": database_url,
        "BROKER_URL": settings.broker_url,
        "STORAGE_URL": settings.storage_url,
        "MILVUS_URI": settings.milvus_uri,
        "MILVUS_INDEX_TYPE": "FLAT",
        "MODEL_DIR": str(MODEL_DIR),
        "LOG_JSON": "true",
        "WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",
        # Retries after about half a second here, to see the Celery retry path work.
        "WEBHOOK_RETRY_BASE_S": "0.5",
    }
    log_path = data_dir / "worker.log"
    worker = start_worker(env, log_path)
    try:
        yield settings, log_path
    finally:
        stop_worker(worker)
        drop_database(database_url)


@pytest.fixture(scope="module")
def client(stack: tuple[Settings, Path]) -> Iterator[FlaskClient]:
    settings = stack[0]
    app = create_app(settings)
    # Webhooks need the admin scope; this key acts in the default gallery.
    yield keyed_client(app, make_api_key(settings.database_url, scope=Scope.ADMIN))
    app.extensions[EXTENSION].close()


def test_upload_search_webhook_through_a_real_worker(
    stack: tuple[Settings, Path],
    client: FlaskClient,
    lfw_faces: dict[str, list[LfwImage]],
) -> None:
    _, log_path = stack
    images = lfw_faces["Albert_Costa"]
    response = client.post(
        "/v1/images",
        data={"file": [(io.BytesIO(i.data), i.name) for i in images[1:3]], "label": "Albert_Costa"},
        content_type="multipart/form-data",
    )
    assert response.status_code == 202
    assert wait_for_job(client, response.get_json()["job_id"], log_path)["status"] == "succeeded"

    with running_receiver() as receiver:
        subscribed = client.post(
            "/v1/webhooks",
            json={"url": receiver.url + "/sub", "events": ["search.completed", "job.completed"]},
        )
        # Checked here: a refused subscription (401/403) would otherwise show up only as two
        # missing deliveries (the callback's 503 and its retry arriving alone) after a timeout.
        assert subscribed.status_code == 201, subscribed.get_json()
        sub = subscribed.get_json()
        receiver.script = [Answer(503, b"starting up")]  # the first request fails
        response = client.post(
            "/v1/searches",
            data={
                "file": (io.BytesIO(images[0].data), images[0].name),
                "callback_url": receiver.url + "/callback",
            },
            content_type="multipart/form-data",
        )
        assert response.status_code == 202
        created = response.get_json()
        # search.completed to the subscription and to the callback, job.completed to the
        # first; one of the three twice (its first attempt got the 503).
        got = receiver.wait_for(4, TIMEOUT_S)
        assert len(got) == 4, log_path.read_text()[-4000:]
    retried = [r for r in got[1:] if (r.path, r.body) == (got[0].path, got[0].body)]
    assert len(retried) == 1
    # The same message id on the retry; its own timestamp and signature.
    assert retried[0].headers["webhook-id"] == got[0].headers["webhook-id"]
    assert retried[0].headers["webhook-id"] == json.loads(got[0].body)["id"]
    got = got[1:]

    by_path: dict[str, list[Any]] = {}
    for request in got:
        by_path.setdefault(request.path, []).append(request)
    (callback,) = by_path["/callback"]
    # Verified as a receiver verifies: the library, the secret as the API gave it.
    Webhook(created["callback_secret"]).verify(callback.body, callback.headers)
    for request in by_path["/sub"]:
        Webhook(sub["secret"]).verify(request.body, request.headers)
    events = {json.loads(r.body)["type"]: json.loads(r.body) for r in by_path["/sub"]}
    assert set(events) == {"search.completed", "job.completed"}
    assert json.loads(callback.body) == events["search.completed"]  # one event, two receivers

    data = events["search.completed"]["data"]
    assert data["search_id"] == created["search_id"]
    assert data["status"] == "succeeded"
    assert data["faces_included"] is True
    face = max(data["faces"], key=lambda f: f["box"]["width"] * f["box"]["height"])
    assert face["matches"][0]["label"] == "Albert_Costa"
    assert events["job.completed"]["data"]["job_id"] == created["job_id"]

    # The worker records each attempt after the receiver has answered.
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        deliveries = client.get(sub["deliveries_url"]).get_json()["deliveries"]
        if [d["status"] for d in deliveries] == ["succeeded", "succeeded"]:
            break
        time.sleep(0.2)
    assert [d["status"] for d in deliveries] == ["succeeded", "succeeded"], deliveries
    assert sum(d["attempts"] for d in deliveries) in (2, 3)  # 3 if the 503 was one of these
    for delivery in deliveries:
        codes = [a["status_code"] for a in delivery["attempt_log"]]
        assert codes in ([200], [503, 200]), delivery
