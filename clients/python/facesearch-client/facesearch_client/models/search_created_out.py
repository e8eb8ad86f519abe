from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="SearchCreatedOut")


@_attrs_define
class SearchCreatedOut:
    """
    Attributes:
        job_id (str):
        search_id (str):
        callback_secret (str | Unset): with a callback_url: the secret that signs its delivery
        job_url (str | Unset):
        search_url (str | Unset):
        status (str | Unset):
    """

    job_id: str
    search_id: str
    callback_secret: str | Unset = UNSET
    job_url: str | Unset = UNSET
    search_url: str | Unset = UNSET
    status: str | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        job_id = self.job_id

        search_id = self.search_id

        callback_secret = self.callback_secret

        job_url = self.job_url

        search_url = self.search_url

        status = self.status

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "job_id": job_id,
                "search_id": search_id,
            }
        )
        if callback_secret is not UNSET:
            field_dict["callback_secret"] = callback_secret
        if job_url is not UNSET:
            field_dict["job_url"] = job_url
        if search_url is not UNSET:
            field_dict["search_url"] = search_url
        if status is not UNSET:
            field_dict["status"] = status

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        job_id = d.pop("job_id")

        search_id = d.pop("search_id")

        callback_secret = d.pop("callback_secret", UNSET)

        job_url = d.pop("job_url", UNSET)

        search_url = d.pop("search_url", UNSET)

        status = d.pop("status", UNSET)

        search_created_out = cls(
            job_id=job_id,
            search_id=search_id,
            callback_secret=callback_secret,
            job_url=job_url,
            search_url=search_url,
            status=status,
        )

        return search_created_out
