"""Galleries: finding and making them. Erasing one is ``services.erasure``."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models import Gallery
from models.gallery import GALLERY_NAME_LENGTH

# Names appear in headers (Facesearch-Gallery) and command lines: keep them plain.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class GalleryError(ValueError):
    """A gallery cannot be made as asked; the message says why."""


class GalleryNameTakenError(GalleryError):
    """Another gallery has the name (or had it, and is still being erased)."""


def check_name(name: str) -> str:
    if not 1 <= len(name) <= GALLERY_NAME_LENGTH or NAME_PATTERN.match(name) is None:
        raise GalleryError(
            f"a gallery name is 1 to {GALLERY_NAME_LENGTH} letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def find_gallery(session: Session, name_or_id: str | int) -> Gallery | None:
    """A live gallery (not being erased) by name, or by id."""
    if isinstance(name_or_id, int):
        gallery = session.get(Gallery, name_or_id)
    else:
        gallery = session.scalar(select(Gallery).where(Gallery.name == name_or_id))
    if gallery is None or gallery.erasing_since is not None:
        return None
    return gallery


def create_gallery(session: Session, name: str) -> Gallery:
    """Make a gallery (flushed, not committed). A name in use is refused, also while the
    gallery that had it is still being erased."""
    check_name(name)
    taken = GalleryNameTakenError(f"a gallery named {name!r} already exists")
    if session.scalar(select(Gallery.id).where(Gallery.name == name)) is not None:
        raise taken
    gallery = Gallery(name=name)
    try:
        # In a savepoint: a request making the same name at the same moment wins the unique
        # constraint, and this one is told so, with the caller's transaction intact.
        with session.begin_nested():
            session.add(gallery)
    except IntegrityError as exc:
        raise taken from exc
    return gallery


def get_or_create_gallery(session: Session, name: str) -> Gallery:
    gallery = find_gallery(session, name)
    return gallery if gallery is not None else create_gallery(session, name)


def list_galleries(session: Session) -> list[Gallery]:
    return list(
        session.scalars(select(Gallery).where(Gallery.erasing_since.is_(None)).order_by(Gallery.id))
    )
