"""Hardening of every answer: trusted hosts, security headers, CORS only where configured.

- **Trusted hosts** (``TRUSTED_HOSTS``): a request whose ``Host`` is not listed is answered
  400 in the API's error shape, before any route runs: a page on a rebound DNS name cannot
  talk to an API on a private address.
- **Headers on every answer**, errors included: a Content-Security-Policy that allows
  scripts only from this origin (no inline script, no ``eval``), ``nosniff``, no referrer,
  no framing.
- **The docs page** (``/docs``) is served from :data:`DOCS_PAGE`, whose only script is a
  file (``/static/docs.js``): Swagger UI works under that policy. It replaces APIFlask's own
  page, whose template has an inline script, and keeps its endpoint (``openapi.docs``).
- **CORS** (``CORS_ORIGINS``): none unless configured. Then only the listed origins get
  ``Access-Control-Allow-*`` headers, and a preflight (``OPTIONS``, which a browser sends
  without credentials) is answered before the API key check.
"""

from __future__ import annotations

from apiflask import APIFlask
from flask import Response, current_app, render_template_string, request
from flask_cors import CORS

from api.auth import _check_request as check_auth
from api.auth import public
from core.settings import Settings

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' blob: data:",  # the web page shows photos as blob: URLs
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
DOCS_ENDPOINT = "openapi.docs"
# Request headers a browser page may send to the API, and response headers it may read.
CORS_ALLOW_HEADERS = (
    "Authorization",
    "Content-Type",
    "Facesearch-Gallery",
    "Idempotency-Key",
    "X-Request-ID",
)
CORS_EXPOSE_HEADERS = ("Location", "Retry-After", "X-Request-ID")
CORS_MAX_AGE_S = 600

DOCS_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{{ title }} {{ version }} - API docs</title>
  <link rel="stylesheet" href="{{ config.SWAGGER_UI_CSS }}">
  <link rel="stylesheet" href="{{ url_for('static', filename='docs.css') }}">
</head>
<body>
  <div id="swagger-ui" data-spec-url="{{ url_for('openapi.spec') }}"></div>
  <script src="{{ config.SWAGGER_UI_BUNDLE_JS }}"></script>
  <script src="{{ config.SWAGGER_UI_STANDALONE_PRESET_JS }}"></script>
  <script src="{{ url_for('static', filename='docs.js') }}"></script>
</body>
</html>
"""


def split_list(value: str) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]``."""
    return [item.strip() for item in value.split(",") if item.strip()]


@public
def docs_page() -> str:
    """Swagger UI, with no inline script."""
    app: APIFlask = current_app  # type: ignore[assignment]
    return render_template_string(DOCS_PAGE, title=app.title, version=app.version)


def _add_security_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def _is_preflight() -> bool:
    return (
        request.method == "OPTIONS"
        and "Origin" in request.headers
        and "Access-Control-Request-Method" in request.headers
    )


def _answer_preflight() -> Response | None:
    """A CORS preflight carries no key: answer it here (Flask-CORS adds the headers for an
    allowed origin), before the key check would refuse it."""
    if not _is_preflight() or request.endpoint is None:
        return None
    return current_app.make_default_options_response()


def _before_auth(app: APIFlask, hook: object) -> None:
    """Run ``hook`` before the API key check, whichever of the two was installed first."""
    hooks = app.before_request_funcs.setdefault(None, [])
    position = hooks.index(check_auth) if check_auth in hooks else len(hooks)
    hooks.insert(position, hook)  # type: ignore[arg-type]


def install(app: APIFlask, settings: Settings) -> None:
    hosts = split_list(settings.trusted_hosts)
    app.config["TRUSTED_HOSTS"] = hosts or None
    app.after_request(_add_security_headers)
    if DOCS_ENDPOINT in app.view_functions:
        app.view_functions[DOCS_ENDPOINT] = docs_page
    origins = split_list(settings.cors_origins)
    if origins:
        CORS(
            app,
            origins=origins,
            allow_headers=list(CORS_ALLOW_HEADERS),
            expose_headers=list(CORS_EXPOSE_HEADERS),
            supports_credentials=False,  # a key is sent as a header, never as a cookie
            max_age=CORS_MAX_AGE_S,
        )
        _before_auth(app, _answer_preflight)
