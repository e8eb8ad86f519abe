"""The facesearch command: help everywhere, set-up commands, reindex queuing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import inspect, select

from cli.main import cli
from core.settings import get_settings
from models import Job, JobKind, JobStatus
from models.db import make_engine, make_session_factory


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
