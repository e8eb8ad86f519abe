from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..models.post_v1_archives_json_body_label_from import PostV1ArchivesJsonBodyLabelFrom
from ..types import UNSET, Unset

T = TypeVar("T", bound="PostV1ArchivesJsonBody")


@_attrs_define
class PostV1ArchivesJsonBody:
    """
    Attributes:
        object_key (str): an archive already in the object store, under `imports/<gallery name>/` (at most 1,024 bytes
            of UTF-8)
        label_from (PostV1ArchivesJsonBodyLabelFrom | Unset): where a member's label comes from: `folder` (LFW's
            `Name/Name_0001.jpg` gives `Name`), `filename` (`Name_0001.jpg` gives `Name`) or `none` Default:
            PostV1ArchivesJsonBodyLabelFrom.FOLDER.
    """

    object_key: str
    label_from: PostV1ArchivesJsonBodyLabelFrom | Unset = PostV1ArchivesJsonBodyLabelFrom.FOLDER
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        object_key = self.object_key

        label_from: str | Unset = UNSET
        if not isinstance(self.label_from, Unset):
            label_from = self.label_from.value

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "object_key": object_key,
            }
        )
        if label_from is not UNSET:
            field_dict["label_from"] = label_from

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        object_key = d.pop("object_key")

        _label_from = d.pop("label_from", UNSET)
        label_from: PostV1ArchivesJsonBodyLabelFrom | Unset
        if isinstance(_label_from, Unset):
            label_from = UNSET
        else:
            label_from = PostV1ArchivesJsonBodyLabelFrom(_label_from)

        post_v1_archives_json_body = cls(
            object_key=object_key,
            label_from=label_from,
        )

        post_v1_archives_json_body.additional_properties = d
        return post_v1_archives_json_body

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
