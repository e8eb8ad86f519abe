"""End to end through a real Celery worker process on Postgres + Redis, with the objects in a
real S3 server (moto) on loopback and the index in milvus-lite (owned by the worker).

Ingest several LFW identities through the HTTP API, search with a photo that is not in the
gallery, and the top match is the right person.
"""

from __future__ import annotations

import io
import json
import logging
import os
import random
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from flask.testing import FlaskClient

from api import create_app
from api.context import EXTENSION
from cli.lfw import LfwImage
from core.settings import Settings
from tests.conftest import MODEL_DIR, create_database, drop_database, migrate
from tests.worker_process import start_worker, stop_worker, wait_for_job

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def s3_url() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"s3://testing:testing@{host}:{port}/facesearch-e2e"
    server.stop()


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    db = random.randint(1, 15)
    url = f"redis://127.0.0.1:6379/{db}"
    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    except redis.ConnectionError as exc:
        pytest.fail(f"tests need Redis on 127.0.0.1:6379 - {exc}")
    yield url
    client.flushdb()


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, s3_url: str, redis_url: str
) -> Iterator[tuple[Settings, subprocess.Popen[bytes], Path]]:
    data_dir = tmp_path_factory.mktemp("e2e")
    metrics_port = free_port()
    database_url = create_database()
    migrate(database_url)
    env = {
        **os.environ,
        "DATA_DIR": str(data_dir),
        "DATABASE_URL": database_url,
        "BROKER_URL": redis_url,
        "STORAGE_URL": s3_url,
        "MILVUS_URI": str(data_dir / "milvus.db"),
        "MILVUS_INDEX_TYPE": "FLAT",
        "MODEL_DIR": str(MODEL_DIR),
        "LOG_JSON": "true",
        "WORKER_METRICS_PORT": str(metrics_port),
    }
    settings = Settings(
        data_dir=data_dir,
        database_url=database_url,
        broker_url=redis_url,
        storage_url=s3_url,
        milvus_uri=env["MILVUS_URI"],
        model_dir=MODEL_DIR,
        worker_metrics_port=metrics_port,
    )
    log_path = data_dir / "worker.log"
    worker = start_worker(env, log_path)
    try:
        yield settings, worker, log_path
    finally:
        stop_worker(worker)
        drop_database(database_url)


@pytest.fixture(scope="module")
def client(stack: tuple[Settings, subprocess.Popen[bytes], Path]) -> Iterator[FlaskClient]:
    app = create_app(stack[0])
    yield app.test_client()
    app.extensions[EXTENSION].close()


def test_upload_poll_search_through_a_real_worker(
    stack: tuple[Settings, subprocess.Popen[bytes], Path],
    client: FlaskClient,
    lfw_faces: dict[str, list[LfwImage]],
) -> None:
    _, worker, log_path = stack
    job_ids = []
    for label, images in lfw_faces.items():
        files = [(io.BytesIO(i.data), i.name) for i in images[1:]]  # image 0 is a query
        response = client.post(
            "/v1/images", data={"file": files, "label": label}, content_type="multipart/form-data"
        )
        assert response.status_code == 202
        job_ids.append(response.get_json()["job_id"])
    for job_id in job_ids:
        job = wait_for_job(client, job_id, log_path)
        assert job["status"] == "succeeded", job

    for label, images in lfw_faces.items():
        response = client.post(
            "/v1/searches",
            data={"file": (io.BytesIO(images[0].data), images[0].name)},
            content_type="multipart/form-data",
        )
        assert response.status_code == 202
        created = response.get_json()
        job = wait_for_job(client, created["job_id"], log_path)
        assert job["status"] == "succeeded", job
        assert job["result"] == {"search_id": created["search_id"]}
        result = client.get(created["search_url"]).get_json()
        face = max(result["faces"], key=lambda f: f["box"]["width"] * f["box"]["height"])
        assert face["matches"][0]["label"] == label, face["matches"][:3]
        # The matched image's bytes come back from the S3 store.
        content = client.get(face["matches"][0]["image_url"])
        assert content.status_code == 200
        assert content.mimetype == "image/jpeg"
    assert worker.poll() is None


def test_a_query_without_a_face_fails_with_a_reason(
    stack: tuple[Settings, subprocess.Popen[bytes], Path],
    client: FlaskClient,
) -> None:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (160, 160), (30, 90, 200)).save(buffer, format="PNG")
    response = client.post(
        "/v1/searches",
        data={"file": (io.BytesIO(buffer.getvalue()), "sky.png")},
        content_type="multipart/form-data",
    )
    job = wait_for_job(client, response.get_json()["job_id"], stack[2])
    assert job["status"] == "failed"
    assert job["error"] == "no face found in the query image"


