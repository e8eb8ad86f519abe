from __future__ import annotations

from collections.abc import Mapping
from io import BytesIO
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define

from .. import types
from ..types import UNSET, File, Unset

T = TypeVar("T", bound="ImageUploadIn")


@_attrs_define
class ImageUploadIn:
    """
    Attributes:
        file (list[File]): one or more images (JPEG, PNG, WebP, BMP, GIF or TIFF; at least 12 px a side), each a part
            with a file name; at most MAX_FILES_PER_REQUEST
        label (list[str] | Unset): the identity of the person: one label for every file, or one `label` part per `file`
            part, in the same order
    """

    file: list[File]
    label: list[str] | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        file = []
        for file_item_data in self.file:
            file_item = file_item_data.to_tuple()

            file.append(file_item)

        label: list[str] | Unset = UNSET
        if not isinstance(self.label, Unset):
            label = self.label

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "file": file,
            }
        )
        if label is not UNSET:
            field_dict["label"] = label

        return field_dict

    def to_multipart(self) -> types.RequestFiles:
        files: types.RequestFiles = []

        for file_item_element in self.file:
            files.append(("file", file_item_element.to_tuple()))

        if not isinstance(self.label, Unset):
            for label_item_element in self.label:
                files.append(("label", (None, str(label_item_element).encode(), "text/plain")))

        return files

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        file = []
        _file = d.pop("file")
        for file_item_data in _file:
            file_item = File(payload=BytesIO(file_item_data))

            file.append(file_item)

        label = cast(list[str], d.pop("label", UNSET))

        image_upload_in = cls(
            file=file,
            label=label,
        )

        return image_upload_in
