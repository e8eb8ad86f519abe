from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.box import Box
    from ..models.same_person_out import SamePersonOut


T = TypeVar("T", bound="MatchOut")


@_attrs_define
class MatchOut:
    """
    Attributes:
        box (Box | Unset):
        face_id (int | None | Unset):
        image_id (int | None | Unset):
        image_url (None | str | Unset):
        label (None | str | Unset):
        rank (int | Unset):
        same_person (SamePersonOut | Unset):
        score (float | Unset): cosine similarity, 1.0 = identical
    """

    box: Box | Unset = UNSET
    face_id: int | None | Unset = UNSET
    image_id: int | None | Unset = UNSET
    image_url: None | str | Unset = UNSET
    label: None | str | Unset = UNSET
    rank: int | Unset = UNSET
    same_person: SamePersonOut | Unset = UNSET
    score: float | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        box: dict[str, Any] | Unset = UNSET
        if not isinstance(self.box, Unset):
            box = self.box.to_dict()

        face_id: int | None | Unset
        if isinstance(self.face_id, Unset):
            face_id = UNSET
        else:
            face_id = self.face_id

        image_id: int | None | Unset
        if isinstance(self.image_id, Unset):
            image_id = UNSET
        else:
            image_id = self.image_id

        image_url: None | str | Unset
        if isinstance(self.image_url, Unset):
            image_url = UNSET
        else:
            image_url = self.image_url

        label: None | str | Unset
        if isinstance(self.label, Unset):
            label = UNSET
        else:
            label = self.label

        rank = self.rank

        same_person: dict[str, Any] | Unset = UNSET
        if not isinstance(self.same_person, Unset):
            same_person = self.same_person.to_dict()

        score = self.score

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if box is not UNSET:
            field_dict["box"] = box
        if face_id is not UNSET:
            field_dict["face_id"] = face_id
        if image_id is not UNSET:
            field_dict["image_id"] = image_id
        if image_url is not UNSET:
            field_dict["image_url"] = image_url
        if label is not UNSET:
            field_dict["label"] = label
        if rank is not UNSET:
            field_dict["rank"] = rank
        if same_person is not UNSET:
            field_dict["same_person"] = same_person
        if score is not UNSET:
            field_dict["score"] = score

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.box import Box  # noqa: PLC0415
        from ..models.same_person_out import SamePersonOut  # noqa: PLC0415

        d = dict(src_dict)
        _box = d.pop("box", UNSET)
        box: Box | Unset
        if isinstance(_box, Unset):
            box = UNSET
        else:
            box = Box.from_dict(_box)

        def _parse_face_id(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        face_id = _parse_face_id(d.pop("face_id", UNSET))

        def _parse_image_id(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        image_id = _parse_image_id(d.pop("image_id", UNSET))

        def _parse_image_url(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        image_url = _parse_image_url(d.pop("image_url", UNSET))

        def _parse_label(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        label = _parse_label(d.pop("label", UNSET))

        rank = d.pop("rank", UNSET)

        _same_person = d.pop("same_person", UNSET)
        same_person: SamePersonOut | Unset
        if isinstance(_same_person, Unset):
            same_person = UNSET
        else:
            same_person = SamePersonOut.from_dict(_same_person)

        score = d.pop("score", UNSET)

        match_out = cls(
            box=box,
            face_id=face_id,
            image_id=image_id,
            image_url=image_url,
            label=label,
            rank=rank,
            same_person=same_person,
            score=score,
        )

        return match_out
