from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from attrs import define as _attrs_define

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.gallery_out import GalleryOut


T = TypeVar("T", bound="GalleryListOut")


@_attrs_define
class GalleryListOut:
    """
    Attributes:
        galleries (list[GalleryOut] | Unset):
    """

    galleries: list[GalleryOut] | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        galleries: list[dict[str, Any]] | Unset = UNSET
        if not isinstance(self.galleries, Unset):
            galleries = []
            for galleries_item_data in self.galleries:
                galleries_item = galleries_item_data.to_dict()
                galleries.append(galleries_item)

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if galleries is not UNSET:
            field_dict["galleries"] = galleries

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.gallery_out import GalleryOut  # noqa: PLC0415

        d = dict(src_dict)
        _galleries = d.pop("galleries", UNSET)
        galleries: list[GalleryOut] | Unset = UNSET
        if _galleries is not UNSET:
            galleries = []
            for galleries_item_data in _galleries:
                galleries_item = GalleryOut.from_dict(galleries_item_data)

                galleries.append(galleries_item)

        gallery_list_out = cls(
            galleries=galleries,
        )

        return gallery_list_out
