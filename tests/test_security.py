"""Hardening: trusted hosts, security headers on every answer, a docs page without inline
script, CORS only for configured origins, archives by object key only from the gallery's
own import prefix."""

from __future__ import annotations

import io
import uuid
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from api.auth import public
from api.security import CONTENT_SECURITY_POLICY
from core.settings import Settings
from core.storage import open_store
from services.galleries import create_gallery
from tests.conftest import make_client, make_key
from tests.test_archives import jpeg, make_tar

ORIGIN = "https://app.example.org"


def error_of(response: Any) -> dict[str, Any]:
    body = response.get_json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"status", "code", "message", "details"}, body
    return body["error"]


def assert_hardened(response: Any) -> None:
    headers = response.headers
    assert headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["X-Frame-Options"] == "DENY"


def with_changes(settings: Settings, **changes: Any) -> Settings:
    return settings.model_copy(update=changes)


# --- trusted hosts -----------------------------------------------------------------------


def test_a_request_for_another_host_is_a_json_400(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    client = make_client(
        with_changes(settings, trusted_hosts="api.example.org, .internal.example"), sessions
    )
    for url in ("http://evil.example/healthz", "http://evil.example/v1/webhooks"):
        response = client.get(url)
        assert response.status_code == 400, url
        error = error_of(response)
        assert error["code"] == "bad_request"
        assert "evil.example" in error["message"]
        assert_hardened(response)
    assert client.get("http://api.example.org/healthz").status_code == 200
    assert client.get("http://api.example.org/v1/webhooks").status_code == 200
    assert client.get("http://a.internal.example/healthz").status_code == 200


def test_any_host_is_answered_when_none_is_configured(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    client = make_client(settings, sessions)
    assert client.get("http://whatever.example/healthz").status_code == 200


# --- security headers --------------------------------------------------------------------


def test_every_answer_carries_the_security_headers(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    client = make_client(settings, sessions)

    @public
    def broken() -> str:
        raise RuntimeError("a bug")

    client.application.add_url_rule("/test-broken", view_func=broken)
    answers = {
        200: client.get("/healthz"),
        404: client.get("/no/such/page"),
        405: client.put("/v1/images"),
        422: client.post("/v1/webhooks", json={"url": 5}),
        500: client.get("/test-broken"),
    }
    answers[401] = client.get("/v1/webhooks", headers={"Authorization": ""})
    for status, response in answers.items():
        assert response.status_code == status
        assert_hardened(response)
    for page in ("/", "/docs", "/static/app.js", "/openapi.json"):
        with client.get(page) as answer:
            assert answer.status_code == 200, page
            assert_hardened(answer)


def test_the_policy_allows_no_inline_script() -> None:
    directives = dict(
        part.strip().split(" ", 1) for part in CONTENT_SECURITY_POLICY.split(";") if part.strip()
    )
    assert directives["script-src"] == "'self'"
    assert "unsafe" not in CONTENT_SECURITY_POLICY  # neither 'unsafe-inline' nor 'unsafe-eval'
    assert directives["default-src"] == "'self'"
    assert directives["object-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["base-uri"] == "'none'"
    assert "blob:" in directives["img-src"]  # the web page shows photos as blob: URLs


class Scripts(HTMLParser):
    """Every <script>'s attributes and body, and whether any tag has an inline handler or a
    style attribute (which the policy would refuse)."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self.inline_attributes: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.inline_attributes += [n for n, _ in attrs if n.startswith("on") or n == "style"]
        if tag == "script":
            self.scripts.append((dict(attrs), ""))
            self._in_script = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            attrs, body = self.scripts[-1]
            self.scripts[-1] = (attrs, body + data)


def scripts_of(html: str) -> Scripts:
    parser = Scripts()
    parser.feed(html)
    return parser


def test_the_docs_page_has_no_inline_script(client: FlaskClient) -> None:
    response = client.get("/docs")
    assert response.status_code == 200
    page = scripts_of(response.get_data(as_text=True))
    assert page.scripts, "the docs page loads Swagger UI"
    for attrs, body in page.scripts:
        assert attrs.get("src"), attrs
        assert not body.strip(), body
    assert page.inline_attributes == []
    sources = [attrs["src"] for attrs, _ in page.scripts]
    assert sources[-1] == "/static/docs.js"
    for src in sources:  # every script is served by the API itself, from its own origin
        assert src
        assert src.startswith("/"), src
        with client.get(src) as asset:
            assert asset.status_code == 200, src
    assert 'data-spec-url="/openapi.json"' in response.get_data(as_text=True)


def test_the_web_page_has_no_inline_script(client: FlaskClient) -> None:
    with client.get("/") as response:
        page = scripts_of(response.get_data(as_text=True))
    assert page.scripts
    assert all(attrs.get("src") and not body.strip() for attrs, body in page.scripts)
    assert page.inline_attributes == []
    static = Path(__file__).parents[1] / "api" / "static"
    for name in ("app.js", "docs.js"):
        source = (static / name).read_text()
        assert "eval(" not in source
        assert "new Function" not in source
        assert "innerHTML" not in source


# --- CORS --------------------------------------------------------------------------------


def preflight(client: FlaskClient, origin: str) -> Any:
    return client.options(
        "/v1/webhooks",
        headers={
            "Authorization": "",
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )


def test_no_cors_headers_unless_configured(client: FlaskClient) -> None:
    response = client.get("/v1/webhooks", headers={"Origin": ORIGIN})
    assert response.status_code == 200
    assert not any(h.lower().startswith("access-control-") for h, _ in response.headers)
    response = preflight(client, ORIGIN)
    assert "Access-Control-Allow-Origin" not in response.headers


def test_cors_for_the_configured_origins_only(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    client = make_client(
        with_changes(settings, cors_origins=f"{ORIGIN}, https://other.example.org"), sessions
    )
    response = preflight(client, ORIGIN)
    assert response.status_code == 200  # answered without a key
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    allowed = response.headers["Access-Control-Allow-Headers"].lower()
    assert "authorization" in allowed
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    assert "Access-Control-Allow-Credentials" not in response.headers
    assert_hardened(response)

    response = client.get("/v1/webhooks", headers={"Origin": ORIGIN})
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "Retry-After" in response.headers["Access-Control-Expose-Headers"]
    # An error answer can be read by the page too.
    response = client.get("/v1/webhooks/nope", headers={"Origin": ORIGIN})
    assert response.status_code == 404
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN

    for stranger in ("https://evil.example", "https://app.example.org.evil.example"):
        response = client.get("/v1/webhooks", headers={"Origin": stranger})
        assert "Access-Control-Allow-Origin" not in response.headers
        response = preflight(client, stranger)
        assert "Access-Control-Allow-Origin" not in response.headers
    # A plain OPTIONS (not a preflight) still needs a key.
    assert client.options("/v1/webhooks", headers={"Authorization": ""}).status_code == 401


# --- archives named by object key --------------------------------------------------------


def put_archive(settings: Settings, key: str) -> None:
    open_store(settings.storage_url).put(key, make_tar([("a/a_0001.jpg", jpeg(1))]))


def test_object_key_only_from_the_gallerys_import_prefix(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    client = make_client(settings, sessions)
    name = f"g-{uuid.uuid4().hex[:8]}"
    with sessions() as session:
        other = create_gallery(session, name)
        session.commit()
        other_id = other.id
    other_client = make_client(settings, sessions, key=make_key(sessions, gallery_id=other_id))
    for key in ("imports/default/faces.tgz", f"imports/{name}/faces.tgz", "archives/x.tgz"):
        put_archive(settings, key)

    response = client.post("/v1/archives", json={"object_key": "imports/default/faces.tgz"})
    assert response.status_code == 202, response.get_json()

    for key in (
        f"imports/{name}/faces.tgz",  # another gallery's import
        "archives/x.tgz",  # somebody's upload
        "imports/default",  # the prefix itself is not a key under it
        "imports/defaultx/faces.tgz",
    ):
        response = client.post("/v1/archives", json={"object_key": key})
        assert response.status_code == 403, key
        error = error_of(response)
        assert error["code"] == "outside_import_prefix"
        assert "'imports/default/'" in error["message"]
        assert error["details"] == {"allowed_prefix": "imports/default/"}

    response = other_client.post("/v1/archives", json={"object_key": f"imports/{name}/faces.tgz"})
    assert response.status_code == 202, response.get_json()
    response = other_client.post("/v1/archives", json={"object_key": "imports/default/faces.tgz"})
    assert response.status_code == 403
    assert f"imports/{name}/" in error_of(response)["message"]

    # A key that climbs out of the prefix is not a valid key at all.
    response = client.post("/v1/archives", json={"object_key": "imports/default/../../x.tgz"})
    assert response.status_code == 422
    # Inside the prefix, a missing object is still a 404.
    response = client.post("/v1/archives", json={"object_key": "imports/default/none.tgz"})
    assert response.status_code == 404


def test_uploads_are_unaffected_by_the_prefix(client: FlaskClient) -> None:
    response = client.post(
        "/v1/archives",
        data={"file": (io.BytesIO(make_tar([("a/a_0001.jpg", jpeg(2))])), "x.tgz")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 202, response.get_json()
    response = client.post("/v1/archives", data=b"not json", content_type="application/json")
    assert response.status_code == 400
