"""Webhook signatures, in the manner of Stripe's: ``Facesearch-Signature: t=<unix>,v1=<hex>``
where ``<hex>`` is HMAC-SHA256 of ``"<t>.<raw body>"`` under the subscription's secret.

Signing the timestamp with the body lets a receiver reject replays: a captured request
cannot be re-sent later with a fresh ``t``. The README's verification snippet is this
module's ``verify`` (the tests run the README's copy against real deliveries).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Sequence

SIGNATURE_HEADER = "Facesearch-Signature"
EVENT_ID_HEADER = "Facesearch-Event-Id"
SCHEME = "v1"
# A receiver refuses signatures older (or newer) than this; 5 minutes, as Stripe's libraries.
DEFAULT_TOLERANCE_S = 300
SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)


def new_secret() -> str:
    """A signing secret: 32 random bytes, URL-safe, with a prefix that makes it recognisable
    (in a leaked config file, in a secret scanner)."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def signature(secret: str, body: bytes, timestamp: int) -> str:
    signed = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int | None = None, also: Sequence[str] = ()) -> str:
    """The header value for ``body`` sent at ``timestamp`` (now by default). Each secret in
    ``also`` adds a signature: during a rotation, receivers holding the old secret still
    verify (a receiver accepts a header if any ``v1`` matches)."""
    t = int(time.time()) if timestamp is None else timestamp
    return ",".join([f"t={t}", *(f"{SCHEME}={signature(key, body, t)}" for key in (secret, *also))])


def verify(
    secret: str,
    body: bytes,
    header: str,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> bool:
    """True when ``header`` signs exactly ``body`` with ``secret``, recently enough."""
    parts = [item.split("=", 1) for item in header.split(",") if "=" in item]
    timestamps = [value for key, value in parts if key.strip() == "t"]
    candidates = [value.strip() for key, value in parts if key.strip() == SCHEME]
    if len(timestamps) != 1 or not timestamps[0].strip().isdigit() or not candidates:
        return False
    t = int(timestamps[0])
    if abs((time.time() if now is None else now) - t) > tolerance_s:
        return False
    expected = signature(secret, body, t)
    return any(hmac.compare_digest(expected, c) for c in candidates)
