"""API keys: making, finding, checking and revoking them.

A key reads ``fsk_<prefix>_<secret>``: the prefix (8 hex characters) finds its row and is
safe to show; the secret is 32 random bytes (256 bits), so guessing is hopeless and a plain
SHA-256 of the whole key is a safe thing to store (see ``models.api_key``).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models import ApiKey, Gallery, Scope, utcnow

KEY_PATTERN = re.compile(r"^fsk_([0-9a-f]{8})_([A-Za-z0-9_-]{43})$")
# last_used_at is written at most this often per key: a write per request would cost more
# than the check itself, and a minute is precise enough to spot a key nobody uses.
LAST_USED_RESOLUTION = timedelta(seconds=60)


class KeyRequestError(ValueError):
    """A key cannot be made or revoked as asked; the message says why."""


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> tuple[str, str]:
    """A fresh key and its prefix."""
    prefix = secrets.token_hex(4)
    return f"fsk_{prefix}_{secrets.token_urlsafe(32)}", prefix


def create_key(
    session: Session, *, scope: Scope, gallery: Gallery | None, name: str | None = None
) -> tuple[ApiKey, str]:
    """Make a key (flushed, not committed); returns the row and the key, shown only now.

    A key bound to no gallery reaches every gallery, so only an admin key may be one.
    """
    if gallery is None and scope != Scope.ADMIN:
        raise KeyRequestError("a key for every gallery must have the admin scope; name a gallery")
    if gallery is not None and gallery.erasing_since is not None:
        raise KeyRequestError(f"gallery {gallery.name!r} is being erased")
    while True:
        # 32 bits of prefix: a collision is rare, but it must not fail the request. The
        # unique constraint decides (in a savepoint), also against a key made this moment.
        key, prefix = new_key()
        row = ApiKey(
            prefix=prefix,
            key_hash=hash_key(key),
            name=name,
            scope=scope,
            gallery_id=gallery.id if gallery is not None else None,
        )
        try:
            with session.begin_nested():
                session.add(row)
        except IntegrityError:
            continue
        return row, key


def authenticate(session: Session, presented: str) -> ApiKey | None:
    """The live key ``presented`` is, or None (malformed, unknown, revoked, or its gallery
    is being erased). Records when it was last used (see LAST_USED_RESOLUTION)."""
    match = KEY_PATTERN.match(presented)
    if match is None:
        return None
    # One round trip: the key and whether its gallery is being erased.
    found = session.execute(
        select(ApiKey, Gallery.erasing_since)
        .outerjoin(Gallery, ApiKey.gallery_id == Gallery.id)
        .where(ApiKey.prefix == match.group(1))
    ).first()
    if found is None:
        return None
    row, erasing_since = found
    # Compared in constant time, so the answer's timing says nothing about the hash.
    if not hmac.compare_digest(row.key_hash, hash_key(presented)):
        return None
    if row.revoked_at is not None or erasing_since is not None:
        return None
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION:
        row.last_used_at = now
    return row


def list_keys(session: Session, *, gallery_id: int | None = None) -> list[ApiKey]:
    """Keys, oldest first: those of one gallery, or (None) every key."""
    statement = select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)
    if gallery_id is not None:
        statement = statement.where(ApiKey.gallery_id == gallery_id)
    return list(session.scalars(statement))


def find_key(session: Session, prefix: str, *, gallery_id: int | None = None) -> ApiKey | None:
    """A key by its prefix (``fsk_1a2b3c4d`` or ``1a2b3c4d``), within one gallery if given."""
    prefix = prefix.removeprefix("fsk_").split("_", 1)[0]
    row = session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
    if row is None or (gallery_id is not None and row.gallery_id != gallery_id):
        return None
    return row


def revoke_key(row: ApiKey) -> None:
    """Revoke a key; its next request is refused. Revoking twice changes nothing."""
    if row.revoked_at is None:
        row.revoked_at = utcnow()
