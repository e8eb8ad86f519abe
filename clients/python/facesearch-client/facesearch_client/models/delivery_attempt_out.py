from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="DeliveryAttemptOut")


@_attrs_define
class DeliveryAttemptOut:
    """
    Attributes:
        attempted_at (datetime.datetime | Unset):
        error (None | str | Unset):
        latency_ms (int | None | Unset):
        number (int | Unset):
        response_excerpt (None | str | Unset): the first 2 KiB of the answer's body
        status_code (int | None | Unset): null: no answer
        succeeded (bool | Unset):
    """

    attempted_at: datetime.datetime | Unset = UNSET
    error: None | str | Unset = UNSET
    latency_ms: int | None | Unset = UNSET
    number: int | Unset = UNSET
    response_excerpt: None | str | Unset = UNSET
    status_code: int | None | Unset = UNSET
    succeeded: bool | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        attempted_at: str | Unset = UNSET
        if not isinstance(self.attempted_at, Unset):
            attempted_at = self.attempted_at.isoformat()

        error: None | str | Unset
        if isinstance(self.error, Unset):
            error = UNSET
        else:
            error = self.error

        latency_ms: int | None | Unset
        if isinstance(self.latency_ms, Unset):
            latency_ms = UNSET
        else:
            latency_ms = self.latency_ms

        number = self.number

        response_excerpt: None | str | Unset
        if isinstance(self.response_excerpt, Unset):
            response_excerpt = UNSET
        else:
            response_excerpt = self.response_excerpt

        status_code: int | None | Unset
        if isinstance(self.status_code, Unset):
            status_code = UNSET
        else:
            status_code = self.status_code

        succeeded = self.succeeded

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if attempted_at is not UNSET:
            field_dict["attempted_at"] = attempted_at
        if error is not UNSET:
            field_dict["error"] = error
        if latency_ms is not UNSET:
            field_dict["latency_ms"] = latency_ms
        if number is not UNSET:
            field_dict["number"] = number
        if response_excerpt is not UNSET:
            field_dict["response_excerpt"] = response_excerpt
        if status_code is not UNSET:
            field_dict["status_code"] = status_code
        if succeeded is not UNSET:
            field_dict["succeeded"] = succeeded

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        _attempted_at = d.pop("attempted_at", UNSET)
        attempted_at: datetime.datetime | Unset
        if isinstance(_attempted_at, Unset):
            attempted_at = UNSET
        else:
            attempted_at = datetime.datetime.fromisoformat(_attempted_at)

        def _parse_error(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        error = _parse_error(d.pop("error", UNSET))

        def _parse_latency_ms(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        latency_ms = _parse_latency_ms(d.pop("latency_ms", UNSET))

        number = d.pop("number", UNSET)

        def _parse_response_excerpt(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        response_excerpt = _parse_response_excerpt(d.pop("response_excerpt", UNSET))

        def _parse_status_code(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        status_code = _parse_status_code(d.pop("status_code", UNSET))

        succeeded = d.pop("succeeded", UNSET)

        delivery_attempt_out = cls(
            attempted_at=attempted_at,
            error=error,
            latency_ms=latency_ms,
            number=number,
            response_excerpt=response_excerpt,
            status_code=status_code,
            succeeded=succeeded,
        )

        return delivery_attempt_out
