"""Shared fixtures: a real Postgres database made by migrations, settings for a temporary
embedded store and index, the API app, LFW faces and the loaded face pipeline."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from flask.testing import FlaskClient
from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from api import create_app
from api.context import EXTENSION
from cli.lfw import LfwImage, default_archive, iter_images
from cli.main import run_migrations
from core.settings import Settings, get_settings
from models import DEFAULT_GALLERY_ID, Face, Gallery, Image, Scope
from models.db import make_engine, make_session_factory
from services.keys import create_key

PG_ADMIN_URL = os.environ.get("TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
MODEL_DIR = Path(os.environ.get("MODEL_DIR", Path.home() / ".cache" / "facesearch" / "models"))


def _admin(sql: str) -> None:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql)  # type: ignore[arg-type]


def create_database() -> str:
    """A fresh, empty Postgres database for this test run; returns its SQLAlchemy URL."""
    name = f"facesearch_test_{uuid.uuid4().hex[:12]}"
    try:
        _admin(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"tests need PostgreSQL on 127.0.0.1:5432 (trust auth) - {exc}. "
            "Start it with: pg_ctlcluster --skip-systemctl-redirect 15 main start"
        )
    return (
        PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
        + f"/{name}"
    )


def drop_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def migrate(url: str) -> None:
    """The schema is only ever made by migrations, in tests too."""
    run_migrations(url)


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    url = create_database()
    migrate(url)
    yield url
    drop_database(url)


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def connection(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction that is rolled back after the test."""
    with engine.connect() as conn:
        outer = conn.begin()
        yield conn
        outer.rollback()


@pytest.fixture
def sessions(connection: Connection) -> sessionmaker[Session]:
    # Commits inside the code under test become savepoints of the test's transaction.
    return sessionmaker(
        bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
    )


@pytest.fixture
def session(sessions: sessionmaker[Session]) -> Iterator[Session]:
    with sessions() as s:
        yield s


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        app_env="test",
        data_dir=tmp_path,
        database_url=database_url,
        broker_url=f"filesystem://{tmp_path / 'broker'}",
        storage_url=f"file://{tmp_path / 'objects'}",
        milvus_uri=str(tmp_path / "milvus.db"),
        milvus_index_type="FLAT",
        model_dir=MODEL_DIR,
        log_json=True,
    )


def make_key(
    sessions: sessionmaker[Session],
    *,
    scope: Scope = Scope.ADMIN,
    gallery_id: int | None = DEFAULT_GALLERY_ID,
) -> str:
    """An API key (committed in the test's transaction), bound to ``gallery_id`` (None: all)."""
    with sessions() as session:
        gallery = session.get(Gallery, gallery_id) if gallery_id is not None else None
        _, key = create_key(session, scope=scope, gallery=gallery, name="test")
        session.commit()
    return key


def make_client(
    settings: Settings, sessions: sessionmaker[Session], *, key: str | None = None
) -> FlaskClient:
    """A test client of the API whose requests run in the test's rolled-back transaction,
    sending an admin key of the default gallery (or ``key``) with every request."""
    app = create_app(settings)
    app.extensions[EXTENSION].sessions = sessions
    app.testing = True
    client = app.test_client()
    key = key or make_key(sessions)
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    return client


