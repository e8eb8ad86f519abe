"""Migrations make the schema, and the models agree with it (no drift)."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect, text

import models
from cli.main import run_migrations
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
    run_migrations(url, "downgrade", "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()
    migrate(url)


def test_postgres_downgrade_to_base_and_back() -> None:
    url = create_database()
    try:
        migrate(url)
        engine = make_engine(url)
        run_migrations(url, "downgrade", "base")
        assert set(inspect(engine).get_table_names()) == {"alembic_version"}
        engine.dispose()
        migrate(url)
    finally:
        drop_database(url)


def test_a_deployment_from_before_keys_keeps_its_data_in_the_default_gallery(
    tmp_path: Path,
) -> None:
    """Rows made before galleries had keys move into `default`; after `db upgrade` and one
    new key, the old image, job and webhook are all reachable, and the default gallery's."""
    from api import create_app
    from core.settings import Settings
    from models import DEFAULT_GALLERY_ID, Gallery, Scope
    from models.db import make_session_factory
    from services.keys import create_key

    url = create_database()
    try:
        run_migrations(url, "upgrade", "0003")
        engine = make_engine(url)
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO jobs (id, kind, status, total, done, failed, skipped, result,"
                    " params, updated_at) VALUES ('00000000-0000-4000-8000-00000000000a', 'ingest',"
                    " 'succeeded', 1, 1, 0, 0, '{}', '{}', now())"
                )
            )
            image_id = conn.execute(
                text(
                    "INSERT INTO images (gallery_id, sha256, object_key, content_type,"
                    " size_bytes, width, height, label, status, updated_at) VALUES (1,"
                    " repeat('a', 64), 'objects/x', 'image/jpeg', 1, 20, 20, 'Old Timer',"
                    " 'ready', now()) RETURNING id"
                )
            ).scalar_one()
            conn.execute(
                text(
                    "INSERT INTO webhook_subscriptions (id, url, events, secret, active)"
                    " VALUES ('00000000-0000-4000-8000-00000000000b', 'http://x/',"
                    " '[\"job.completed\"]', 's', true)"
                )
            )
        engine.dispose()
        migrate(url)  # `facesearch db upgrade`

        engine = make_engine(url)
        with engine.connect() as conn:
            for table in ("jobs", "webhook_subscriptions"):
                galleries = conn.execute(text(f"SELECT DISTINCT gallery_id FROM {table}")).all()
                assert galleries == [(DEFAULT_GALLERY_ID,)], table
        sessions = make_session_factory(engine)
        with sessions() as session:
            _, key = create_key(
                session, scope=Scope.ADMIN, gallery=session.get(Gallery, DEFAULT_GALLERY_ID)
            )
            session.commit()
        app = create_app(Settings(app_env="test", data_dir=tmp_path, database_url=url))
        client = app.test_client()
        auth = {"Authorization": f"Bearer {key}"}
        assert client.get(f"/v1/images/{image_id}", headers=auth).get_json()["label"] == "Old Timer"
        job = client.get("/v1/jobs/00000000-0000-4000-8000-00000000000a", headers=auth)
        assert job.status_code == 200
        hooks = client.get("/v1/webhooks", headers=auth).get_json()["webhooks"]
        assert [h["id"] for h in hooks] == ["00000000-0000-4000-8000-00000000000b"]
        assert client.get(f"/v1/images/{image_id}").status_code == 401
        from api.context import EXTENSION

        app.extensions[EXTENSION].close()
        engine.dispose()
    finally:
        drop_database(url)


def test_face_labels_backfill_gives_an_image_label_to_its_most_prominent_face() -> None:
    """0008: a labelled image's label goes to its most prominent face (nearest the centre of
    those at least half as large as the largest); its other faces, and unlabelled images'
    faces, stay unlabelled."""
    url = create_database()
    try:
        run_migrations(url, "upgrade", "0007")
        engine = make_engine(url)
        insert_image = text(
            "INSERT INTO images (gallery_id, sha256, object_key, content_type, size_bytes,"
            " width, height, label, status, updated_at) VALUES (1, :sha, 'objects/x',"
            " 'image/jpeg', 1, 200, 200, :label, 'ready', now()) RETURNING id"
        )
        insert_face = text(
            "INSERT INTO faces (image_id, face_index, model_name, dim, embedding, box_x, box_y,"
            " box_w, box_h, confidence, landmarks) VALUES (:image, :index, :model, 2,"
            " '\\x0000000000000000', :x, :y, :w, :h, 0.99, '{}') RETURNING id"
        )
        with engine.begin() as conn:

            def face(image: int, index: int, box: tuple[int, int, int, int], model: str) -> int:
                x, y, w, h = box
                values = {"image": image, "index": index, "model": model}
                found = conn.execute(insert_face, values | {"x": x, "y": y, "w": w, "h": h})
                return int(found.scalar_one())

            group = conn.execute(insert_image, {"sha": "a" * 64, "label": "Ada"}).scalar_one()
            small_centred = face(group, 0, (80, 80, 40, 40), "m1")
            large = face(group, 1, (0, 0, 60, 60), "m1")
            # Same area, one nearer the centre: that one; and another model's rows of the
            # same image get the label too (each model's index answers the same person).
            far = face(group, 0, (140, 140, 50, 50), "m2")
            near = face(group, 1, (60, 70, 50, 50), "m2")
            plain = conn.execute(insert_image, {"sha": "b" * 64, "label": None}).scalar_one()
            unlabelled = face(plain, 0, (0, 0, 100, 100), "m1")
            conn.execute(insert_image, {"sha": "c" * 64, "label": "Faceless"})
        migrate(url)
        with engine.connect() as conn:
            labels = dict(conn.execute(text("SELECT id, label FROM faces")).all())
        assert labels == {
            small_centred: None,
            large: "Ada",
            far: None,
            near: "Ada",
            unlabelled: None,
        }
        run_migrations(url, "downgrade", "0007")
        migrate(url)
        engine.dispose()
    finally:
        drop_database(url)


def test_served_versions_records_the_model_of_the_faces_stored_before() -> None:
    """0009: every face stored before it was embedded with its model's original recipe, named
    by the model alone; that version is recorded as the one searches are served from."""
    url = create_database()
    try:
        run_migrations(url, "upgrade", "0008")
        engine = make_engine(url)
        with engine.begin() as conn:
            image = conn.execute(
                text(
                    "INSERT INTO images (gallery_id, sha256, object_key, content_type,"
                    " size_bytes, width, height, status, updated_at) VALUES (1, :sha,"
                    " 'objects/x', 'image/jpeg', 1, 200, 200, 'ready', now()) RETURNING id"
                ),
                {"sha": "a" * 64},
            ).scalar_one()
            for index, model in enumerate(("model-a", "model-a", "model-b")):
                conn.execute(
                    text(
                        "INSERT INTO faces (image_id, face_index, model_name, dim, embedding,"
                        " box_x, box_y, box_w, box_h, confidence, landmarks) VALUES (:image,"
                        " :index, :model, 2, '\\x0000000000000000', 0, 0, 9, 9, 0.99, '{}')"
                    ),
                    {"image": image, "index": index, "model": model},
                )
        migrate(url)
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT model_name, version FROM served_versions")).all()
        served = {str(model): str(version) for model, version in rows}
        assert served == {"model-a": "model-a", "model-b": "model-b"}
        run_migrations(url, "downgrade", "0008")
        with engine.connect() as conn:
            assert "served_versions" not in inspect(conn).get_table_names()
        engine.dispose()
    finally:
        drop_database(url)
