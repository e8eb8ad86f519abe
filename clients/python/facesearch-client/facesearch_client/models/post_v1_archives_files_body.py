from __future__ import annotations

from collections.abc import Mapping
from io import BytesIO
from typing import Any, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from .. import types
from ..models.post_v1_archives_files_body_label_from import PostV1ArchivesFilesBodyLabelFrom
from ..types import UNSET, File, Unset

T = TypeVar("T", bound="PostV1ArchivesFilesBody")


@_attrs_define
class PostV1ArchivesFilesBody:
    """
    Attributes:
        file (File):
        label_from (PostV1ArchivesFilesBodyLabelFrom | Unset): where a member's label comes from: `folder` (LFW's
            `Name/Name_0001.jpg` gives `Name`), `filename` (`Name_0001.jpg` gives `Name`) or `none` Default:
            PostV1ArchivesFilesBodyLabelFrom.FOLDER.
    """

    file: File
    label_from: PostV1ArchivesFilesBodyLabelFrom | Unset = PostV1ArchivesFilesBodyLabelFrom.FOLDER
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        file = self.file.to_tuple()

        label_from: str | Unset = UNSET
        if not isinstance(self.label_from, Unset):
            label_from = self.label_from.value

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "file": file,
            }
        )
        if label_from is not UNSET:
            field_dict["label_from"] = label_from

        return field_dict

    def to_multipart(self) -> types.RequestFiles:
        files: types.RequestFiles = []

        files.append(("file", self.file.to_tuple()))

        if not isinstance(self.label_from, Unset):
            files.append(("label_from", (None, str(self.label_from.value).encode(), "text/plain")))

        for prop_name, prop in self.additional_properties.items():
            files.append((prop_name, (None, str(prop).encode(), "text/plain")))

        return files

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        file = File(payload=BytesIO(d.pop("file")))

        _label_from = d.pop("label_from", UNSET)
        label_from: PostV1ArchivesFilesBodyLabelFrom | Unset
        if isinstance(_label_from, Unset):
            label_from = UNSET
        else:
            label_from = PostV1ArchivesFilesBodyLabelFrom(_label_from)

        post_v1_archives_files_body = cls(
            file=file,
            label_from=label_from,
        )

        post_v1_archives_files_body.additional_properties = d
        return post_v1_archives_files_body

    @property
    def additional_keys(self) -> list[str]:
        return list(self.additional_properties.keys())

    def __getitem__(self, key: str) -> Any:
        return self.additional_properties[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.additional_properties[key] = value

    def __delitem__(self, key: str) -> None:
        del self.additional_properties[key]

    def __contains__(self, key: str) -> bool:
        return key in self.additional_properties
