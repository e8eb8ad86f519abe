"""API keys and galleries: made, used, listed and revoked, by the API and by the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from api import create_app
from cli.main import cli
from core.settings import Settings, get_settings
from models import DEFAULT_GALLERY_ID, ApiKey, Gallery, Scope, utcnow
from services.keys import KEY_PATTERN
from tests.conftest import make_client, make_key


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# --- by the API -------------------------------------------------------------------------


def test_a_key_is_shown_once_stored_hashed_and_revoked_at_once(
    client: FlaskClient, session: Session
) -> None:
    made = client.post("/v1/keys", json={"scope": "write", "name": "uploader"})
    assert made.status_code == 201, made.get_json()
    body = made.get_json()
    key = body["key"]
    assert KEY_PATTERN.match(key)
    assert body["prefix"] == key[: len("fsk_") + 8]
    assert (body["scope"], body["gallery"], body["name"]) == ("write", "default", "uploader")

    # Only a hash is stored: the key is in no column of its row.
    row = session.scalars(select(ApiKey).where(ApiKey.id == body["id"])).one()
    assert key not in {str(v) for v in row.__dict__.values()}
    assert row.key_hash != key
    assert len(row.key_hash) == 64

    # It works, and is never shown again.
    assert client.get("/v1/images", headers=bearer(key)).status_code == 200
    listed = client.get("/v1/keys").get_json()["keys"]
    mine = [k for k in listed if k["id"] == body["id"]]
    assert len(mine) == 1
    assert "key" not in mine[0]
    assert key not in client.get("/v1/keys").get_data(as_text=True)
    assert mine[0]["last_used_at"] is not None

    assert client.delete(f"/v1/keys/{body['prefix']}").status_code == 204
    refused = client.get("/v1/images", headers=bearer(key))
    assert refused.status_code == 401
    assert refused.get_json()["error"]["code"] == "invalid_key"
    assert client.delete(f"/v1/keys/{body['prefix']}").status_code == 204  # twice is fine
    revoked = [k for k in client.get("/v1/keys").get_json()["keys"] if k["id"] == body["id"]]
    assert revoked[0]["revoked_at"] is not None


def test_any_key_reads_itself(settings: Settings, sessions: sessionmaker[Session]) -> None:
    key = make_key(sessions, scope=Scope.SEARCH)
    me = make_client(settings, sessions, key=key).get("/v1/keys/self")
    assert me.status_code == 200
    body = me.get_json()
    assert (body["prefix"], body["scope"], body["gallery"]) == (key[:12], "search", "default")
    assert "key" not in body


def test_scopes_nest_and_a_bound_admin_cannot_reach_further(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    search_key = make_key(sessions, scope=Scope.SEARCH)
    client = make_client(settings, sessions, key=search_key)
    assert client.get("/v1/images").status_code == 200
    assert client.post("/v1/keys", json={"scope": "search"}).status_code == 403
    assert client.delete("/v1/images/1").status_code == 403
    forbidden = client.post("/v1/images", data={}, content_type="multipart/form-data")
    assert forbidden.status_code == 403
    assert forbidden.get_json()["error"]["code"] == "insufficient_scope"
    assert 'scope="write"' in forbidden.headers["WWW-Authenticate"]

    bound_admin = make_client(settings, sessions)  # admin of the default gallery only
    every = bound_admin.post("/v1/keys", json={"scope": "admin", "all_galleries": True})
    assert every.status_code == 403
    assert bound_admin.post("/v1/galleries", json={"name": "mine"}).status_code == 403
    assert bound_admin.get("/metrics").status_code == 403


def test_galleries_are_made_listed_and_keep_their_keys_apart(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    root = make_client(settings, sessions, key=make_key(sessions, gallery_id=None))
    made = root.post("/v1/galleries", json={"name": "team-b"})
    assert made.status_code == 201, made.get_json()
    gallery = made.get_json()
    assert made.headers["Location"] == f"/v1/galleries/{gallery['id']}"
    assert root.post("/v1/galleries", json={"name": "team-b"}).status_code == 409
    bad_name = root.post("/v1/galleries", json={"name": "no spaces/here"})
    assert bad_name.status_code == 422
    names = {g["name"] for g in root.get("/v1/galleries").get_json()["galleries"]}
    assert {"default", "team-b"} <= names

    key_b = root.post("/v1/keys", json={"scope": "admin", "gallery": "team-b"}).get_json()
    assert key_b["gallery"] == "team-b"
    client_b = make_client(settings, sessions, key=key_b["key"])
    only_b = client_b.get("/v1/galleries").get_json()["galleries"]
    assert [g["name"] for g in only_b] == ["team-b"]
    assert client_b.get(f"/v1/galleries/{DEFAULT_GALLERY_ID}").status_code == 404
    # Gallery B's admin lists and revokes only B's keys.
    prefixes = {k["prefix"] for k in client_b.get("/v1/keys").get_json()["keys"]}
    assert prefixes == {key_b["prefix"]}
    default_key = make_key(sessions)
    assert client_b.delete(f"/v1/keys/{default_key[:12]}").status_code == 404
    assert root.get("/v1/images", headers=bearer(default_key)).status_code == 200


def test_a_key_of_a_gallery_being_erased_stops_working(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    root = make_client(settings, sessions, key=make_key(sessions, gallery_id=None))
    gallery_id = root.post("/v1/galleries", json={"name": "leaving"}).get_json()["id"]
    key = root.post("/v1/keys", json={"scope": "write", "gallery": "leaving"}).get_json()["key"]
    assert root.get("/v1/images", headers=bearer(key)).status_code == 200
    with sessions() as session:
        session.get_one(Gallery, gallery_id).erasing_since = utcnow()
        session.commit()
    assert root.get("/v1/images", headers=bearer(key)).status_code == 401
    assert root.get(f"/v1/galleries/{gallery_id}").status_code == 404


def test_metrics_take_the_metrics_token_or_an_admin_key_for_every_gallery(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    settings = settings.model_copy(update={"metrics_token": "scrape-token-123"})
    client = make_client(settings, sessions, key=make_key(sessions, gallery_id=None))
    assert client.get("/metrics").status_code == 200
    assert client.get("/metrics", headers=bearer("scrape-token-123")).status_code == 200
    assert client.get("/metrics", headers=bearer("scrape-token-124")).status_code == 401
    anonymous = create_app(settings).test_client()
    assert anonymous.get("/metrics").status_code == 401


def test_last_used_is_recorded_at_most_once_a_minute(
    client: FlaskClient, sessions: sessionmaker[Session], session: Session
) -> None:
    key = make_key(sessions)
    for _ in range(3):
        assert client.get("/v1/labels", headers=bearer(key)).status_code == 200
    row = session.scalars(select(ApiKey).where(ApiKey.prefix == key[4:12])).one()
    first = row.last_used_at
    assert first is not None
    session.execute(text("SELECT 1"))
    client.get("/v1/labels", headers=bearer(key))
    session.refresh(row)
    assert row.last_used_at == first


# --- by the command line ----------------------------------------------------------------


@pytest.fixture
def env(cli_env: Path) -> Path:
    """``cli_env``, migrated."""
    result = CliRunner().invoke(cli, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    return cli_env


def test_keys_from_the_command_line(env: Path) -> None:
    runner = CliRunner()
    made = runner.invoke(cli, ["keys", "create", "--gallery", "lab", "--scope", "write"])
    assert made.exit_code == 0, made.output
    lines = made.output.strip().splitlines()
    key = lines[-1]  # scripts rely on the key being alone on the last line
    assert KEY_PATTERN.match(key), made.output
    assert "gallery 'lab' created" in made.output

    app = create_app(get_settings())
    client = app.test_client()
    assert client.get("/v1/images", headers=bearer(key)).status_code == 200
    assert client.post("/v1/keys", json={"scope": "search"}, headers=bearer(key)).status_code == 403

    listed = runner.invoke(cli, ["keys", "list"])
    assert listed.exit_code == 0, listed.output
    assert key[:12] in listed.output
    assert key not in listed.output
    assert "lab" in listed.output
    assert "active" in listed.output

    revoked = runner.invoke(cli, ["keys", "revoke", key[:12]])
    assert revoked.exit_code == 0, revoked.output
    assert client.get("/v1/images", headers=bearer(key)).status_code == 401
    assert "revoked" in runner.invoke(cli, ["keys", "list"]).output

    unknown = runner.invoke(cli, ["keys", "revoke", "fsk_00000000"])
    assert unknown.exit_code != 0
    assert "no key" in unknown.output
    both = runner.invoke(cli, ["keys", "create", "--all-galleries", "--scope", "search"])
    assert both.exit_code != 0
    assert "admin scope" in both.output
    every = runner.invoke(cli, ["keys", "create", "--all-galleries", "--scope", "admin"])
    assert every.exit_code == 0
    assert "every gallery" in every.output
    app.extensions["facesearch"].close()


def test_a_prefix_already_taken_is_drawn_again(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    from models import Gallery
    from services import keys

    gallery = session.get_one(Gallery, DEFAULT_GALLERY_ID)
    first, _ = keys.create_key(session, scope=Scope.SEARCH, gallery=gallery)
    drawn = iter([("fsk_" + first.prefix + "_" + "A" * 43, first.prefix), keys.new_key()])
    monkeypatch.setattr(keys, "new_key", lambda: next(drawn))
    second, key = keys.create_key(session, scope=Scope.SEARCH, gallery=gallery)
    assert second.prefix != first.prefix
    assert key.startswith(f"fsk_{second.prefix}_")
    assert keys.authenticate(session, key) is second
