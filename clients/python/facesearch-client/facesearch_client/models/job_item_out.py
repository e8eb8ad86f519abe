from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="JobItemOut")


@_attrs_define
class JobItemOut:
    """
    Attributes:
        error (None | str | Unset):
        image_id (int | None | Unset):
        name (str | Unset):
        position (int | Unset):
        status (str | Unset):
    """

    error: None | str | Unset = UNSET
    image_id: int | None | Unset = UNSET
    name: str | Unset = UNSET
    position: int | Unset = UNSET
    status: str | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        error: None | str | Unset
        if isinstance(self.error, Unset):
            error = UNSET
        else:
            error = self.error

        image_id: int | None | Unset
        if isinstance(self.image_id, Unset):
            image_id = UNSET
        else:
            image_id = self.image_id

        name = self.name

        position = self.position

        status = self.status

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if error is not UNSET:
            field_dict["error"] = error
        if image_id is not UNSET:
            field_dict["image_id"] = image_id
        if name is not UNSET:
            field_dict["name"] = name
        if position is not UNSET:
            field_dict["position"] = position
        if status is not UNSET:
            field_dict["status"] = status

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)

        def _parse_error(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        error = _parse_error(d.pop("error", UNSET))

        def _parse_image_id(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        image_id = _parse_image_id(d.pop("image_id", UNSET))

        name = d.pop("name", UNSET)

        position = d.pop("position", UNSET)

        status = d.pop("status", UNSET)

        job_item_out = cls(
            error=error,
            image_id=image_id,
            name=name,
            position=position,
            status=status,
        )

        return job_item_out
