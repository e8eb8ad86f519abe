"""Embedding versions: the name of a recipe of vectors, and which one searches are served from.

A face's vector depends on the model's weights and on the options of the crop and the
embedding (margin, eye alignment, flip): ``version_name`` names the recipe, and
``faces.model_name`` holds that name. Vectors of two versions never share a collection and
are never compared. ``served_versions`` records, per model, the version searches are served
from: the newest one that covers the gallery's images. ``facesearch reembed`` builds a new
version beside it and switches this row when it is complete (README, "Changing the face
recipe").
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from models.base import Base, utcnow

__all__ = ["NAMED_MARGIN", "ServedVersion", "model_of", "served_version", "version_name"]

# The margin of vectors named by the model alone: every face stored before the recipe had
# options was cropped with it. Frozen: were it to follow the pipeline's default, stored names
# would change meaning.
NAMED_MARGIN = 0.25


def version_name(model_name: str, *, margin: float, align: bool, flip: bool) -> str:
    """``model_name`` alone for the original recipe, else e.g.
    ``facenet-20170512-110547+margin0.1+align+flip`` (fits the 64 characters of the
    ``model_name`` columns for every known model)."""
    extra = []
    if margin != NAMED_MARGIN:
        extra.append(f"margin{margin:g}")
    if align:
        extra.append("align")
    if flip:
        extra.append("flip")
    return "+".join([model_name, *extra])


def model_of(version: str) -> str:
    """The model (weights) an embedding version is of."""
    return version.split("+", 1)[0]


class ServedVersion(Base):
    """The embedding version searches of a model's faces are served from."""

    __tablename__ = "served_versions"

    model_name: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[str] = mapped_column(String(64))
    switched_at: Mapped[datetime] = mapped_column(default=utcnow)


def served_version(session: Session, model_name: str) -> str | None:
    """The recorded version for ``model_name``; None where none is (a new install: the
    first version indexed is recorded by the index writer)."""
    return session.scalar(
        select(ServedVersion.version).where(ServedVersion.model_name == model_name)
    )
