from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define

T = TypeVar("T", bound="ErrorBody")


@_attrs_define
class ErrorBody:
    """
    Attributes:
        code (str): stable machine-readable error code
        details (Any): more about it, where there is more: an object
        message (str): what was wrong, for a person
        status (int): the answer's HTTP status
    """

    code: str
    details: Any
    message: str
    status: int

    def to_dict(self) -> dict[str, Any]:
        code = self.code

        details = self.details

        message = self.message

        status = self.status

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "code": code,
                "details": details,
                "message": message,
                "status": status,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        code = d.pop("code")

        details = d.pop("details")

        message = d.pop("message")

        status = d.pop("status")

        error_body = cls(
            code=code,
            details=details,
            message=message,
            status=status,
        )

        return error_body
