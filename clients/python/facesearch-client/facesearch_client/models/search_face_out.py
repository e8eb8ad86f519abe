from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.box import Box
    from ..models.match_out import MatchOut
    from ..models.search_face_out_landmarks import SearchFaceOutLandmarks


T = TypeVar("T", bound="SearchFaceOut")


@_attrs_define
class SearchFaceOut:
    """
    Attributes:
        box (Box | Unset):
        confidence (float | Unset):
        landmarks (SearchFaceOutLandmarks | Unset):
        matches (list[MatchOut] | Unset):
        message (None | str | Unset): what the matches mean, in words, when no match is judged the same person: `No one
            in the gallery...` (null when one is, or without a calibration)
    """

    box: Box | Unset = UNSET
    confidence: float | Unset = UNSET
    landmarks: SearchFaceOutLandmarks | Unset = UNSET
    matches: list[MatchOut] | Unset = UNSET
    message: None | str | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        box: dict[str, Any] | Unset = UNSET
        if not isinstance(self.box, Unset):
            box = self.box.to_dict()

        confidence = self.confidence

        landmarks: dict[str, Any] | Unset = UNSET
        if not isinstance(self.landmarks, Unset):
            landmarks = self.landmarks.to_dict()

        matches: list[dict[str, Any]] | Unset = UNSET
        if not isinstance(self.matches, Unset):
            matches = []
            for matches_item_data in self.matches:
                matches_item = matches_item_data.to_dict()
                matches.append(matches_item)

        message: None | str | Unset
        if isinstance(self.message, Unset):
            message = UNSET
        else:
            message = self.message

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if box is not UNSET:
            field_dict["box"] = box
        if confidence is not UNSET:
            field_dict["confidence"] = confidence
        if landmarks is not UNSET:
            field_dict["landmarks"] = landmarks
        if matches is not UNSET:
            field_dict["matches"] = matches
        if message is not UNSET:
            field_dict["message"] = message

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.box import Box  # noqa: PLC0415
        from ..models.match_out import MatchOut  # noqa: PLC0415
        from ..models.search_face_out_landmarks import SearchFaceOutLandmarks  # noqa: PLC0415

        d = dict(src_dict)
        _box = d.pop("box", UNSET)
        box: Box | Unset
        if isinstance(_box, Unset):
            box = UNSET
        else:
            box = Box.from_dict(_box)

        confidence = d.pop("confidence", UNSET)

        _landmarks = d.pop("landmarks", UNSET)
        landmarks: SearchFaceOutLandmarks | Unset
        if isinstance(_landmarks, Unset):
            landmarks = UNSET
        else:
            landmarks = SearchFaceOutLandmarks.from_dict(_landmarks)

        _matches = d.pop("matches", UNSET)
        matches: list[MatchOut] | Unset = UNSET
        if _matches is not UNSET:
            matches = []
            for matches_item_data in _matches:
                matches_item = MatchOut.from_dict(matches_item_data)

                matches.append(matches_item)

        def _parse_message(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        message = _parse_message(d.pop("message", UNSET))

        search_face_out = cls(
            box=box,
            confidence=confidence,
            landmarks=landmarks,
            matches=matches,
            message=message,
        )

        return search_face_out
