"""The facesearch command: help everywhere, set-up commands, reindex queuing, and the upload of
`facesearch ingest` through the generated client."""

from __future__ import annotations

import io
import json
import os
import tarfile
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner
from facesearch_client import AuthenticatedClient
from sqlalchemy import inspect, select
from sqlalchemy.orm import Session, sessionmaker

from cli.main import cli
from core.settings import Settings, get_settings
from models import Job, JobKind, JobStatus
from models.db import make_engine, make_session_factory
from tests.conftest import make_key


@pytest.fixture
def env(cli_env: Path) -> Path:
    return cli_env


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["models"],
        ["models", "pull"],
        ["db", "upgrade"],
        ["serve"],
        ["worker"],
        ["reindex"],
        ["demo"],
    ],
)
def test_every_command_has_help(args: list[str]) -> None:
    result = CliRunner().invoke(cli, [*args, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_db_upgrade_then_reindex_queues_a_job(env: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    engine = make_engine(get_settings().database_url)
    assert "faces" in inspect(engine).get_table_names()

    result = runner.invoke(cli, ["reindex"])
    assert result.exit_code == 0, result.output
    with make_session_factory(engine)() as session:
        job = session.scalars(select(Job)).one()
    engine.dispose()
    assert (job.kind, job.status) == (JobKind.REINDEX, JobStatus.QUEUED)
    assert job.id in result.output
    messages = [json.loads(p.read_bytes()) for p in (env / "broker" / "queue").glob("*.msg")]
    assert [m["headers"]["task"] for m in messages] == ["facesearch.reindex"]


def test_models_list_shows_the_default_model(env: Path) -> None:
    result = CliRunner().invoke(cli, ["models", "list"])
    assert result.exit_code == 0, result.output
    assert "facenet-20170512-110547 (default): 128-d" in result.output


def test_ingest_streams_an_archive_through_the_generated_client(
    settings: Settings,
    sessions: sessionmaker[Session],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`facesearch ingest`'s upload, through the client generated from the OpenAPI document,
    to a real HTTP server on loopback: the archive goes as its raw body with its length, read
    from the file a chunk at a time (never whole), and the answer is the job's URL."""
    from werkzeug.serving import make_server

    from api import create_app
    from api.context import EXTENSION
    from cli import ingest

    archive = tmp_path / "big.tar"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        data = os.urandom(3 * 1024 * 1024)  # not an image: a failed item later, no matter
        info = tarfile.TarInfo("Nobody/Nobody_0001.jpg")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    archive.write_bytes(buffer.getvalue())
    reads: list[int] = []
    original = ingest._Progress.read

    def counted(self: ingest._Progress, size: int = -1) -> bytes:
        chunk = original(self, size)
        reads.append(len(chunk))
        return chunk

    monkeypatch.setattr(ingest._Progress, "read", counted)
    app = create_app(settings)
    app.extensions[EXTENSION].sessions = sessions
    server = make_server("127.0.0.1", 0, app, threaded=False)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        client = AuthenticatedClient(base_url=url, token=make_key(sessions))
        with client:
            job_url = ingest.upload(client, archive, "folder", quiet=True)
    finally:
        server.shutdown()
        thread.join()
        server.server_close()
        app.extensions[EXTENSION].close()
    with sessions() as session:
        job = session.get(Job, job_url.rsplit("/", 1)[1])
        assert job is not None
        assert job.params["size_bytes"] == archive.stat().st_size
        assert job.params["filename"] == "big.tar"
    assert sum(reads) == archive.stat().st_size
    assert max(reads) <= 1024 * 1024  # chunks, as httpx reads them: never the whole file
    assert len(reads) > 3
