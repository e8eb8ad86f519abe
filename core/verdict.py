"""Is a match the same person? The calibrated answer to a cosine score.

Each embedding model recipe has its calibration in ``core/calibration/<model>.json``, fitted
by ``facesearch calibrate`` on LFW's pairs with the product's own vectors (see
``evaluation/calibration.py`` and the README's "Is it the same person?"). It holds a Platt
curve from the score to the probability that the two faces are the same person, and the
score cut-offs of the three verdicts:

* ``"same"``: probability at least 0.99 (the stored ``same_at_or_above`` score);
* ``"different"``: probability at most 0.01 (``different_at_or_below``);
* ``"uncertain"``: between the two: the score alone does not answer.

The probability is for a pair drawn as LFW's pairs are, one in two the same person; it is
the evidence of the score, not the chance that a large gallery's top match is the person.

A model without a calibration file gets no verdict: ``same_person`` returns nulls and
``calibrated`` says False. A verdict is never made up.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal, TypedDict

__all__ = [
    "CALIBRATION_DIR",
    "Calibration",
    "SamePerson",
    "Verdict",
    "calibration_for",
    "same_person",
]

CALIBRATION_DIR = Path(__file__).parent / "calibration"
Verdict = Literal["same", "uncertain", "different"]
# Probabilities are rounded to 6 decimals and kept within [1e-6, 1 - 1e-6]: a curve fitted on
# 6,000 pairs cannot support "certain" either way, and an answer of exactly 1 would say so.
DIGITS = 6
FLOOR = 10**-DIGITS


class SamePerson(TypedDict):
    probability: float | None
    verdict: Verdict | None


@dataclass(frozen=True)
class Calibration:
    model: str
    weights_sha256: str
    a: float  # Platt slope, on the cosine similarity
    b: float  # Platt intercept
    same_at_or_above: float  # score cut-offs of the verdicts
    different_at_or_below: float
    threshold: float  # the most accurate single threshold on LFW's pairs (reported, not used)

    def probability(self, score: float) -> float:
        z = self.a * score + self.b
        # Written so that exp never overflows, whatever the score.
        p = 1 / (1 + math.exp(-z)) if z >= 0 else math.exp(z) / (1 + math.exp(z))
        return min(max(round(p, DIGITS), FLOOR), 1 - FLOOR)

    def verdict(self, score: float) -> Verdict:
        if score >= self.same_at_or_above:
            return "same"
        if score <= self.different_at_or_below:
            return "different"
        return "uncertain"

    def same_person(self, score: float) -> SamePerson:
        return {"probability": self.probability(score), "verdict": self.verdict(score)}

    @classmethod
    def from_file(cls, path: Path) -> Calibration:
        data = json.loads(path.read_text())
        if data.get("method") != "platt":
            raise ValueError(f"{path}: unknown calibration method {data.get('method')!r}")
        cut = data["verdicts"]["score_cutoffs"]
        return cls(
            model=str(data["model"]),
            weights_sha256=str(data["weights_sha256"]),
            a=float(data["platt"]["a"]),
            b=float(data["platt"]["b"]),
            same_at_or_above=float(cut["same_at_or_above"]),
            different_at_or_below=float(cut["different_at_or_below"]),
            threshold=float(data["threshold"]),
        )


@cache
def calibration_for(model: str | None) -> Calibration | None:
    """The calibration of ``model`` (read once per process), or None where it has none."""
    if not model or "/" in model or model.startswith("."):
        return None
    path = CALIBRATION_DIR / f"{model}.json"
    if not path.is_file():
        return None
    calibration = Calibration.from_file(path)
    if calibration.model != model:
        raise ValueError(f"{path} is the calibration of {calibration.model!r}, not {model!r}")
    return calibration


def same_person(score: float, model: str | None) -> SamePerson:
    """The probability and verdict for a match of ``score`` made by ``model``; nulls when
    the model has no calibration."""
    calibration = calibration_for(model)
    if calibration is None:
        return {"probability": None, "verdict": None}
    return calibration.same_person(score)
