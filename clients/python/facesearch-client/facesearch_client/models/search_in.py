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
        min_probability (float | None | Unset): keep only matches whose same-person probability is at least this (0 to
            1; e.g. 0.99 keeps the matches judged `same`); a face left with no match says so in its `message`. Refused (422)
            when the search model has no calibration
        top_k (int | None | Unset): matches per face (default 10, at most 100)
    """

    file: File
    callback_url: None | str | Unset = UNSET
    min_probability: float | None | Unset = UNSET
    top_k: int | None | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        file = self.file.to_tuple()

        callback_url: None | str | Unset
        if isinstance(self.callback_url, Unset):
            callback_url = UNSET
        else:
            callback_url = self.callback_url

        min_probability: float | None | Unset
        if isinstance(self.min_probability, Unset):
            min_probability = UNSET
        else:
            min_probability = self.min_probability

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
        if min_probability is not UNSET:
            field_dict["min_probability"] = min_probability
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

        if not isinstance(self.min_probability, Unset):
            if isinstance(self.min_probability, float):
                files.append(("min_probability", (None, str(self.min_probability).encode(), "text/plain")))
            else:
                files.append(("min_probability", (None, str(self.min_probability).encode(), "text/plain")))

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

        def _parse_min_probability(data: object) -> float | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(float | None | Unset, data)

        min_probability = _parse_min_probability(d.pop("min_probability", UNSET))

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
            min_probability=min_probability,
            top_k=top_k,
        )

        return search_in
