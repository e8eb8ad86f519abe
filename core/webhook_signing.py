"""Webhook signatures by the Standard Webhooks specification (https://www.standardwebhooks.com/),
so that a receiver can verify deliveries with any of its libraries (``standardwebhooks`` on
PyPI, and its siblings in other languages) or with the README's few lines of standard library.

Every delivery carries three headers:

- ``webhook-id``: the event's id, the same on every retry and redelivery (receivers
  deduplicate on it);
- ``webhook-timestamp``: the attempt's unix time, so a receiver can refuse a replay;
- ``webhook-signature``: ``v1,<base64 of HMAC-SHA256 of "<id>.<timestamp>.<raw body>">``, one
  per secret that signs now, space-separated: during a rotation's grace period both the new
  and the old secret sign, and a receiver accepts the delivery if any of them verifies.

Secrets are ``whsec_`` followed by the standard base64 of 32 random bytes: the key is those
bytes, which is what the libraries take.

Secrets made before this scheme (``whsec_`` + ``secrets.token_urlsafe(32)``: 43 URL-safe
characters, which never decode as padded standard base64) keep working, by one rule: such a
secret's key is its own UTF-8 bytes, the key the earlier ``Facesearch-Signature`` scheme used.
A delivery signed by such a secret also carries that earlier header (and
``Facesearch-Event-Id``), so receivers written for it go on verifying unchanged; the header
goes once the subscription's secret is rotated (a new secret is always a standard one) and the
grace period of the old one is over.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Sequence

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
SCHEME = "v1"  # the specification's identifier of HMAC-SHA256 signatures
# A receiver refuses timestamps further than this from its clock; 5 minutes, as the libraries.
DEFAULT_TOLERANCE_S = 300
SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)
SECRET_BYTES = 32
# The specification's bounds on a symmetric key; a secret decoding to fewer or more bytes is
# not a standard secret, whatever it looks like.
MIN_KEY_BYTES, MAX_KEY_BYTES = 24, 64

# The earlier scheme, still sent beside the standard headers for secrets made under it.
LEGACY_SIGNATURE_HEADER = "Facesearch-Signature"
LEGACY_EVENT_ID_HEADER = "Facesearch-Event-Id"


def new_secret() -> str:
    """A signing secret in the specification's form: ``whsec_`` and the base64 of the key."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def _standard_key(secret: str) -> bytes | None:
    if not secret.startswith(SECRET_PREFIX):
        return None
    try:
        # Strict: the URL-safe alphabet of earlier secrets, or missing padding, is not base64
        # here (a lenient decoder would drop the odd characters and make up a key).
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except binascii.Error:
        return None
    return key if MIN_KEY_BYTES <= len(key) <= MAX_KEY_BYTES else None


def is_legacy(secret: str) -> bool:
    """True for a secret that is not in the specification's form (one made before it)."""
    return _standard_key(secret) is None


def signing_key(secret: str) -> bytes:
    """The HMAC key of ``secret``: the bytes its base64 encodes, or for an earlier secret
    its own UTF-8 bytes."""
    key = _standard_key(secret)
    return secret.encode() if key is None else key


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<base64>`` signature of ``body`` sent as ``msg_id`` at ``timestamp``."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.digest(signing_key(secret), signed, hashlib.sha256)
    return f"{SCHEME},{base64.b64encode(digest).decode('ascii')}"


def legacy_signature(secrets_: Sequence[str], timestamp: int, body: bytes) -> str:
    """The earlier header's value: ``t=<unix>,v1=<hex>[,v1=<hex>]``, HMAC-SHA256 of
    ``"<t>.<body>"`` keyed with each secret's UTF-8 bytes."""
    signed = f"{timestamp}.".encode() + body
    return ",".join(
        [f"t={timestamp}"]
        + [f"{SCHEME}={hmac.new(s.encode(), signed, hashlib.sha256).hexdigest()}" for s in secrets_]
    )


def signed_headers(
    secrets_: Sequence[str], msg_id: str, body: bytes, timestamp: int | None = None
) -> dict[str, str]:
    """The headers that sign ``body`` as message ``msg_id``, sent at ``timestamp`` (now by
    default), by each of ``secrets_`` (the current secret first)."""
    if not secrets_:
        raise ValueError("a delivery needs at least one secret to sign it")
    t = int(time.time()) if timestamp is None else timestamp
    headers = {
        ID_HEADER: msg_id,
        TIMESTAMP_HEADER: str(t),
        SIGNATURE_HEADER: " ".join(signature(s, msg_id, t, body) for s in secrets_),
    }
    legacy = [s for s in secrets_ if is_legacy(s)]
    if legacy:
        # Only the earlier secrets sign the earlier header: its receivers hold one of them,
        # and a new secret is meant for the standard headers alone.
        headers[LEGACY_EVENT_ID_HEADER] = msg_id
        headers[LEGACY_SIGNATURE_HEADER] = legacy_signature(legacy, t, body)
    return headers
