from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="LabelOut")


@_attrs_define
class LabelOut:
    """
    Attributes:
        images (int | Unset):
        label (str | Unset):
    """

    images: int | Unset = UNSET
    label: str | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        images = self.images

        label = self.label

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if images is not UNSET:
            field_dict["images"] = images
        if label is not UNSET:
            field_dict["label"] = label

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        images = d.pop("images", UNSET)

        label = d.pop("label", UNSET)

        label_out = cls(
            images=images,
            label=label,
        )

        return label_out
