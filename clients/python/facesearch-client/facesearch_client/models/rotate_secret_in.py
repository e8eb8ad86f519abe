from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="RotateSecretIn")


@_attrs_define
class RotateSecretIn:
    """
    Attributes:
        previous_valid_s (int | Unset): seconds during which deliveries are signed with the old secret too (default 0:
            it stops at once; at most 7 days) Default: 0.
    """

    previous_valid_s: int | Unset = 0

    def to_dict(self) -> dict[str, Any]:
        previous_valid_s = self.previous_valid_s

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if previous_valid_s is not UNSET:
            field_dict["previous_valid_s"] = previous_valid_s

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        previous_valid_s = d.pop("previous_valid_s", UNSET)

        rotate_secret_in = cls(
            previous_valid_s=previous_valid_s,
        )

        return rotate_secret_in
