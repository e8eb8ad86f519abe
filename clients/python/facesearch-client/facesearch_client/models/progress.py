from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="Progress")


@_attrs_define
class Progress:
    """
    Attributes:
        done (int | Unset):
        eta_s (float | None | Unset): estimated seconds left; null when unknown or finished
        failed (int | Unset):
        images_per_s (float | None | Unset): items finished per second since the start
        skipped (int | Unset):
        total (int | Unset):
        total_known (bool | Unset): false while an archive is still being read: total grows
    """

    done: int | Unset = UNSET
    eta_s: float | None | Unset = UNSET
    failed: int | Unset = UNSET
    images_per_s: float | None | Unset = UNSET
    skipped: int | Unset = UNSET
    total: int | Unset = UNSET
    total_known: bool | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        done = self.done

        eta_s: float | None | Unset
        if isinstance(self.eta_s, Unset):
            eta_s = UNSET
        else:
            eta_s = self.eta_s

        failed = self.failed

        images_per_s: float | None | Unset
        if isinstance(self.images_per_s, Unset):
            images_per_s = UNSET
        else:
            images_per_s = self.images_per_s

        skipped = self.skipped

        total = self.total

        total_known = self.total_known

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if done is not UNSET:
            field_dict["done"] = done
        if eta_s is not UNSET:
            field_dict["eta_s"] = eta_s
        if failed is not UNSET:
            field_dict["failed"] = failed
        if images_per_s is not UNSET:
            field_dict["images_per_s"] = images_per_s
        if skipped is not UNSET:
            field_dict["skipped"] = skipped
        if total is not UNSET:
            field_dict["total"] = total
        if total_known is not UNSET:
            field_dict["total_known"] = total_known

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        done = d.pop("done", UNSET)

        def _parse_eta_s(data: object) -> float | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(float | None | Unset, data)

        eta_s = _parse_eta_s(d.pop("eta_s", UNSET))

        failed = d.pop("failed", UNSET)

        def _parse_images_per_s(data: object) -> float | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(float | None | Unset, data)

        images_per_s = _parse_images_per_s(d.pop("images_per_s", UNSET))

        skipped = d.pop("skipped", UNSET)

        total = d.pop("total", UNSET)

        total_known = d.pop("total_known", UNSET)

        progress = cls(
            done=done,
            eta_s=eta_s,
            failed=failed,
            images_per_s=images_per_s,
            skipped=skipped,
            total=total,
            total_known=total_known,
        )

        return progress
