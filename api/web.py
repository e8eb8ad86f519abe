"""The web page at ``/``: search with a photo, add photos, upload an archive, browse the
gallery. Plain HTML, CSS and a JavaScript module over the public API: no build step. Its
assets are the app's static folder (``api/static``, served by Flask at ``/static/``)."""

from __future__ import annotations

from pathlib import Path

from apiflask import APIBlueprint
from flask import Response, send_from_directory

from api.auth import public

STATIC = Path(__file__).parent / "static"

bp = APIBlueprint("web", __name__, enable_openapi=False)


@bp.get("/")
@public
def index() -> Response:
    response = send_from_directory(STATIC, "index.html")
    response.cache_control.no_cache = True  # pick up a new release at once
    return response
