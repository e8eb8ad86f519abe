"""Galleries: the unit of tenancy. Every image, face, label, job, search and webhook belongs
to one, and an API key is bound to one (or, for an administrator, to all)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, created_at, int_pk

# Made by the first migration; data from before galleries had keys lives here.
DEFAULT_GALLERY_ID = 1
DEFAULT_GALLERY_NAME = "default"
GALLERY_NAME_LENGTH = 100


class Gallery(Base):
    __tablename__ = "galleries"

    id: Mapped[int_pk]
    name: Mapped[str] = mapped_column(String(GALLERY_NAME_LENGTH), unique=True)
    created_at: Mapped[created_at]
    # Set when its erasure was asked for: from then on it is invisible (404) and its keys no
    # longer work, while a job removes its bytes, vectors and rows.
    erasing_since: Mapped[datetime | None]
