"""Migrations make the schema, and the models agree with it (no drift)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect, text

import models
from cli.main import alembic_config
from models.db import make_engine
from tests.conftest import create_database, drop_database, migrate


def assert_models_match_schema(engine: Engine) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, models.Base.metadata)
    assert diff == [], f"models and migrations disagree: {diff}"


def test_postgres_schema_matches_models(engine: Engine) -> None:
    assert_models_match_schema(engine)
    tables = set(inspect(engine).get_table_names())
    assert {"images", "faces", "jobs", "job_items", "searches", "search_matches"} <= tables


def test_default_gallery_exists_and_sequence_moves_on(engine: Engine) -> None:
    with engine.connect() as conn:
        assert conn.execute(text("SELECT name FROM galleries WHERE id = 1")).scalar() == "default"
        new_id = conn.execute(
            text("INSERT INTO galleries (name) VALUES ('x') RETURNING id")
        ).scalar()
        conn.rollback()
    # Past the default gallery's explicit id (other tests' rolled-back galleries also
    # advanced the sequence: a rollback does not give sequence values back).
    assert new_id is not None
    assert new_id > 1


def test_sqlite_upgrade_downgrade_upgrade(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    migrate(url)
    engine = make_engine(url)
    assert_models_match_schema(engine)
    with engine.begin() as connection:
        config = alembic_config()
        config.attributes["connection"] = connection  # type: ignore[attr-defined]
        config.attributes["configure_logger"] = False  # type: ignore[attr-defined]
        command.downgrade(config, "base")  # type: ignore[arg-type]
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()
    migrate(url)


def test_postgres_downgrade_to_base_and_back() -> None:
    url = create_database()
    try:
        migrate(url)
        engine = make_engine(url)
        with engine.begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection  # type: ignore[attr-defined]
            config.attributes["configure_logger"] = False  # type: ignore[attr-defined]
            command.downgrade(config, "base")  # type: ignore[arg-type]
        assert set(inspect(engine).get_table_names()) == {"alembic_version"}
        engine.dispose()
        migrate(url)
    finally:
        drop_database(url)
