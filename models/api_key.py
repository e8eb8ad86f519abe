"""API keys: who may call the API, on which gallery, and with what scope.

A key is shown once, when it is made; only its SHA-256 is stored. A key carries at least
128 random bits, so a fast hash is enough (a slow password hash guards guessable secrets,
and costs every request milliseconds). Its short prefix, stored in the clear, finds the row
and lets a person recognise the key in listings and logs.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigIntId, created_at, str_enum
from models.job import new_uuid


class Scope(enum.StrEnum):
    """What a key may do; each scope includes the ones before it."""

    SEARCH = "search"  # search, and read results, images, jobs and labels
    WRITE = "write"  # also ingest, delete, cancel
    ADMIN = "admin"  # also galleries, keys and webhooks

    @property
    def rank(self) -> int:
        return list(Scope).index(self)

    def allows(self, needed: Scope) -> bool:
        return self.rank >= needed.rank


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(100))
    scope: Mapped[Scope] = mapped_column(str_enum(Scope))
    # None: every gallery (administrators only).
    gallery_id: Mapped[int | None] = mapped_column(
        BigIntId, ForeignKey("galleries.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[created_at]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
