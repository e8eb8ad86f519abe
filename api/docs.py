"""The interactive API docs (Swagger UI at ``/docs``), with its assets served from the
``swagger-ui-bundle`` package instead of a CDN, so the page works on an offline network."""

from __future__ import annotations

from apiflask import APIBlueprint, APIFlask
from flask import Response, send_from_directory
from swagger_ui_bundle import swagger_ui_path

from api.auth import public

bp = APIBlueprint("docs_assets", __name__, enable_openapi=False)
ASSETS = ("swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "swagger-ui.css")


@bp.get("/docs/assets/<path:name>")
@public
def asset(name: str) -> Response:
    return send_from_directory(str(swagger_ui_path), name, max_age=86_400)


def use_local_assets(app: APIFlask) -> None:
    app.config.update(
        SWAGGER_UI_BUNDLE_JS="/docs/assets/swagger-ui-bundle.js",
        SWAGGER_UI_STANDALONE_PRESET_JS="/docs/assets/swagger-ui-standalone-preset.js",
        SWAGGER_UI_CSS="/docs/assets/swagger-ui.css",
    )
    app.register_blueprint(bp)
