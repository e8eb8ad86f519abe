"""End to end through a real Celery worker process on Postgres + Redis, with the objects in a
real S3 server (moto) on loopback and the index in milvus-lite (owned by the worker).

Ingest several LFW identities through the HTTP API, search with a photo that is not in the
gallery, and the top match is the right person. Every request carries an API key; the web page
asks for one in its form.
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
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
import redis
from flask.testing import FlaskClient

from api import create_app
from api.context import EXTENSION
from cli.lfw import LfwImage
from core.settings import Settings
from models import Scope
from tests.conftest import MODEL_DIR, create_database, drop_database, migrate
from tests.worker_process import (
    JOB_TIMEOUT_S,
    keyed_client,
    make_api_key,
    start_worker,
    stop_worker,
    wait_for_job,
)

if TYPE_CHECKING:
    from playwright.sync_api import Page, Request, Route

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
def api_keys(stack: tuple[Settings, subprocess.Popen[bytes], Path]) -> dict[Scope, str]:
    """A write key and a search key of the default gallery."""
    database_url = stack[0].database_url
    return {scope: make_api_key(database_url, scope=scope) for scope in (Scope.WRITE, Scope.SEARCH)}


@pytest.fixture(scope="module")
def client(
    stack: tuple[Settings, subprocess.Popen[bytes], Path], api_keys: dict[Scope, str]
) -> Iterator[FlaskClient]:
    app = create_app(stack[0])
    yield keyed_client(app, api_keys[Scope.WRITE])
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


# What the page will be served with: no inline script, style or event handler may run, and
# images may come only from this server or from blob: URLs.
STRICT_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'"
)
KEY_STORAGE = "facesearch.apiKey"
# True once every image matching a selector is shown, from a blob: URL. (A function, not an
# expression: Playwright evaluates an expression with eval(), which the CSP refuses.)
SHOWN_FROM_BLOBS = """(selector) => {
    const images = [...document.querySelectorAll(selector)];
    return images.length > 0
        && images.every((img) => img.src.startsWith("blob:") && img.naturalWidth > 0);
}"""


@contextmanager
def browser_page(base_url: str) -> Iterator[tuple[Page, list[str], list[Request]]]:
    """A page of headless Chromium whose HTML is served under STRICT_CSP too; yields it, the
    console's errors (a CSP violation is one) and every request it made to the API."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})

            def with_csp(route: Route) -> None:
                # Added to the server's own policy, if any: the browser enforces both.
                response = route.fetch()
                served = response.headers.get("content-security-policy")
                policy = f"{served}, {STRICT_CSP}" if served else STRICT_CSP
                route.fulfill(
                    response=response,
                    headers={**response.headers, "content-security-policy": policy},
                )

            page.route(base_url + "/", with_csp)
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            api_requests: list[Request] = []
            page.on("request", lambda r: api_requests.append(r) if "/v1/" in r.url else None)
            yield page, errors, api_requests
        finally:
            browser.close()


def enter_key(page: Page, key: str) -> None:
    page.wait_for_selector("#key-form", state="visible")
    page.fill("#key-input", key)
    page.click("#key-submit")


def needs_chromium() -> None:
    if not CHROMIUM.exists():
        pytest.skip("the browser test needs Debian's chromium (apt-get install chromium)")


