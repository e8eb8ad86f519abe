"""A face's label: who a face is. An image's label names its most prominent face
(``models.face.prominent_face``, applied when the faces are written); these functions label,
relabel and unlabel one face on its own."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import Face, Image
from models.face import LABEL_IOU, iou


def find_face(session: Session, *, gallery_id: int, face_id: int) -> Face | None:
    """The face, if it belongs to an image of the gallery (another gallery's face is None,
    exactly like one that does not exist)."""
    return session.scalars(
        select(Face)
        .join(Image, Face.image_id == Image.id)
        .where(Face.id == face_id, Image.gallery_id == gallery_id)
    ).one_or_none()


def set_face_label(session: Session, face: Face, label: str | None) -> None:
    """Give ``face`` the label (None: unlabelled). The image's own label, the one asked at
    upload, is left as it was: it records what the uploader said, not who each face is.
    Matches stored by searches made before keep the label they were made with.

    During a re-embed (``workers.reembed``) an image holds faces of two embedding versions:
    the same face of the other version (the one its box overlaps by ``LABEL_IOU`` or more)
    takes the label too, so the label survives the switch to the new version. The image's
    row is locked first: a re-embed writing the image's new faces meanwhile either reads
    this label or has its faces seen here."""
    session.execute(select(Image.id).where(Image.id == face.image_id).with_for_update())
    face.label = label
    box = (face.box_x, face.box_y, face.box_w, face.box_h)
    best: dict[str, tuple[float, Face]] = {}
    for other in session.scalars(
        select(Face).where(Face.image_id == face.image_id, Face.model_name != face.model_name)
    ):
        overlap = iou(box, (other.box_x, other.box_y, other.box_w, other.box_h))
        if overlap >= LABEL_IOU and overlap > best.get(other.model_name, (0.0, other))[0]:
            best[other.model_name] = (overlap, other)
    for _, same in best.values():
        same.label = label
