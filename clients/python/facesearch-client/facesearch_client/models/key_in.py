from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define

from ..models.key_in_scope import KeyInScope
from ..types import UNSET, Unset

T = TypeVar("T", bound="KeyIn")


@_attrs_define
class KeyIn:
    """
    Attributes:
        scope (KeyInScope): search < write < admin; each includes the ones before
        all_galleries (bool | Unset): an admin key for every gallery (only such a key may make one) Default: False.
        gallery (None | str | Unset): the gallery the key is bound to (default: the request's gallery)
        name (None | str | Unset): what the key is for, to recognise it later
    """

    scope: KeyInScope
    all_galleries: bool | Unset = False
    gallery: None | str | Unset = UNSET
    name: None | str | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        scope = self.scope.value

        all_galleries = self.all_galleries

        gallery: None | str | Unset
        if isinstance(self.gallery, Unset):
            gallery = UNSET
        else:
            gallery = self.gallery

        name: None | str | Unset
        if isinstance(self.name, Unset):
            name = UNSET
        else:
            name = self.name

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "scope": scope,
            }
        )
        if all_galleries is not UNSET:
            field_dict["all_galleries"] = all_galleries
        if gallery is not UNSET:
            field_dict["gallery"] = gallery
        if name is not UNSET:
            field_dict["name"] = name

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        scope = KeyInScope(d.pop("scope"))

        all_galleries = d.pop("all_galleries", UNSET)

        def _parse_gallery(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        gallery = _parse_gallery(d.pop("gallery", UNSET))

        def _parse_name(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        name = _parse_name(d.pop("name", UNSET))

        key_in = cls(
            scope=scope,
            all_galleries=all_galleries,
            gallery=gallery,
            name=name,
        )

        return key_in
