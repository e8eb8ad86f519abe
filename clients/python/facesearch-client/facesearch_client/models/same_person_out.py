from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define

T = TypeVar("T", bound="SamePersonOut")


@_attrs_define
class SamePersonOut:
    """
    Attributes:
        probability (float | None): calibrated probability that the two faces are the same person, for a pair with even
            odds (fitted on LFW's pairs); null when the model has no calibration
        verdict (None | str): one of `same` (probability at least 0.99), `uncertain` (between) or `different` (at most
            0.01); null when the model has no calibration
    """

    probability: float | None
    verdict: None | str

    def to_dict(self) -> dict[str, Any]:
        probability: float | None
        probability = self.probability

        verdict: None | str
        verdict = self.verdict

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "probability": probability,
                "verdict": verdict,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)

        def _parse_probability(data: object) -> float | None:
            if data is None:
                return data
            return cast(float | None, data)

        probability = _parse_probability(d.pop("probability"))

        def _parse_verdict(data: object) -> None | str:
            if data is None:
                return data
            return cast(None | str, data)

        verdict = _parse_verdict(d.pop("verdict"))

        same_person_out = cls(
            probability=probability,
            verdict=verdict,
        )

        return same_person_out
