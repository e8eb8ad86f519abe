"""Galleries: every image belongs to one. Only the default gallery exists for now; the
column is here so that scoped galleries (with API keys) need no data migration later."""

from __future__ import annotations

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, created_at, int_pk

DEFAULT_GALLERY_ID = 1
DEFAULT_GALLERY_NAME = "default"


class Gallery(Base):
    __tablename__ = "galleries"

    id: Mapped[int_pk]
    name: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[created_at]
