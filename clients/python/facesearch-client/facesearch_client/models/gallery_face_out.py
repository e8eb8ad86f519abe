from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.box import Box
    from ..models.gallery_face_out_landmarks import GalleryFaceOutLandmarks


T = TypeVar("T", bound="GalleryFaceOut")


@_attrs_define
class GalleryFaceOut:
    """
    Attributes:
        box (Box | Unset):
        confidence (float | Unset):
        id (int | Unset):
        image_id (int | Unset): the image the face was found in
        image_url (str | Unset): the image's bytes
        indexed (bool | Unset): searchable (present in the vector index)
        label (None | str | Unset): the person this face is; null: unlabelled. An image's label goes to its most
            prominent face (of the faces at least half as large as the largest, the one nearest the centre); set it with PUT
            /v1/faces/{id}/label
        landmarks (GalleryFaceOutLandmarks | Unset):
        model (str | Unset):
    """

    box: Box | Unset = UNSET
    confidence: float | Unset = UNSET
    id: int | Unset = UNSET
    image_id: int | Unset = UNSET
    image_url: str | Unset = UNSET
    indexed: bool | Unset = UNSET
    label: None | str | Unset = UNSET
    landmarks: GalleryFaceOutLandmarks | Unset = UNSET
    model: str | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        box: dict[str, Any] | Unset = UNSET
        if not isinstance(self.box, Unset):
            box = self.box.to_dict()

        confidence = self.confidence

        id = self.id

        image_id = self.image_id

        image_url = self.image_url

        indexed = self.indexed

        label: None | str | Unset
        if isinstance(self.label, Unset):
            label = UNSET
        else:
            label = self.label

        landmarks: dict[str, Any] | Unset = UNSET
        if not isinstance(self.landmarks, Unset):
            landmarks = self.landmarks.to_dict()

        model = self.model

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if box is not UNSET:
            field_dict["box"] = box
        if confidence is not UNSET:
            field_dict["confidence"] = confidence
        if id is not UNSET:
            field_dict["id"] = id
        if image_id is not UNSET:
            field_dict["image_id"] = image_id
        if image_url is not UNSET:
            field_dict["image_url"] = image_url
        if indexed is not UNSET:
            field_dict["indexed"] = indexed
        if label is not UNSET:
            field_dict["label"] = label
        if landmarks is not UNSET:
            field_dict["landmarks"] = landmarks
        if model is not UNSET:
            field_dict["model"] = model

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.box import Box  # noqa: PLC0415
        from ..models.gallery_face_out_landmarks import GalleryFaceOutLandmarks  # noqa: PLC0415

        d = dict(src_dict)
        _box = d.pop("box", UNSET)
        box: Box | Unset
        if isinstance(_box, Unset):
            box = UNSET
        else:
            box = Box.from_dict(_box)

        confidence = d.pop("confidence", UNSET)

        id = d.pop("id", UNSET)

        image_id = d.pop("image_id", UNSET)

        image_url = d.pop("image_url", UNSET)

        indexed = d.pop("indexed", UNSET)

        def _parse_label(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        label = _parse_label(d.pop("label", UNSET))

        _landmarks = d.pop("landmarks", UNSET)
        landmarks: GalleryFaceOutLandmarks | Unset
        if isinstance(_landmarks, Unset):
            landmarks = UNSET
        else:
            landmarks = GalleryFaceOutLandmarks.from_dict(_landmarks)

        model = d.pop("model", UNSET)

        gallery_face_out = cls(
            box=box,
            confidence=confidence,
            id=id,
            image_id=image_id,
            image_url=image_url,
            indexed=indexed,
            label=label,
            landmarks=landmarks,
            model=model,
        )

        return gallery_face_out
