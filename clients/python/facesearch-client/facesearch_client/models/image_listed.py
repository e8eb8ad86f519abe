from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.face_out import FaceOut


T = TypeVar("T", bound="ImageListed")


@_attrs_define
class ImageListed:
    """
    Attributes:
        content_type (str | Unset):
        created_at (datetime.datetime | Unset):
        error (None | str | Unset):
        faces (list[FaceOut] | Unset):
        filename (None | str | Unset):
        height (int | Unset):
        id (int | Unset):
        image_url (str | Unset):
        label (None | str | Unset): the label asked at upload; it names the image's most prominent face, whose `label`
            (in `faces`) is what searches answer
        sha256 (str | Unset):
        size_bytes (int | Unset):
        status (str | Unset): pending, ready, no_face or failed
        width (int | Unset):
    """

    content_type: str | Unset = UNSET
    created_at: datetime.datetime | Unset = UNSET
    error: None | str | Unset = UNSET
    faces: list[FaceOut] | Unset = UNSET
    filename: None | str | Unset = UNSET
    height: int | Unset = UNSET
    id: int | Unset = UNSET
    image_url: str | Unset = UNSET
    label: None | str | Unset = UNSET
    sha256: str | Unset = UNSET
    size_bytes: int | Unset = UNSET
    status: str | Unset = UNSET
    width: int | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        content_type = self.content_type

        created_at: str | Unset = UNSET
        if not isinstance(self.created_at, Unset):
            created_at = self.created_at.isoformat()

        error: None | str | Unset
        if isinstance(self.error, Unset):
            error = UNSET
        else:
            error = self.error

        faces: list[dict[str, Any]] | Unset = UNSET
        if not isinstance(self.faces, Unset):
            faces = []
            for faces_item_data in self.faces:
                faces_item = faces_item_data.to_dict()
                faces.append(faces_item)

        filename: None | str | Unset
        if isinstance(self.filename, Unset):
            filename = UNSET
        else:
            filename = self.filename

        height = self.height

        id = self.id

        image_url = self.image_url

        label: None | str | Unset
        if isinstance(self.label, Unset):
            label = UNSET
        else:
            label = self.label

        sha256 = self.sha256

        size_bytes = self.size_bytes

        status = self.status

        width = self.width

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if content_type is not UNSET:
            field_dict["content_type"] = content_type
        if created_at is not UNSET:
            field_dict["created_at"] = created_at
        if error is not UNSET:
            field_dict["error"] = error
        if faces is not UNSET:
            field_dict["faces"] = faces
        if filename is not UNSET:
            field_dict["filename"] = filename
        if height is not UNSET:
            field_dict["height"] = height
        if id is not UNSET:
            field_dict["id"] = id
        if image_url is not UNSET:
            field_dict["image_url"] = image_url
        if label is not UNSET:
            field_dict["label"] = label
        if sha256 is not UNSET:
            field_dict["sha256"] = sha256
        if size_bytes is not UNSET:
            field_dict["size_bytes"] = size_bytes
        if status is not UNSET:
            field_dict["status"] = status
        if width is not UNSET:
            field_dict["width"] = width

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.face_out import FaceOut  # noqa: PLC0415

        d = dict(src_dict)
        content_type = d.pop("content_type", UNSET)

        _created_at = d.pop("created_at", UNSET)
        created_at: datetime.datetime | Unset
        if isinstance(_created_at, Unset):
            created_at = UNSET
        else:
            created_at = datetime.datetime.fromisoformat(_created_at)

        def _parse_error(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        error = _parse_error(d.pop("error", UNSET))

        _faces = d.pop("faces", UNSET)
        faces: list[FaceOut] | Unset = UNSET
        if _faces is not UNSET:
            faces = []
            for faces_item_data in _faces:
                faces_item = FaceOut.from_dict(faces_item_data)

                faces.append(faces_item)

        def _parse_filename(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        filename = _parse_filename(d.pop("filename", UNSET))

        height = d.pop("height", UNSET)

        id = d.pop("id", UNSET)

        image_url = d.pop("image_url", UNSET)

        def _parse_label(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        label = _parse_label(d.pop("label", UNSET))

        sha256 = d.pop("sha256", UNSET)

        size_bytes = d.pop("size_bytes", UNSET)

        status = d.pop("status", UNSET)

        width = d.pop("width", UNSET)

        image_listed = cls(
            content_type=content_type,
            created_at=created_at,
            error=error,
            faces=faces,
            filename=filename,
            height=height,
            id=id,
            image_url=image_url,
            label=label,
            sha256=sha256,
            size_bytes=size_bytes,
            status=status,
            width=width,
        )

        return image_listed
