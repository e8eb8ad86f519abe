from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="WebhookOut")


@_attrs_define
class WebhookOut:
    """
    Attributes:
        active (bool | Unset):
        created_at (datetime.datetime | Unset):
        deliveries_url (str | Unset):
        events (list[str] | Unset):
        id (str | Unset):
        previous_secret_expires_at (datetime.datetime | None | Unset): until when the old secret also signs
        secret (str | Unset): the signing secret: only in the answers to creation and rotation
        secret_rotated_at (datetime.datetime | None | Unset):
        url (str | Unset):
    """

    active: bool | Unset = UNSET
    created_at: datetime.datetime | Unset = UNSET
    deliveries_url: str | Unset = UNSET
    events: list[str] | Unset = UNSET
    id: str | Unset = UNSET
    previous_secret_expires_at: datetime.datetime | None | Unset = UNSET
    secret: str | Unset = UNSET
    secret_rotated_at: datetime.datetime | None | Unset = UNSET
    url: str | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        active = self.active

        created_at: str | Unset = UNSET
        if not isinstance(self.created_at, Unset):
            created_at = self.created_at.isoformat()

        deliveries_url = self.deliveries_url

        events: list[str] | Unset = UNSET
        if not isinstance(self.events, Unset):
            events = self.events

        id = self.id

        previous_secret_expires_at: None | str | Unset
        if isinstance(self.previous_secret_expires_at, Unset):
            previous_secret_expires_at = UNSET
        elif isinstance(self.previous_secret_expires_at, datetime.datetime):
            previous_secret_expires_at = self.previous_secret_expires_at.isoformat()
        else:
            previous_secret_expires_at = self.previous_secret_expires_at

        secret = self.secret

        secret_rotated_at: None | str | Unset
        if isinstance(self.secret_rotated_at, Unset):
            secret_rotated_at = UNSET
        elif isinstance(self.secret_rotated_at, datetime.datetime):
            secret_rotated_at = self.secret_rotated_at.isoformat()
        else:
            secret_rotated_at = self.secret_rotated_at

        url = self.url

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if active is not UNSET:
            field_dict["active"] = active
        if created_at is not UNSET:
            field_dict["created_at"] = created_at
        if deliveries_url is not UNSET:
            field_dict["deliveries_url"] = deliveries_url
        if events is not UNSET:
            field_dict["events"] = events
        if id is not UNSET:
            field_dict["id"] = id
        if previous_secret_expires_at is not UNSET:
            field_dict["previous_secret_expires_at"] = previous_secret_expires_at
        if secret is not UNSET:
            field_dict["secret"] = secret
        if secret_rotated_at is not UNSET:
            field_dict["secret_rotated_at"] = secret_rotated_at
        if url is not UNSET:
            field_dict["url"] = url

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        active = d.pop("active", UNSET)

        _created_at = d.pop("created_at", UNSET)
        created_at: datetime.datetime | Unset
        if isinstance(_created_at, Unset):
            created_at = UNSET
        else:
            created_at = datetime.datetime.fromisoformat(_created_at)

        deliveries_url = d.pop("deliveries_url", UNSET)

        events = cast(list[str], d.pop("events", UNSET))

        id = d.pop("id", UNSET)

        def _parse_previous_secret_expires_at(data: object) -> datetime.datetime | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                previous_secret_expires_at_type_0 = datetime.datetime.fromisoformat(data)

                return previous_secret_expires_at_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(datetime.datetime | None | Unset, data)

        previous_secret_expires_at = _parse_previous_secret_expires_at(d.pop("previous_secret_expires_at", UNSET))

        secret = d.pop("secret", UNSET)

        def _parse_secret_rotated_at(data: object) -> datetime.datetime | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                secret_rotated_at_type_0 = datetime.datetime.fromisoformat(data)

                return secret_rotated_at_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(datetime.datetime | None | Unset, data)

        secret_rotated_at = _parse_secret_rotated_at(d.pop("secret_rotated_at", UNSET))

        url = d.pop("url", UNSET)

        webhook_out = cls(
            active=active,
            created_at=created_at,
            deliveries_url=deliveries_url,
            events=events,
            id=id,
            previous_secret_expires_at=previous_secret_expires_at,
            secret=secret,
            secret_rotated_at=secret_rotated_at,
            url=url,
        )

        return webhook_out
