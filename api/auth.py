"""Who is calling, and what they may do: API keys, scopes and the request's gallery.

Every route requires a key unless it is marked :func:`public`; a route that says nothing
requires the **admin** scope, so a route added later without thought is closed, not open
(``tests/test_route_table.py`` calls every route of the app to prove it). Routes state what
they need with :func:`requires`.

A key bound to a gallery acts in that gallery. An admin key for every gallery acts in the
gallery named by the ``Facesearch-Gallery`` header, or in ``default``. A resource of another
gallery is answered 404, exactly as one that does not exist.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from apiflask import APIFlask
from flask import current_app, g, request

from api.context import db, services
from api.errors import ApiError
from models import DEFAULT_GALLERY_NAME, Scope
from models.db import session_scope
from services.galleries import find_gallery
from services.keys import authenticate

F = TypeVar("F", bound=Callable[..., Any])

GALLERY_HEADER = "Facesearch-Gallery"
SECURITY_SCHEME = "ApiKey"
_SCOPE_ATTR = "_facesearch_scope"
_PUBLIC = "public"
# Endpoints Flask and APIFlask add themselves: the spec, the docs page and static files.
PUBLIC_ENDPOINTS = frozenset(
    {"static", "openapi.spec", "openapi.docs", "openapi.swagger_ui_oauth_redirect"}
)
METRICS_ENDPOINT = "metrics.metrics"
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="facesearch"'}


@dataclass(frozen=True)
class Principal:
    """The key a request was made with."""

    key_id: str
    prefix: str
    scope: Scope
    gallery_id: int | None  # None: every gallery (an admin key)

    @property
    def all_galleries(self) -> bool:
        return self.gallery_id is None


def requires(scope: Scope) -> Callable[[F], F]:
    """Mark a view as needing at least ``scope``. Put it right above the ``def``."""

    def mark(view: F) -> F:
        setattr(view, _SCOPE_ATTR, scope)
        return view

    return mark


def public(view: F) -> F:
    """Mark a view as open to anyone (health probes, the web page's shell)."""
    setattr(view, _SCOPE_ATTR, _PUBLIC)
    return view


def required_scope(app: APIFlask, endpoint: str) -> Scope | None:
    """What an endpoint needs: a scope, or None when it is public."""
    if endpoint in PUBLIC_ENDPOINTS:
        return None
    marked = getattr(app.view_functions[endpoint], _SCOPE_ATTR, Scope.ADMIN)
    return None if marked == _PUBLIC else Scope(marked)


def principal() -> Principal:
    """The caller (only inside a protected route)."""
    found: Principal | None = g.get("principal")
    if found is None:  # a route marked public asked who is calling: a bug, not a 401
        raise RuntimeError("principal() called outside a protected route")
    return found


def gallery_id() -> int:
    """The gallery this request acts in (see the module's docstring); 404 if it is gone."""
    cached: int | None = g.get("gallery_id")
    if cached is not None:
        return cached
    caller = principal()
    if caller.gallery_id is not None:
        g.gallery_id = caller.gallery_id
        return caller.gallery_id
    name = request.headers.get(GALLERY_HEADER, "").strip() or DEFAULT_GALLERY_NAME
    gallery = find_gallery(db(), name)
    if gallery is None:
        raise ApiError(404, f"there is no gallery {name!r}", code="no_such_gallery")
    g.gallery_id = gallery.id
    return gallery.id


def _bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _check_request() -> None:
    endpoint = request.endpoint
    if endpoint is None:
        return  # no route matched: the 404 or 405 reveals nothing either way
    needed = required_scope(current_app, endpoint)  # type: ignore[arg-type]
    if needed is None:
        return
    token = _bearer_token()
    if token is None:
        raise ApiError(
            401,
            "this route needs an API key: send 'Authorization: Bearer <key>'",
            code="unauthorized",
            headers=CHALLENGE,
        )
    metrics_token = services().settings.metrics_token
    if (
        endpoint == METRICS_ENDPOINT
        and metrics_token
        and hmac.compare_digest(token.encode(), metrics_token.encode())
    ):
        return
    # A unit of work of its own, committed (last_used_at, at most once a minute) and closed
    # before the route runs: the route's transaction starts clean, after the check.
    with session_scope(services().sessions) as session:
        key = authenticate(session, token)
        caller = Principal(key.id, key.prefix, key.scope, key.gallery_id) if key else None
    if caller is None:
        raise ApiError(
            401,
            "the API key is not valid: unknown, revoked, or its gallery was erased",
            code="invalid_key",
            headers={"WWW-Authenticate": 'Bearer realm="facesearch", error="invalid_token"'},
        )
    if not caller.scope.allows(needed):
        raise ApiError(
            403,
            f"this key has the {caller.scope} scope; this route needs {needed}",
            code="insufficient_scope",
            headers={
                "WWW-Authenticate": f'Bearer realm="facesearch", error="insufficient_scope", '
                f'scope="{needed}"'
            },
        )
    g.principal = caller


def install(app: APIFlask) -> None:
    app.before_request(_check_request)
