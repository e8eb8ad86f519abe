from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="JobCreatedOut")


@_attrs_define
class JobCreatedOut:
    """
    Attributes:
        job_id (str):
        status (str):
        job_url (str | Unset):
    """

    job_id: str
    status: str
    job_url: str | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        job_id = self.job_id

        status = self.status

        job_url = self.job_url

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "job_id": job_id,
                "status": status,
            }
        )
        if job_url is not UNSET:
            field_dict["job_url"] = job_url

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        job_id = d.pop("job_id")

        status = d.pop("status")

        job_url = d.pop("job_url", UNSET)

        job_created_out = cls(
            job_id=job_id,
            status=status,
            job_url=job_url,
        )

        return job_created_out
