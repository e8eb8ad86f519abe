from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define

T = TypeVar("T", bound="Box")


@_attrs_define
class Box:
    """
    Attributes:
        height (int):
        width (int):
        x (int):
        y (int):
    """

    height: int
    width: int
    x: int
    y: int

    def to_dict(self) -> dict[str, Any]:
        height = self.height

        width = self.width

        x = self.x

        y = self.y

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "height": height,
                "width": width,
                "x": x,
                "y": y,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        height = d.pop("height")

        width = d.pop("width")

        x = d.pop("x")

        y = d.pop("y")

        box = cls(
            height=height,
            width=width,
            x=x,
            y=y,
        )

        return box