@pytest.fixture
def client(settings: Settings, sessions: sessionmaker[Session]) -> FlaskClient:
    return make_client(settings, sessions)


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An embedded data folder for the ``facesearch`` command, and settings read afresh."""
    for name in ("DATABASE_URL", "BROKER_URL", "STORAGE_URL", "MILVUS_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MODEL_DIR", str(MODEL_DIR))
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def image_row(*, sha256: str, object_key: str, **fields: Any) -> Image:
    """An image row of the default gallery with placeholder facts (a 1x1 JPEG named a.jpg)
    for tests that need the row, not the picture; ``fields`` override any of them."""
    values: dict[str, Any] = {
        "gallery_id": DEFAULT_GALLERY_ID,
        "content_type": "image/jpeg",
        "size_bytes": 1,
        "width": 1,
        "height": 1,
        "filename": "a.jpg",
    }
    return Image(sha256=sha256, object_key=object_key, **(values | fields))


def face_row(*, image_id: int, model_name: str, embedding: bytes, **fields: Any) -> Face:
    """A face row with placeholder facts (a 1x1 box at the corner, no landmarks) for tests
    that need the row and its vector, not where the face is; ``fields`` override any."""
    values: dict[str, Any] = {
        "face_index": 0,
        "dim": len(embedding) // 4,
        "box_x": 0,
        "box_y": 0,
        "box_w": 1,
        "box_h": 1,
        "confidence": 0.99,
        "landmarks": {},
    }
    return Face(image_id=image_id, model_name=model_name, embedding=embedding, **(values | fields))


@pytest.fixture
def committed(settings: Settings) -> Iterator[tuple[Settings, sessionmaker[Session]]]:
    """Settings and sessions on a database of its own whose requests really commit (no
    shared, rolled-back test transaction): for races between concurrent requests."""
    url = create_database()
    try:
        migrate(url)
        engine = make_engine(url)
        yield settings.model_copy(update={"database_url": url}), make_session_factory(engine)
        engine.dispose()
    finally:
        drop_database(url)


# --- LFW -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def lfw_archive() -> Path:
    archive = default_archive()
    if not archive.exists():
        pytest.skip(f"LFW archive not found at {archive} (set LFW_ARCHIVE to run real-face tests)")
    return archive


@pytest.fixture(scope="session")
def lfw_faces(lfw_archive: Path) -> dict[str, list[LfwImage]]:
    """A few identities with several images each, read once from the archive."""
    wanted = {"Albert_Costa": 6, "Abdullah_Gul": 4, "Alejandro_Toledo": 4, "Ai_Sugiyama": 4}
    found: dict[str, list[LfwImage]] = {label: [] for label in wanted}
    for image in iter_images(lfw_archive):
        bucket = found.get(image.label)
        if bucket is not None and len(bucket) < wanted[image.label]:
            bucket.append(image)
        if all(len(found[label]) == n for label, n in wanted.items()):
            break
    return found


@pytest.fixture(scope="session")
def face_pipeline():  # type: ignore[no-untyped-def]
    """The real face pipeline with real weights, loaded once for the whole run."""
    from workers.pipeline import DEFAULT_MODEL, FacePipeline
    from workers.pipeline.weights import pull

    pull(DEFAULT_MODEL, MODEL_DIR)
    pipeline = FacePipeline(model_name=DEFAULT_MODEL, weights_dir=MODEL_DIR)
    pipeline.load()
    return pipeline


@pytest.fixture(scope="session")
def product_pipeline():  # type: ignore[no-untyped-def]
    """The pipeline the workers run with the default settings (``build_pipeline``: the
    product's recipe, its detector settings and second pass), loaded once for the whole run.
    ``face_pipeline`` is the plain pipeline (the original recipe) that most tests use."""
    from core.settings import Settings
    from workers.pipeline import DEFAULT_MODEL
    from workers.pipeline.weights import pull
    from workers.runtime import build_pipeline

    pull(DEFAULT_MODEL, MODEL_DIR)
    pipeline = build_pipeline(Settings(_env_file=None, model_dir=MODEL_DIR))  # type: ignore[call-arg]
    pipeline.load()
    return pipeline


# --- Milvus backends for the index tests -------------------------------------------------

# Set (to the server's URI) in the run that tests/test_index.py starts inside the network
# namespace of a real Milvus server (tests/milvus_server.py): there the index tests run on
# that server only; elsewhere on embedded milvus-lite and on a `milvus-lite server`.
REAL_MILVUS_ENV = "FACESEARCH_TEST_MILVUS_URI"
REAL_MILVUS_URI = os.environ.get(REAL_MILVUS_ENV, "")
MILVUS_BACKENDS = ["realserver"] if REAL_MILVUS_URI else ["lite", "liteserver"]


@pytest.fixture(scope="session")
def milvus_lite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A ``milvus-lite server`` on a free loopback port, once per run; its URI."""
    import socket
    import subprocess
    import sys
    import time

    data_dir = tmp_path_factory.mktemp("milvus-lite-server")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    executable = Path(sys.executable).with_name("milvus-lite")
    with (data_dir / "server.log").open("wb") as log:
        process = subprocess.Popen(
            [
                *(str(executable), "server", "--data-dir", str(data_dir / "db")),
                *("--host", "127.0.0.1", "--port", str(port)),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"milvus-lite server exited: {(data_dir / 'server.log').read_text()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("milvus-lite server did not listen within 60 s")
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _wipe_milvus(uri: str) -> None:
    """Drop every alias and collection on a shared server: each test starts empty."""
    import time

    from pymilvus import MilvusClient
    from pymilvus.exceptions import MilvusException

    # The server is up (it listened before the first test), but on a loaded machine a new
    # channel can miss pymilvus's readiness wait: try again before calling it down.
    for attempt in range(3):
        try:
            client = MilvusClient(uri=uri)
            break
        except MilvusException:
            if attempt == 2:
                raise
            time.sleep(2)
    try:
        for name in client.list_collections():
            for alias in client.list_aliases(name).get("aliases", []):
                client.drop_alias(alias)
            client.drop_collection(name)
    finally:
        client.close()


@pytest.fixture(params=MILVUS_BACKENDS)
def milvus_uri(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URI of an empty index on each backend the run tests: embedded milvus-lite (a
    fresh folder), a `milvus-lite server`, or the real Milvus server of the namespaced run."""
    if request.param == "lite":
        yield str(tmp_path / "var" / "milvus.db")
        return
    uri = (
        REAL_MILVUS_URI
        if request.param == "realserver"
        else request.getfixturevalue("milvus_lite_server")
    )
    _wipe_milvus(uri)
    yield uri
    _wipe_milvus(uri)
