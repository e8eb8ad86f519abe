"""A face's label: who a face is. An image's label names its most prominent face
(``models.face.prominent_face``, applied when the faces are written); these functions label,
relabel and unlabel one face on its own."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import Face, Image


def find_face(session: Session, *, gallery_id: int, face_id: int) -> Face | None:
    """The face, if it belongs to an image of the gallery (another gallery's face is None,
    exactly like one that does not exist)."""
    return session.scalars(
        select(Face)
        .join(Image, Face.image_id == Image.id)
        .where(Face.id == face_id, Image.gallery_id == gallery_id)
    ).one_or_none()


def set_face_label(face: Face, label: str | None) -> None:
    """Give ``face`` the label (None: unlabelled). The image's own label, the one asked at
    upload, is left as it was: it records what the uploader said, not who each face is.
    Matches stored by searches made before keep the label they were made with."""
    face.label = label
