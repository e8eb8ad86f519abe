"""A gallery face, and its label: who the face is.

A label names one face. An image uploaded with a label gives it to its most prominent face
(of the faces at least half as large as the largest, the one nearest the centre; see
``models.face.prominent_face``) and its other faces are indexed
unlabelled; these routes label, relabel or unlabel any face on its own. Search matches answer
the face's label from then on (matches stored by earlier searches keep theirs).
"""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint, Schema, fields
from apiflask.validators import Length

from api import schemas
from api.auth import gallery_id, requires
from api.context import db
from api.errors import ApiError
from core.logging import get_logger
from models import MAX_LABEL, Face, Scope
from services import urls
from services.faces import find_face, set_face_label
from services.render import render_face

log = get_logger(__name__)
bp = APIBlueprint("faces", __name__, url_prefix="/v1/faces", tag="Faces")


class FaceLabelIn(Schema):
    # Needed, but checked in the view after the face is found: another gallery's caller
    # gets the same 404 for a face that exists and one that does not, whatever it sent.
    label = fields.String(
        load_default=None,
        validate=Length(max=MAX_LABEL),
        metadata={"description": "who the face is (needed; surrounding blanks are dropped)"},
    )


class GalleryFaceOut(schemas.FaceOut):
    image_id = fields.Integer(metadata={"description": "the image the face was found in"})
    image_url = fields.String(metadata={"description": "the image's bytes"})


def _render(face: Face) -> dict[str, Any]:
    return render_face(face) | {
        "image_id": face.image_id,
        "image_url": urls.image_url(face.image_id),
    }


def _face_or_404(face_id: int) -> Face:
    face = find_face(db(), gallery_id=gallery_id(), face_id=face_id)
    if face is None:  # another gallery's face is answered exactly like one that does not exist
        raise ApiError(404, f"there is no face {face_id}", code="no_such_face")
    return face


@bp.get("/<int:face_id>")
@bp.output(GalleryFaceOut)
@bp.doc(summary="A gallery face: its box, its label and its image", responses={404: "No such face"})
@requires(Scope.SEARCH)
def get_face(face_id: int) -> dict[str, Any]:
    return _render(_face_or_404(face_id))


@bp.put("/<int:face_id>/label")
@bp.input(FaceLabelIn, arg_name="body")
@bp.output(GalleryFaceOut)
@bp.doc(
    summary="Label a face, or relabel it",
    description="Says who this face is. Only this face changes: the image's other faces and "
    "the label the image was uploaded with stay as they were. Searches answer the new label "
    "from now on.",
    responses={200: "The face, with its label", 404: "No such face", 422: "Invalid label"},
)
@requires(Scope.WRITE)
def put_face_label(face_id: int, body: dict[str, Any]) -> dict[str, Any]:
    face = _face_or_404(face_id)
    label = (body.get("label") or "").strip()
    if not label:
        raise ApiError(422, "label: send the face's label, not blank", code="invalid_input")
    set_face_label(db(), face, label)
    db().commit()
    log.info("face labelled", face_id=face_id)  # not the label itself: the log keeps no names
    return _render(face)


@bp.delete("/<int:face_id>/label")
@bp.output(GalleryFaceOut)
@bp.doc(
    summary="Unlabel a face",
    description="The face stays in the gallery and searchable, without a name. To remove a "
    "person's images altogether, erase the label (`DELETE /v1/labels/{label}`).",
    responses={200: "The face, now unlabelled", 404: "No such face"},
)
@requires(Scope.WRITE)
def delete_face_label(face_id: int) -> dict[str, Any]:
    face = _face_or_404(face_id)
    set_face_label(db(), face, None)
    db().commit()
    log.info("face unlabelled", face_id=face_id)
    return _render(face)
