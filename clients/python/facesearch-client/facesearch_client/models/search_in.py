from __future__ import annotations

from collections.abc import Mapping
from io import BytesIO
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define

from .. import types
from ..types import UNSET, File, Unset

T = TypeVar("T", bound="SearchIn")


@_attrs_define
class SearchIn:
    """
    Attributes:
        file (File): the query photo
        callback_url (None | str | Unset): an http(s) URL told when the search finishes (search.completed or
            search.failed), signed with the `callback_secret` of the answer in the Standard Webhooks headers `webhook-id`,
            `webhook-timestamp` and `webhook-signature`
        top_k (int | None | Unset): matches per face (default 10, at most 100)
    """

    file: File
    callback_url: None | str | Unset = UNSET
    top_k: int | None | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        file = self.file.to_tuple()

        callback_url: None | str | Unset
        if isinstance(self.callback_url, Unset):
            callback_url = UNSET
        else:
            callback_url = self.callback_url

        top_k: int | None | Unset
        if isinstance(self.top_k, Unset):
            top_k = UNSET
        else:
            top_k = self.top_k

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "file": file,
            }
        )
        if callback_url is not UNSET:
            field_dict["callback_url"] = callback_url
        if top_k is not UNSET:
            field_dict["top_k"] = top_k

        return field_dict

    def to_multipart(self) -> types.RequestFiles:
        files: types.RequestFiles = []

        files.append(("file", self.file.to_tuple()))

        if not isinstance(self.callback_url, Unset):
            if isinstance(self.callback_url, str):
                files.append(("callback_url", (None, str(self.callback_url).encode(), "text/plain")))
            else:
                files.append(("callback_url", (None, str(self.callback_url).encode(), "text/plain")))

        if not isinstance(self.top_k, Unset):
            if isinstance(self.top_k, int):
                files.append(("top_k", (None, str(self.top_k).encode(), "text/plain")))
            else:
                files.append(("top_k", (None, str(self.top_k).encode(), "text/plain")))

        return files

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        file = File(payload=BytesIO(d.pop("file")))

        def _parse_callback_url(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        callback_url = _parse_callback_url(d.pop("callback_url", UNSET))

        def _parse_top_k(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        top_k = _parse_top_k(d.pop("top_k", UNSET))

        search_in = cls(
            file=file,
            callback_url=callback_url,
            top_k=top_k,
        )

        return search_in