def test_the_web_page_asks_for_a_key(
    stack: tuple[Settings, subprocess.Popen[bytes], Path],
    served_api: str,
    api_keys: dict[Scope, str],
    lfw_faces: dict[str, list[LfwImage]],
    tmp_path: Path,
) -> None:
    needs_chromium()
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(lfw_faces["Ai_Sugiyama"][0].data)
    stored = f"sessionStorage.getItem('{KEY_STORAGE}')"
    with browser_page(served_api) as (page, errors, api_requests):
        page.goto(served_api + "/")
        # No key yet: the form, and nothing of the app.
        page.wait_for_selector("#key-panel", state="visible")
        assert page.locator("#app").is_hidden()
        assert page.locator("#search-form").is_hidden()

        enter_key(page, "fsk_00000000_" + "x" * 43)
        page.wait_for_selector("#key-status.error")
        assert "refused" in page.inner_text("#key-status")
        assert page.locator("#app").is_hidden()
        assert page.evaluate(stored) is None
        page.screenshot(path=str(stack[0].data_dir / "web-key.png"))

        # A search key can search and browse; adding photos needs write: a 403, explained.
        key = api_keys[Scope.SEARCH]
        enter_key(page, key)
        page.wait_for_selector("#search-form", state="visible")
        assert page.locator("#key-panel").is_hidden()
        shown = page.inner_text("#key-state")
        assert key.split("_")[1] in shown  # the prefix...
        assert key not in shown  # ...never the key
        assert page.evaluate(stored) == key
        page.goto(served_api + "/#add")
        page.set_input_files("#add-files", str(photo))
        page.fill("#add-label", "Ai_Sugiyama")
        page.click("#add-form button[type=submit]")
        page.wait_for_selector("#add-job .error")
        message = page.inner_text("#add-job .error")
        assert "may not do that" in message, message
        assert "needs write" in message, message

        page.click("#key-forget")
        page.wait_for_selector("#key-panel", state="visible")
        assert page.locator("#app").is_hidden()
        assert page.evaluate(stored) is None
        assert page.inner_text("#add-job") == ""  # what the old key showed is gone

        # A key that stops working (revoked, say) brings the form back, saying why.
        page.evaluate(f"sessionStorage.setItem('{KEY_STORAGE}', 'fsk_00000000_' + 'y'.repeat(43))")
        page.goto(served_api + "/#gallery")
        page.wait_for_selector("#key-status.error")
        assert "refused" in page.inner_text("#key-status")
        assert page.locator("#app").is_hidden()
        assert page.evaluate(stored) is None
        for request in api_requests:
            assert request.all_headers()["authorization"].startswith("Bearer fsk_"), request.url
    # The browser logs each refused request (401, 403) as a console error; nothing else.
    assert all("status of 40" in error for error in errors), errors


def test_the_web_page_finds_the_person_in_a_photo(
    stack: tuple[Settings, subprocess.Popen[bytes], Path],
    client: FlaskClient,
    served_api: str,
    api_keys: dict[Scope, str],
    lfw_faces: dict[str, list[LfwImage]],
    tmp_path: Path,
) -> None:
    needs_chromium()
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

    with browser_page(served_api) as (page, errors, api_requests):
        page.goto(served_api + "/")
        enter_key(page, api_keys[Scope.WRITE])
        page.set_input_files("#search-file", str(query))
        page.click("#search-submit")
        page.wait_for_selector(".match", timeout=60_000)
        assert page.locator(".box").count() >= 1  # the face is boxed on the photo
        first = page.locator(".face").first.locator(".match").first
        assert first.get_attribute("data-label") == "Abdullah_Gul"
        assert "face" in page.locator("#search-status").inner_text()
        # Images need the key too: fetched with it and shown through blob: URLs.
        page.wait_for_function(
            SHOWN_FROM_BLOBS, arg="#query-frame img, .match:first-child img", timeout=30_000
        )
        page.screenshot(path=str(stack[0].data_dir / "web-search.png"), full_page=True)

        # Another visit in the same tab keeps the key: no form this time.
        page.goto(served_api + "/#gallery")
        page.wait_for_selector("#labels li[data-label='Abdullah_Gul']")
        assert page.locator("#key-panel").is_hidden()
        page.click("#labels li[data-label='Abdullah_Gul']")
        page.wait_for_selector("#gallery-images .thumb")
        assert page.locator("#gallery-images .thumb").count() == len(images) - 1
        page.wait_for_function(SHOWN_FROM_BLOBS, arg="#gallery-images img", timeout=30_000)
        assert api_requests
        for request in api_requests:
            assert request.all_headers()["authorization"].startswith("Bearer fsk_"), request.url
    assert not errors, errors


