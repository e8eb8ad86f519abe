"""``make demo``: the whole product on the embedded default, truly asynchronous.

Starts the API (gunicorn) and a worker (Celery on the filesystem broker) as separate
processes over one data folder, uploads a gallery from LFW through HTTP, searches with one
photo and prints the top 10. Nothing to install: SQLite, a local folder, milvus-lite.

The API wants a key on every request: the demo makes its own gallery and a write key for it,
straight in the freshly migrated database (as `facesearch keys create` would), and sends it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from tqdm import tqdm

from cli.lfw import PROJECT_ROOT, by_identity, default_archive
from core.settings import Settings
from models import Scope
from models.db import make_engine, make_session_factory, session_scope
from services.galleries import get_or_create_gallery
from services.keys import create_key

EMBEDDED_OVERRIDES = ("DATABASE_URL", "BROKER_URL", "STORAGE_URL", "MILVUS_URI")
READY_TIMEOUT_S = 120
JOB_TIMEOUT_S = 1800
# Files per upload request: big enough for the worker to batch MTCNN and FaceNet.
UPLOAD_BATCH = 64
# Jobs read per listing while following the ingest (the most the API lists at once).
LISTED_JOBS = 200
# The demo's gallery; its key may add images and search (write), nothing more.
DEMO_GALLERY = "demo"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _say(message: str) -> None:
    print(message, flush=True)


def _make_key(data_dir: Path) -> tuple[str, str]:
    """A write key for the demo's gallery (made if missing) in the embedded database under
    ``data_dir``; returns the key and its prefix, the part that may be shown."""
    database_url = Settings(data_dir=data_dir, database_url="").database_url
    engine = make_engine(database_url)
    try:
        with session_scope(make_session_factory(engine)) as session:
            gallery = get_or_create_gallery(session, DEMO_GALLERY)
            row, key = create_key(session, scope=Scope.WRITE, gallery=gallery, name="demo")
            prefix = f"fsk_{row.prefix}"
    finally:
        engine.dispose()
    return key, prefix


@contextmanager
def _process(
    args: list[str], env: dict[str, str], log_path: Path
) -> Iterator[subprocess.Popen[bytes]]:
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            args, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=PROJECT_ROOT
        )
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_ready(client: httpx.Client, procs: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        for proc in procs:
            if proc.poll() is not None:
                raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}; see its log")
        try:
            if client.get("/readyz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise RuntimeError("the API did not become ready in time")


def _get(client: httpx.Client, path: str, **params: str) -> dict:
    """GET a JSON answer, waiting out a 429 (the API's rate limit per key) as it asks."""
    while True:
        response = client.get(path, params=params or None)
        if response.status_code != 429:
            response.raise_for_status()
            answer: dict = response.json()
            return answer
        try:
            time.sleep(float(response.headers.get("Retry-After", "1")))
        except ValueError:
            time.sleep(1)


def _wait_job(client: httpx.Client, job_id: str) -> dict:
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while time.monotonic() < deadline:
        job = _get(client, f"/v1/jobs/{job_id}")
        if job["status"] not in ("queued", "running"):
            return job
        time.sleep(0.1)
    raise RuntimeError(f"job {job_id} did not finish in time")


def _follow_jobs(client: httpx.Client, job_ids: list[str], n_images: int) -> list[dict]:
    """Poll the ingest jobs, showing images processed, until all have finished. One request
    a tick lists them all (the demo's gallery holds only these), well inside the rate limit."""
    finished: dict[str, dict] = {}
    deadline = time.monotonic() + JOB_TIMEOUT_S
    with tqdm(total=n_images, unit="img", file=sys.stdout) as bar:
        while len(finished) < len(job_ids) and time.monotonic() < deadline:
            listed = _get(client, "/v1/jobs", kind="ingest", limit=str(LISTED_JOBS))["items"]
            by_id = {job["id"]: job for job in listed}
            processed = 0
            for job_id in job_ids:
                job = finished.get(job_id) or by_id.get(job_id)
                if job is None:  # not in the listing: asked for alone
                    job = _get(client, f"/v1/jobs/{job_id}")
                if job["status"] not in ("queued", "running"):
                    finished[job_id] = job
                progress = job["progress"]
                processed += progress["done"] + progress["failed"] + progress["skipped"]
            bar.update(processed - bar.n)
            time.sleep(0.5)
    if len(finished) < len(job_ids):
        raise RuntimeError("the ingest jobs did not finish in time")
    return [finished[job_id] for job_id in job_ids]


def run_demo(*, archive: Path | None, min_images: int, query: str) -> int:
    started = time.monotonic()
    archive = archive or default_archive()
    if not archive.exists():
        _say(f"LFW archive not found at {archive}. Set LFW_ARCHIVE to an LFW .tgz.")
        return 2
    query_label, query_name = query.split("/", 1)

    data_dir = (PROJECT_ROOT / "var" / "demo").resolve()
    shutil.rmtree(data_dir, ignore_errors=True)  # a fresh gallery each run
    data_dir.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if k not in EMBEDDED_OVERRIDES}
    env |= {"DATA_DIR": str(data_dir), "LOG_JSON": "true", "APP_ENV": "development"}
    cli = [sys.executable, "-m", "cli.main"]

    _say("1/5 model weights (downloaded once, sha256-verified)")
    subprocess.run([*cli, "models", "pull"], env=env, check=True, cwd=PROJECT_ROOT)
    _say("2/5 database schema (alembic upgrade head) and an API key")
    subprocess.run(
        [*cli, "db", "upgrade"],
        env=env,
        check=True,
        cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    key, prefix = _make_key(data_dir)
    _say(f"    gallery {DEMO_GALLERY!r}, write key {prefix}... (sent with every request)")

    port = _free_port()
    _say(f"3/5 starting the API on 127.0.0.1:{port} and a worker (logs in {data_dir})")
    with (
        _process([*cli, "worker"], env, data_dir / "worker.log") as worker,
        _process([*cli, "serve", "--port", str(port)], env, data_dir / "api.log") as api,
        httpx.Client(
            base_url=f"http://127.0.0.1:{port}",
            timeout=60,
            headers={"Authorization": f"Bearer {key}"},
        ) as client,
    ):
        _wait_ready(client, [worker, api])

        gallery = by_identity(archive, min_images=min_images, include={query_label})
        n_images = sum(map(len, gallery.values()))
        _say(f"4/5 ingesting {n_images} images of {len(gallery)} people from {archive.name}")
        ingest_started = time.monotonic()
        job_ids = []
        labelled = [(label, img) for label, images in gallery.items() for img in images]
        for start in range(0, len(labelled), UPLOAD_BATCH):
            chunk = labelled[start : start + UPLOAD_BATCH]
            response = client.post(
                "/v1/images",
                files=[("file", (img.name, img.data, "image/jpeg")) for _, img in chunk],
                data={"label": [label for label, _ in chunk]},  # one label per file
            )
            response.raise_for_status()
            job_ids.append(response.json()["job_id"])
        jobs = _follow_jobs(client, job_ids, n_images)
        faces = sum(job["result"].get("faces", 0) for job in jobs)
        failed = sum(job["progress"]["failed"] for job in jobs)
        ingest_s = time.monotonic() - ingest_started
        _say(
            f"    {n_images} images, {faces} faces, {failed} without a usable face, "
            f"in {ingest_s:.1f} s: {n_images / ingest_s:.1f} images/s"
        )

        _say(f"5/5 searching with {query}")
        query_bytes = next(i.data for i in gallery[query_label] if i.name == query_name)
        search_started = time.monotonic()
        response = client.post(
            "/v1/searches",
            files={"file": (query_name, query_bytes, "image/jpeg")},
            data={"top_k": "10"},
        )
        response.raise_for_status()
        created = response.json()
        job = _wait_job(client, created["job_id"])
        search = _get(client, created["search_url"])
        latency_s = time.monotonic() - search_started
        if job["status"] != "succeeded":
            _say(f"search failed: {job['error']}")
            return 1

    return _report(
        search=search,
        gallery=gallery,
        query_label=query_label,
        query_name=query_name,
        latency_s=latency_s,
        started=started,
    )


def _report(
    *,
    search: dict,
    gallery: dict,
    query_label: str,
    query_name: str,
    latency_s: float,
    started: float,
) -> int:
    face = max(search["faces"], key=lambda f: f["box"]["width"] * f["box"]["height"])
    _say(f"\nTop 10 for {query_label}/{query_name} (face at {face['box']}):")
    _say(f"{'rank':>4}  {'score':>6}  {'image':>6}  label")
    for match in face["matches"]:
        mark = "  <- same person" if match["label"] == query_label else ""
        _say(
            f"{match['rank']:>4}  {match['score']:6.3f}  {match['image_id']:>6}  "
            f"{match['label']}{mark}"
        )
    same = sum(1 for m in face["matches"] if m["label"] == query_label)
    expected = len(gallery[query_label])
    _say(
        f"\n{same} of {expected} {query_label} images in the top 10 "
        f"(the query photo is in the gallery too, so it ranks first)"
    )
    _say(
        f"search latency, upload to result: {latency_s * 1000:.0f} ms; "
        f"demo wall time: {time.monotonic() - started:.0f} s"
    )
    return 0 if same == expected else 1