def test_the_worker_serves_its_metrics(
    stack: tuple[Settings, subprocess.Popen[bytes], Path],
    client: FlaskClient,
    lfw_faces: dict[str, list[LfwImage]],
) -> None:
    image = lfw_faces["Albert_Costa"][0]
    response = client.post(
        "/v1/searches",
        data={"file": (io.BytesIO(image.data), image.name)},
        content_type="multipart/form-data",
    )
    wait_for_job(client, response.get_json()["job_id"], stack[2])
    port = stack[0].worker_metrics_port
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    assert (
        'facesearch_task_duration_seconds_count{outcome="success",task="facesearch.run_search"}'
        in text
    )
    load = [line for line in text.splitlines() if line.startswith("facesearch_model_load_seconds{")]
    assert load, text
    assert float(load[0].rsplit(" ", 1)[1]) > 0


CHROMIUM = Path("/usr/bin/chromium")
# Flags for a sandboxed headless run on a machine without network access or a display.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def served_api(stack: tuple[Settings, subprocess.Popen[bytes], Path]) -> Iterator[str]:
    """The API on a real HTTP port (127.0.0.1), in a thread, for the browser."""
    from werkzeug.serving import make_server

    app = create_app(stack[0])
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)
    app.extensions[EXTENSION].close()


def test_the_web_page_finds_the_person_in_a_photo(
    stack: tuple[Settings, subprocess.Popen[bytes], Path],
    client: FlaskClient,
    served_api: str,
    lfw_faces: dict[str, list[LfwImage]],
    tmp_path: Path,
) -> None:
    if not CHROMIUM.exists():
        pytest.skip("the browser test needs Debian's chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    images = lfw_faces["Abdullah_Gul"]
    files = [(io.BytesIO(i.data), i.name) for i in images[1:]]
    response = client.post(
        "/v1/images",
        data={"file": files, "label": "Abdullah_Gul"},
        content_type="multipart/form-data",
    )
    wait_for_job(client, response.get_json()["job_id"], stack[2])
    query = tmp_path / images[0].name
    query.write_bytes(images[0].data)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto(served_api + "/")
            page.set_input_files("#search-file", str(query))
            page.click("#search-submit")
            page.wait_for_selector(".match", timeout=60_000)
            assert page.locator(".box").count() >= 1  # the face is boxed on the photo
            first = page.locator(".face").first.locator(".match").first
            assert first.get_attribute("data-label") == "Abdullah_Gul"
            assert "face" in page.locator("#search-status").inner_text()
            page.screenshot(path=str(stack[0].data_dir / "web-search.png"), full_page=True)

            page.goto(served_api + "/#gallery")
            page.wait_for_selector("#labels li[data-label='Abdullah_Gul']")
            page.click("#labels li[data-label='Abdullah_Gul']")
            page.wait_for_selector("#gallery-images .thumb")
            assert page.locator("#gallery-images .thumb").count() == len(images) - 1
        finally:
            browser.close()


def test_the_cli_searches_a_running_server(
    stack: tuple[Settings, subprocess.Popen[bytes], Path],
    client: FlaskClient,
    served_api: str,
    lfw_faces: dict[str, list[LfwImage]],
    tmp_path: Path,
) -> None:
    from click.testing import CliRunner

    from cli.main import cli

    images = lfw_faces["Alejandro_Toledo"]
    files = [(io.BytesIO(i.data), i.name) for i in images[1:]]  # a repeat is skipped: harmless
    response = client.post(
        "/v1/images",
        data={"file": files, "label": "Alejandro_Toledo"},
        content_type="multipart/form-data",
    )
    wait_for_job(client, response.get_json()["job_id"], stack[2])
    query = tmp_path / "query.jpg"
    query.write_bytes(lfw_faces["Alejandro_Toledo"][0].data)
    runner = CliRunner()
    table = runner.invoke(cli, ["search", str(query), "--url", served_api, "--top-k", "3"])
    assert table.exit_code == 0, table.output
    assert "face 1 at x=" in table.output
    assert "Alejandro_Toledo" in table.output.splitlines()[2]  # the first match's row

    as_json = runner.invoke(cli, ["search", str(query), "--url", served_api, "--json"])
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.output)["faces"][0]["matches"][0]["label"] == "Alejandro_Toledo"

    unreachable = runner.invoke(cli, ["search", str(query), "--url", "http://127.0.0.1:9"])
    assert unreachable.exit_code == 1
    assert "cannot reach http://127.0.0.1:9" in unreachable.output
