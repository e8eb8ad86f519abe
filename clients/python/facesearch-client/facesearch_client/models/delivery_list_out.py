from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from attrs import define as _attrs_define

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.delivery_out import DeliveryOut


T = TypeVar("T", bound="DeliveryListOut")


@_attrs_define
class DeliveryListOut:
    """
    Attributes:
        deliveries (list[DeliveryOut] | Unset):
    """

    deliveries: list[DeliveryOut] | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        deliveries: list[dict[str, Any]] | Unset = UNSET
        if not isinstance(self.deliveries, Unset):
            deliveries = []
            for deliveries_item_data in self.deliveries:
                deliveries_item = deliveries_item_data.to_dict()
                deliveries.append(deliveries_item)

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if deliveries is not UNSET:
            field_dict["deliveries"] = deliveries

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.delivery_out import DeliveryOut  # noqa: PLC0415

        d = dict(src_dict)
        _deliveries = d.pop("deliveries", UNSET)
        deliveries: list[DeliveryOut] | Unset = UNSET
        if _deliveries is not UNSET:
            deliveries = []
            for deliveries_item_data in _deliveries:
                deliveries_item = DeliveryOut.from_dict(deliveries_item_data)

                deliveries.append(deliveries_item)

        delivery_list_out = cls(
            deliveries=deliveries,
        )

        return delivery_list_out