def test_the_cli_searches_a_running_server(
    stack: tuple[Settings, subprocess.Popen[bytes], Path],
    client: FlaskClient,
    served_api: str,
    api_keys: dict[Scope, str],
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
    runner = CliRunner(env={"FACESEARCH_KEY": api_keys[Scope.SEARCH]})
    table = runner.invoke(cli, ["search", str(query), "--url", served_api, "--top-k", "3"])
    assert table.exit_code == 0, table.output
    assert "face 1 at x=" in table.output
    assert "Alejandro_Toledo" in table.output.splitlines()[2]  # the first match's row

    key = api_keys[Scope.SEARCH]
    as_json = runner.invoke(
        cli, ["search", str(query), "--url", served_api, "--json", "--key", key]
    )
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.output)["faces"][0]["matches"][0]["label"] == "Alejandro_Toledo"

    unreachable = runner.invoke(cli, ["search", str(query), "--url", "http://127.0.0.1:9"])
    assert unreachable.exit_code == 1
    assert "cannot reach http://127.0.0.1:9" in unreachable.output


def test_the_generated_client_searches_a_running_server(
    served_api: str,
    api_keys: dict[Scope, str],
    lfw_faces: dict[str, list[LfwImage]],
) -> None:
    """The typed client generated from the OpenAPI document (clients/python), as an integrator
    uses it: add photos, wait on the job, search with Prefer: wait, fetch the match's bytes."""
    from facesearch_client import AuthenticatedClient
    from facesearch_client.api.images import get_v1_images_image_id_content, post_v1_images
    from facesearch_client.api.jobs import get_v1_jobs_job_id
    from facesearch_client.api.searches import get_v1_searches_search_id, post_v1_searches
    from facesearch_client.models import (
        ImageUploadIn,
        JobCreatedOut,
        JobOut,
        SearchCreatedOut,
        SearchIn,
        SearchOut,
        SearchWaitedOut,
    )
    from facesearch_client.types import File

    images = lfw_faces["Ai_Sugiyama"]
    with AuthenticatedClient(
        base_url=served_api, token=api_keys[Scope.WRITE], timeout=httpx.Timeout(60.0)
    ) as client:
        files = [File(payload=io.BytesIO(i.data), file_name=i.name) for i in images[1:]]
        body = ImageUploadIn(file=files, label=["Ai_Sugiyama"])
        created = post_v1_images.sync(client=client, body=body, idempotency_key=str(uuid.uuid4()))
        assert isinstance(created, JobCreatedOut), created
        for _ in range(JOB_TIMEOUT_S // 30):
            job = get_v1_jobs_job_id.sync(created.job_id, client=client, wait=30)
            assert isinstance(job, JobOut), job
            if job.status in ("succeeded", "partial", "failed", "cancelled"):
                break
        assert job.status == "succeeded", job

        query = File(payload=io.BytesIO(images[0].data), file_name=images[0].name)
        found = post_v1_searches.sync(
            client=client, body=SearchIn(file=query, top_k=3), prefer="wait=30"
        )
        if isinstance(found, SearchCreatedOut):  # not ended within the wait (a busy machine)
            while job.status != "succeeded" or job.id != found.job_id:
                job = get_v1_jobs_job_id.sync(found.job_id, client=client, wait=30)
                assert isinstance(job, JobOut), job
                assert job.status in ("queued", "running", "succeeded"), job
            found = get_v1_searches_search_id.sync(found.search_id, client=client)
        assert isinstance(found, (SearchWaitedOut, SearchOut)), found
        assert found.status == "succeeded"
        face = max(found.faces, key=lambda f: f.box.width * f.box.height)
        best = face.matches[0]
        assert best.label == "Ai_Sugiyama"
        content = get_v1_images_image_id_content.sync_detailed(best.image_id, client=client)
        assert content.status_code == 200
        assert content.headers["Content-Type"] == "image/jpeg"
        assert content.content[:3] == b"\xff\xd8\xff"
