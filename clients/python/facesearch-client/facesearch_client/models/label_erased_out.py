from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="LabelErasedOut")


@_attrs_define
class LabelErasedOut:
    """
    Attributes:
        faces (int | Unset): their faces
        images (int | Unset): images erased
        job_items (int | Unset): job items renamed `(erased)`
        matches (int | Unset): stored search matches removed
        webhook_events (int | Unset): stored payloads scrubbed
    """

    faces: int | Unset = UNSET
    images: int | Unset = UNSET
    job_items: int | Unset = UNSET
    matches: int | Unset = UNSET
    webhook_events: int | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        faces = self.faces

        images = self.images

        job_items = self.job_items

        matches = self.matches

        webhook_events = self.webhook_events

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if faces is not UNSET:
            field_dict["faces"] = faces
        if images is not UNSET:
            field_dict["images"] = images
        if job_items is not UNSET:
            field_dict["job_items"] = job_items
        if matches is not UNSET:
            field_dict["matches"] = matches
        if webhook_events is not UNSET:
            field_dict["webhook_events"] = webhook_events

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        faces = d.pop("faces", UNSET)

        images = d.pop("images", UNSET)

        job_items = d.pop("job_items", UNSET)

        matches = d.pop("matches", UNSET)

        webhook_events = d.pop("webhook_events", UNSET)

        label_erased_out = cls(
            faces=faces,
            images=images,
            job_items=job_items,
            matches=matches,
            webhook_events=webhook_events,
        )

        return label_erased_out
