from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="GalleryOut")


@_attrs_define
class GalleryOut:
    """
    Attributes:
        created_at (datetime.datetime | Unset):
        id (int | Unset):
        images (int | Unset): images in the gallery
        name (str | Unset):
    """

    created_at: datetime.datetime | Unset = UNSET
    id: int | Unset = UNSET
    images: int | Unset = UNSET
    name: str | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        created_at: str | Unset = UNSET
        if not isinstance(self.created_at, Unset):
            created_at = self.created_at.isoformat()

        id = self.id

        images = self.images

        name = self.name

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if created_at is not UNSET:
            field_dict["created_at"] = created_at
        if id is not UNSET:
            field_dict["id"] = id
        if images is not UNSET:
            field_dict["images"] = images
        if name is not UNSET:
            field_dict["name"] = name

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        _created_at = d.pop("created_at", UNSET)
        created_at: datetime.datetime | Unset
        if isinstance(_created_at, Unset):
            created_at = UNSET
        else:
            created_at = datetime.datetime.fromisoformat(_created_at)

        id = d.pop("id", UNSET)

        images = d.pop("images", UNSET)

        name = d.pop("name", UNSET)

        gallery_out = cls(
            created_at=created_at,
            id=id,
            images=images,
            name=name,
        )

        return gallery_out
