"""Every route of the app, called with every kind of wrong key: the route table is the test.

The cases come from ``app.url_map``, so a route added later is called too: without a scope
it needs an admin key (api/auth.py), and a route made public without being listed here fails
``test_the_public_routes_are_exactly_these``. A route with a path parameter this file has no
value for fails ``test_every_route_is_in_the_matrix`` until one is added below.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.routing import Rule

from api import create_app
from api.auth import required_scope
from api.context import EXTENSION
from core.settings import Settings
from models import (
    DEFAULT_GALLERY_ID,
    EventType,
    Gallery,
    Scope,
    WebhookDelivery,
    WebhookEvent,
)
from services.galleries import create_gallery
from services.keys import find_key, revoke_key
from tests.conftest import face_row, make_key
from tests.test_api import jpeg

PUBLIC = {
    "static",
    "openapi.spec",
    "openapi.docs",
    "openapi.swagger_ui_oauth_redirect",
    "docs_assets.asset",
    "health.healthz",
    "health.readyz",
    "web.index",
}
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


@dataclass(frozen=True)
class Keys:
    admin: str  # admin of gallery A (the default gallery), where every resource below lives
    write: str
    search: str
    revoked: str
    other_gallery: str  # admin of gallery B
    every_gallery: str  # admin of every gallery
    spare: str  # a key of gallery A for the revocation route to revoke


@dataclass(frozen=True)
class World:
    client: FlaskClient
    keys: Keys
    values: dict[str, str]  # a path parameter -> an existing resource of gallery A
    missing: dict[str, str]  # a path parameter -> a resource that exists nowhere


@pytest.fixture
def world(settings: Settings, sessions: sessionmaker[Session]) -> Iterator[World]:
    settings = settings.model_copy(update={"webhook_allowed_hosts": "127.0.0.1"})
    app = create_app(settings)
    app.extensions[EXTENSION].sessions = sessions
    app.testing = True
    with sessions() as session:
        other = create_gallery(session, "gallery-b")
        session.commit()
        other_id = other.id
    keys = Keys(
        admin=make_key(sessions),
        write=make_key(sessions, scope=Scope.WRITE),
        search=make_key(sessions, scope=Scope.SEARCH),
        revoked=make_key(sessions),
        other_gallery=make_key(sessions, gallery_id=other_id),
        every_gallery=make_key(sessions, gallery_id=None),
        spare=make_key(sessions, scope=Scope.SEARCH),
    )
    with sessions() as session:
        row = find_key(session, keys.revoked)
        assert row is not None
        revoke_key(row)
        session.commit()
    client = app.test_client()
    auth = {"Authorization": f"Bearer {keys.admin}"}

    upload = client.post(
        "/v1/images",
        data={"file": [(io.BytesIO(jpeg(1)), "a.jpg")], "label": "Ada Lovelace"},
        content_type="multipart/form-data",
        headers=auth,
    )
    assert upload.status_code == 202, upload.get_json()
    job_id = upload.get_json()["job_id"]
    image_id = client.get(f"/v1/jobs/{job_id}", headers=auth).get_json()["items"][0]["image_id"]
    search = client.post(
        "/v1/searches",
        data={"file": (io.BytesIO(jpeg(2)), "q.jpg")},
        content_type="multipart/form-data",
        headers=auth,
    )
    assert search.status_code == 202, search.get_json()
    webhook = client.post(
        "/v1/webhooks",
        json={"url": "http://127.0.0.1:9/hook", "events": ["search.completed"]},
        headers=auth,
    )
    assert webhook.status_code == 201, webhook.get_json()
    webhook_id = webhook.get_json()["id"]
    with sessions() as session:
        event = WebhookEvent(type=EventType.SEARCH_COMPLETED, gallery_id=DEFAULT_GALLERY_ID)
        event.payload = {"id": None, "type": "search.completed", "data": {}}
        delivery = WebhookDelivery(event=event, subscription_id=webhook_id, url="http://x/")
        session.add_all([event, delivery])
        # What the worker would have written for the image: one face, given its label.
        face = face_row(image_id=image_id, model_name="m", embedding=bytes(8), label="Ada Lovelace")
        session.add(face)
        session.commit()
        delivery_id = delivery.id
        face_id = face.id
    values = {
        "image_id": str(image_id),
        "face_id": str(face_id),
        "job_id": job_id,
        "search_id": search.get_json()["search_id"],
        "webhook_id": webhook_id,
        "delivery_id": delivery_id,
        "gallery_id": str(DEFAULT_GALLERY_ID),
        "prefix": keys.spare[: len("fsk_") + 8],
        "label": "Ada Lovelace",
        "filename": "app.js",
        "name": "swagger-ui.css",
    }
    missing = values | {
        "image_id": "987654321",
        "face_id": "987654321",
        "job_id": "00000000-0000-4000-8000-000000000000",
        "search_id": "00000000-0000-4000-8000-000000000001",
        "webhook_id": "00000000-0000-4000-8000-000000000002",
        "delivery_id": "00000000-0000-4000-8000-000000000003",
        "gallery_id": "987654",
        "prefix": "fsk_00000000",
        "label": "Nobody At All",
    }
    yield World(client, keys, values, missing)
    app.extensions[EXTENSION].close()


def _operations(world: World) -> list[tuple[Rule, str]]:
    app = world.client.application
    return sorted(
        (
            (rule, method)
            for rule in app.url_map.iter_rules()
            for method in sorted(rule.methods or ())
            if method in METHODS
        ),
        key=lambda op: (op[0].rule, op[1]),
    )


def _url(rule: Rule, values: dict[str, str]) -> str:
    unknown = set(rule.arguments) - values.keys()
    assert not unknown, f"{rule.rule}: add a value for {sorted(unknown)} to this test's fixture"
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", lambda m: values[m.group(1)], rule.rule)


def _call(world: World, method: str, url: str, key: str | None) -> Any:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    response = world.client.open(url, method=method, headers=headers)
    response.get_data()  # read it all, then release files the route streamed from
    response.close()
    return response


def test_the_public_routes_are_exactly_these(world: World) -> None:
    app = world.client.application
    public = {
        r.endpoint for r in app.url_map.iter_rules() if required_scope(app, r.endpoint) is None
    }
    assert public == PUBLIC


def test_every_route_is_in_the_matrix(world: World) -> None:
    for rule, _ in _operations(world):
        _url(rule, world.values)  # fails naming the parameter a new route needs


def test_public_routes_answer_without_a_key(world: World) -> None:
    for rule, method in _operations(world):
        if rule.endpoint not in PUBLIC:
            continue
        response = _call(world, method, _url(rule, world.values), None)
        assert response.status_code not in (401, 403), rule.rule


def test_every_protected_route_refuses_every_wrong_key(world: World) -> None:
    """No key, a malformed key, an unknown key and a revoked key: 401 with a challenge."""
    unknown = "fsk_0badbeef_" + "A" * 43
    checked = 0
    for rule, method in _operations(world):
        if rule.endpoint in PUBLIC:
            continue
        url = _url(rule, world.values)
        for key in (None, "not-a-key", unknown, world.keys.revoked):
            response = _call(world, method, url, key)
            assert response.status_code == 401, (method, rule.rule, key, response.get_json())
            assert response.headers["WWW-Authenticate"].startswith("Bearer"), rule.rule
            assert response.get_json()["error"]["status"] == 401
            checked += 1
    assert checked >= 4 * 25  # the matrix really ran over the route table


def test_a_key_below_the_route_scope_gets_403_and_the_right_one_gets_through(
    world: World,
) -> None:
    app = world.client.application
    below = {Scope.WRITE: world.keys.search, Scope.ADMIN: world.keys.write}
    exact = {
        Scope.SEARCH: world.keys.search,
        Scope.WRITE: world.keys.write,
        Scope.ADMIN: world.keys.admin,
    }
    for rule, method in _operations(world):
        needed = required_scope(app, rule.endpoint)
        if needed is None:
            continue
        url = _url(rule, world.values)
        if needed in below:
            response = _call(world, method, url, below[needed])
            assert response.status_code == 403, (method, rule.rule, response.get_json())
        if rule.endpoint in {"galleries.erase", "metrics.metrics"}:
            continue  # these need an admin key for every gallery (their own tests)
        response = _call(world, method, url, exact[needed])
        assert response.status_code not in (401, 403), (method, rule.rule, response.get_json())


def test_another_gallery_cannot_tell_a_resource_exists(world: World) -> None:
    """With gallery B's admin key, gallery A's resource is answered exactly as a resource
    that does not exist: 404, or the same refusal for both."""
    compared = 0
    for rule, method in _operations(world):
        if rule.endpoint in PUBLIC or not rule.arguments:
            continue
        existing = _call(world, method, _url(rule, world.values), world.keys.other_gallery)
        absent = _call(world, method, _url(rule, world.missing), world.keys.other_gallery)
        assert existing.status_code in (403, 404), (method, rule.rule, existing.get_json())
        assert existing.status_code == absent.status_code, (method, rule.rule)
        assert existing.get_json()["error"]["code"] == absent.get_json()["error"]["code"]
        compared += 1
    assert compared >= 15


def test_listings_show_only_the_gallery_of_the_key(world: World) -> None:
    for path in ("/v1/images", "/v1/jobs", "/v1/labels", "/v1/webhooks", "/v1/keys"):
        mine = _call(world, "GET", path, world.keys.admin)
        theirs = _call(world, "GET", path, world.keys.other_gallery)
        assert mine.status_code == theirs.status_code == 200, path
        text = theirs.get_data(as_text=True)
        for value in (world.values["job_id"], world.values["webhook_id"], "Ada Lovelace"):
            assert value not in text, (path, value)
        assert any(v in mine.get_data(as_text=True) for v in world.values.values()), path


def test_an_admin_for_every_gallery_picks_one_by_header(
    world: World, sessions: sessionmaker[Session]
) -> None:
    key = world.keys.every_gallery
    image = world.values["image_id"]
    assert _call(world, "GET", f"/v1/images/{image}", key).status_code == 200  # default
    in_b = world.client.get(
        f"/v1/images/{image}",
        headers={"Authorization": f"Bearer {key}", "Facesearch-Gallery": "gallery-b"},
    )
    assert in_b.status_code == 404
    nowhere = world.client.get(
        "/v1/images", headers={"Authorization": f"Bearer {key}", "Facesearch-Gallery": "nope"}
    )
    assert nowhere.status_code == 404
    assert nowhere.get_json()["error"]["code"] == "no_such_gallery"
    # A bound key ignores the header: it cannot reach another gallery with it.
    with sessions() as session:
        assert session.get(Gallery, DEFAULT_GALLERY_ID) is not None
    bound = world.client.get(
        f"/v1/images/{image}",
        headers={
            "Authorization": f"Bearer {world.keys.other_gallery}",
            "Facesearch-Gallery": "default",
        },
    )
    assert bound.status_code == 404


def test_the_openapi_document_declares_the_scheme_on_every_operation(world: World) -> None:
    spec = world.client.get("/openapi.json").get_json()
    assert spec["components"]["securitySchemes"]["ApiKey"] == {
        "type": "http",
        "scheme": "bearer",
        "description": spec["components"]["securitySchemes"]["ApiKey"]["description"],
    }
    app = world.client.application
    protected = 0
    for rule, method in _operations(world):
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        operation = spec["paths"].get(path, {}).get(method.lower())
        if operation is None:
            continue  # routes left out of the document (the web page, static files)
        if required_scope(app, rule.endpoint) is None:
            assert operation["security"] == [], path
        else:
            assert operation["security"] == [{"ApiKey": []}], path
            for status in ("401", "403", "429", "503"):
                content = operation["responses"][status]["content"]["application/json"]
                assert content["schema"] == {"$ref": "#/components/schemas/ErrorOut"}, path
            assert "Retry-After" in operation["responses"]["429"]["headers"], path
            headers = {p["name"] for p in operation["parameters"] if p["in"] == "header"}
            assert "Facesearch-Gallery" in headers, path
            protected += 1
    assert protected >= 25
    creations = {
        (path, method)
        for path, operations in spec["paths"].items()
        for method, operation in operations.items()
        if any(p["name"] == "Idempotency-Key" for p in operation.get("parameters", []))
    }
    assert creations == {
        ("/v1/images", "post"),
        ("/v1/searches", "post"),
        ("/v1/archives", "post"),
    }


def test_the_openapi_document_is_valid(world: World) -> None:
    from openapi_spec_validator import validate

    validate(world.client.get("/openapi.json").get_json())
