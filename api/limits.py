"""Request rate limits per API key (Flask-Limiter), from the ``RATE_LIMIT`` setting.

- **Who is counted**: the key a request was made with (its id, so a key's budget is the same
  whatever it is sent from); a request that passed without a key (``METRICS_TOKEN``) counts
  against its client address. The limiter's check runs after the auth check
  (``api.auth._check_request``), which is what sets ``g.principal``: :func:`install` makes
  sure of that order. A request that the auth check refuses (401, 403) never reaches it.
- **What is exempt**: public routes (health probes, ``/openapi.json``, ``/docs`` and its
  assets, the web page and its static files) and unmatched URLs. A readiness probe answered
  429 would take a healthy instance out of rotation, and the rest is static; floods of
  anonymous traffic are for the proxy in front.
- **Where counts live**: the broker's Redis in server mode (``RATE_LIMIT_STORAGE_URL`` to use
  another), so every API process shares them; memory in the embedded mode (one process).
- **When the storage is down**: requests are still answered. The limiter logs a warning,
  counts in this process's memory until the storage answers again, and swallows any other
  storage error.
- **Over the limit**: 429 in the error shape of ``api.errors``, with ``Retry-After``.
"""

from __future__ import annotations

import math
import time
from typing import Any

from apiflask import APIFlask
from flask import current_app, g, request
from flask_limiter import Limiter, RateLimitExceeded
from limits import parse_many

from api.auth import _check_request as check_auth
from api.auth import required_scope
from api.errors import CODES
from core.logging import get_logger
from core.settings import Settings

log = get_logger(__name__)

EXTENSION = "facesearch_limiter"
STRATEGY = "moving-window"  # exact: no burst of twice the limit across a window edge
# A Redis that does not answer must not hold a request for long.
REDIS_TIMEOUT_S = 0.5


def rate_limit_key() -> str:
    """The caller's budget: its key's id, else its address."""
    caller = g.get("principal")
    if caller is not None:
        return f"key:{caller.key_id}"
    return f"addr:{request.remote_addr or 'unknown'}"


def _is_public() -> bool:
    endpoint = request.endpoint
    return endpoint is None or required_scope(current_app, endpoint) is None  # type: ignore[arg-type]


def storage_url(settings: Settings) -> str:
    """Where the counts live: RATE_LIMIT_STORAGE_URL, the broker's Redis, or memory."""
    if settings.rate_limit_storage_url:
        return settings.rate_limit_storage_url
    if settings.broker_url.startswith(("redis://", "rediss://")):
        return settings.broker_url
    return "memory://"


def _storage_options(url: str) -> dict[str, Any]:
    if url.startswith(("redis://", "rediss://")):
        return {"socket_connect_timeout": REDIS_TIMEOUT_S, "socket_timeout": REDIS_TIMEOUT_S}
    return {}


def _retry_after_s(limiter: Limiter, error: RateLimitExceeded) -> int:
    """Whole seconds until the breached limit lets a request through again."""
    current = limiter.current_limit
    try:
        if current is not None:
            return max(1, math.ceil(current.window.reset_time - time.time()))
    except Exception:  # the storage went away meanwhile: say the whole window
        log.warning("rate limit storage unreachable while computing Retry-After")
    return max(1, int(error.limit.limit.get_expiry()))


def install(app: APIFlask, settings: Settings) -> Limiter | None:
    """Limit requests per key; None when ``RATE_LIMIT`` is empty. Call after ``auth.install``."""
    spec = settings.rate_limit.strip()
    if not spec:
        return None
    try:
        parse_many(spec)
    except ValueError as exc:
        raise ValueError(
            f"RATE_LIMIT {spec!r} is not valid: use e.g. '1200/minute;50/second' (or empty)"
        ) from exc
    before = app.before_request_funcs.get(None, [])
    if check_auth not in before:
        raise RuntimeError("install the rate limits after api.auth: they need the caller")

    url = storage_url(settings)
    limiter = Limiter(
        rate_limit_key,
        default_limits=[spec],
        default_limits_exempt_when=_is_public,
        strategy=STRATEGY,
        storage_uri=url,
        storage_options=_storage_options(url),
        key_prefix="facesearch",
        # Storage down: count in memory meanwhile (with a warning), never fail a request.
        in_memory_fallback_enabled=True,
        swallow_errors=True,
        headers_enabled=False,  # Retry-After on a 429 only (below)
    )
    # Flask runs before_request functions in the order they were added: the limiter's,
    # added here, runs after the auth check, so the key function sees the caller.
    limiter.init_app(app)
    app.extensions[EXTENSION] = limiter

    @app.errorhandler(RateLimitExceeded)
    def _too_many(error: RateLimitExceeded) -> tuple[dict[str, Any], int, dict[str, str]]:
        retry_after = _retry_after_s(limiter, error)
        limit = str(error.limit.limit)
        who = "this API key" if g.get("principal") is not None else "this client address"
        body = {
            "error": {
                "status": 429,
                "code": CODES[429],
                "message": f"too many requests: {who} may make {limit}; retry in {retry_after} s",
                "details": {"limit": limit, "retry_after_s": retry_after},
            }
        }
        return body, 429, {"Retry-After": str(retry_after)}

    return limiter
