"""``facesearch calibrate``: from a cosine score to "is it the same person?".

A match's score (cosine similarity of two FaceNet vectors) ranks the gallery; it does not
answer. This module fits, on LFW's ``pairs.txt`` (10 folds of 300 same-person and 300
different-person pairs), with the product's own vectors (the ``mtcnn-facenet`` embedder of
``facesearch eval``, read from the same cache):

* a **threshold**: the score above which "same person" is the most accurate answer;
* a **probability** that the two faces are the same person: Platt scaling, a logistic curve
  ``p = 1 / (1 + exp(-(a * score + b)))`` fitted with Platt's smoothed targets, so it never
  says 0 or 1 from a finite sample. Isotonic regression (pool adjacent violators) is fitted
  alongside and scored the same way, as the assumption-free comparison;
* **operating points**: the score giving a false match rate (FMR: different-person pairs
  called "same") of 1e-2 and 1e-3, with the false non-match rate (FNMR: same-person pairs
  called "different") there.

Every figure is measured on held-out folds: each fold is scored with what was fitted on the
other nine. The stored calibration (``core/calibration/<model>.json``, read by
``core.verdict``) is then fitted on all the pairs.

3,000 different-person pairs cannot measure an FMR of 1e-3 (3 errors) and nothing below it.
The low-FMR tail is therefore *estimated* from every different-identity pair among all LFW
images with a face (~87 million pairs): identities are split in two halves, the threshold is
chosen on the pairs within one half and its FMR measured on the pairs within the other, and
back. These figures are estimates: the pairs share images (they are not independent), LFW's
people are mostly adult public figures photographed by the press, and LFW has a few labelling
errors that look like false matches, which sets a floor under the lowest rates.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core.verdict import CALIBRATION_DIR

from .dataset import Dataset, Pair, load_dataset, parse_pairs
from .invocation import command_line
from .verification import best_threshold

if TYPE_CHECKING:
    from workers.pipeline import FacePipeline


__all__ = [
    "FMR_TARGETS",
    "VERDICT_BANDS",
    "Platt",
    "brier_score",
    "cross_validate",
    "eval_report_notes",
    "fit_calibration",
    "fit_isotonic",
    "fit_platt",
    "isotonic_probability",
    "log_loss",
    "negative_tail",
    "reliability_table",
    "run_calibrate",
    "threshold_at_fmr",
]

# The operating points reported: FMR 1e-2 and 1e-3 are measured on the pairs' own folds;
# the smaller ones can only be estimated from the all-LFW negatives.
FMR_TARGETS = (1e-2, 1e-3, 1e-4, 1e-5, 1e-6)
# The verdict bands on the calibrated probability (core.verdict reads the score cut-offs
# fitted from them): "same" when the probability is at least SAME, "different" when at most
# DIFFERENT, "uncertain" between. 0.99 and 0.01: a verdict that is wrong at most once in a
# hundred pairs of LFW's kind; between them the score says too little to answer either way.
VERDICT_BANDS = {"same": 0.99, "different": 0.01}
GALLERY = 1_000_000  # the gallery size the operating points are translated to
RELIABILITY_BINS = 10


# --- the two calibrators ----------------------------------------------------------------


@dataclass(frozen=True)
class Platt:
    """p(same | score) = 1 / (1 + exp(-(a * score + b)))."""

    a: float
    b: float

    def probability(self, scores: np.ndarray) -> np.ndarray:
        z = self.a * np.asarray(scores, np.float64) + self.b
        # exp of a large positive number overflows; this form never does.
        return np.where(z >= 0, 1 / (1 + np.exp(-np.abs(z))), 1 - 1 / (1 + np.exp(-np.abs(z))))

    def score_at(self, probability: float) -> float:
        """The score where the curve reaches ``probability`` (a > 0: higher score, higher p)."""
        return (math.log(probability / (1 - probability)) - self.b) / self.a


def fit_platt(scores: np.ndarray, same: np.ndarray, *, iterations: int = 100) -> Platt:
    """Platt scaling by Newton's method on the log-likelihood, with Platt's (1999) smoothed
    targets: (n+ + 1) / (n+ + 2) for a same-person pair and 1 / (n- + 2) for the others, so a
    perfectly separated sample still gives a finite slope and no probability of exactly 0 or 1.
    """
    x = np.asarray(scores, np.float64)
    y = np.asarray(same, bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("Platt scaling needs both same-person and different-person pairs")
    t = np.where(y, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))
    a, b = 0.0, math.log((n_pos + 1) / (n_neg + 1))
    for _ in range(iterations):
        p = Platt(a, b).probability(x)
        w = np.maximum(p * (1 - p), 1e-12)
        grad = np.array([np.sum((p - t) * x), np.sum(p - t)])
        hess = np.array([[np.sum(w * x * x), np.sum(w * x)], [np.sum(w * x), np.sum(w)]])
        hess += np.eye(2) * 1e-9  # keeps the solve defined when every score is equal
        step = np.linalg.solve(hess, grad)
        a, b = a - float(step[0]), b - float(step[1])
        if np.max(np.abs(step)) < 1e-10:
            break
    return Platt(a, b)


def fit_isotonic(scores: np.ndarray, same: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Isotonic regression of "same" on the score (pool adjacent violators): the
    non-decreasing step function closest to the labels in squared error. Returns knots for
    ``np.interp``: each block's lowest and highest score, both at the block's fraction of
    same-person pairs (so the fit is flat across a block and linear between blocks)."""
    order = np.argsort(scores, kind="stable")
    x = np.asarray(scores, np.float64)[order]
    y = np.asarray(same, np.float64)[order]
    # Blocks as [sum of y, count, lowest x, highest x]; merged while a block's mean is not
    # below the next one's.
    blocks: list[list[float]] = []
    for xi, yi in zip(x, y, strict=True):
        blocks.append([float(yi), 1.0, float(xi), float(xi)])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] >= blocks[-1][0] / blocks[-1][1]:
            s, c, _, hi = blocks.pop()
            blocks[-1][0] += s
            blocks[-1][1] += c
            blocks[-1][3] = hi
    knots_x = np.asarray([edge for b in blocks for edge in (b[2], b[3])])
    knots_y = np.asarray([b[0] / b[1] for b in blocks for _ in (0, 1)])
    return knots_x, knots_y


def isotonic_probability(scores: np.ndarray, knots: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """The isotonic fit at ``scores``: flat within a block, linear between blocks, flat
    beyond the ends."""
    return np.interp(np.asarray(scores, np.float64), knots[0], knots[1])


# --- how good a calibration is ----------------------------------------------------------


def brier_score(p: np.ndarray, same: np.ndarray) -> float:
    """Mean squared error of the probability against the truth (0 perfect; 0.25 is what
    always saying 0.5 scores on balanced pairs)."""
    return float(np.mean((np.asarray(p, np.float64) - np.asarray(same, np.float64)) ** 2))


def log_loss(p: np.ndarray, same: np.ndarray) -> float:
    q = np.clip(np.asarray(p, np.float64), 1e-15, 1 - 1e-15)
    y = np.asarray(same, bool)
    return float(-np.mean(np.where(y, np.log(q), np.log(1 - q))))


def reliability_table(
    p: np.ndarray, same: np.ndarray, bins: int = RELIABILITY_BINS
) -> list[dict[str, Any]]:
    """Predicted against observed, by probability bin: a calibrated model's pairs predicted
    at ~0.8 are the same person ~80% of the time. Empty bins are left out."""
    p = np.asarray(p, np.float64)
    y = np.asarray(same, bool)
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, bins - 1)
    rows = []
    for b in range(bins):
        inside = which == b
        if not inside.any():
            continue
        rows.append(
            {
                "bin": [round(float(edges[b]), 2), round(float(edges[b + 1]), 2)],
                "pairs": int(inside.sum()),
                "mean_probability": round(float(p[inside].mean()), 4),
                "fraction_same": round(float(y[inside].mean()), 4),
            }
        )
    return rows


# --- operating points ---------------------------------------------------------------------


def threshold_at_fmr(negatives: np.ndarray, fmr: float) -> float:
    """The lowest score threshold t ("same" iff score >= t) whose false match rate on
    ``negatives`` is at most ``fmr``: just above the (floor(fmr * n) + 1)-th highest negative.
    With fewer than 1 / fmr negatives this is above every negative (FMR 0 on them)."""
    neg = np.sort(np.asarray(negatives, np.float64))[::-1]
    if len(neg) == 0:
        raise ValueError("no different-person scores to set a threshold from")
    allowed = math.floor(fmr * len(neg))
    if allowed >= len(neg):
        return float(neg[-1])
    return float(np.nextafter(neg[allowed], np.inf))


def match_rates(threshold: float, positives: np.ndarray, negatives: np.ndarray) -> dict[str, Any]:
    """FMR and FNMR of "same iff score >= threshold", with the error counts behind them."""
    false_matches = int(np.count_nonzero(np.asarray(negatives) >= threshold))
    false_non_matches = int(np.count_nonzero(np.asarray(positives) < threshold))
    return {
        "fmr": false_matches / len(negatives) if len(negatives) else None,
        "false_matches": false_matches,
        "negatives": len(negatives),
        "fnmr": false_non_matches / len(positives) if len(positives) else None,
        "false_non_matches": false_non_matches,
        "positives": len(positives),
    }


# --- the 10-fold protocol -----------------------------------------------------------------


def _accuracy_threshold(scores: np.ndarray, same: np.ndarray) -> float:
    # verification.best_threshold works on distances (same iff distance <= t); a score is
    # 1 - distance, so "same iff score >= 1 - t".
    return 1.0 - best_threshold(1.0 - scores, same)


def cross_validate(
    scores: np.ndarray, same: np.ndarray, folds: np.ndarray, usable: np.ndarray
) -> dict[str, Any]:
    """Each fold scored with what was fitted on the others.

    A pair without a vector on either side (no face found) counts as an error in accuracy
    (as in ``verification.verify``) and is left out of everything else: a match in the
    product always has two faces.
    """
    held_p_platt = np.full(len(scores), np.nan)
    held_p_iso = np.full(len(scores), np.nan)
    per_fold: list[dict[str, Any]] = []
    points: dict[float, list[dict[str, Any]]] = {fmr: [] for fmr in FMR_TARGETS[:2]}
    for fold in np.unique(folds):
        test = folds == fold
        train = ~test & usable
        threshold = _accuracy_threshold(scores[train], same[train])
        platt = fit_platt(scores[train], same[train])
        iso = fit_isotonic(scores[train], same[train])
        scored = test & usable
        held_p_platt[scored] = platt.probability(scores[scored])
        held_p_iso[scored] = isotonic_probability(scores[scored], iso)
        correct = ((scores[test] >= threshold) == same[test]) & usable[test]
        per_fold.append(
            {
                "fold": int(fold),
                "threshold": round(threshold, 6),
                "accuracy": float(correct.mean()),
                "platt": {"a": round(platt.a, 4), "b": round(platt.b, 4)},
            }
        )
        train_neg = scores[train & ~same]
        for fmr, rows in points.items():
            t = threshold_at_fmr(train_neg, fmr)
            rows.append(
                {"threshold": t, **match_rates(t, scores[scored & same], scores[scored & ~same])}
            )
    scored = usable
    accuracies = [f["accuracy"] for f in per_fold]
    operating = []
    for fmr, rows in points.items():
        fm = sum(r["false_matches"] for r in rows)
        neg = sum(r["negatives"] for r in rows)
        fnm = sum(r["false_non_matches"] for r in rows)
        pos = sum(r["positives"] for r in rows)
        operating.append(
            {
                "target_fmr": fmr,
                "threshold_mean": round(float(np.mean([r["threshold"] for r in rows])), 6),
                "threshold_range": [
                    round(min(r["threshold"] for r in rows), 6),
                    round(max(r["threshold"] for r in rows), 6),
                ],
                "fmr": fm / neg,
                "false_matches": fm,
                "negatives": neg,
                "fnmr": fnm / pos,
                "false_non_matches": fnm,
                "positives": pos,
                # At FMR f, each fold's threshold stands on ~f x 2,700 training negatives.
                "negatives_behind_each_threshold": round(fmr * float(np.sum(~same & usable)), 1),
            }
        )
    return {
        "pairs": len(scores),
        "pairs_without_a_vector": int((~usable).sum()),
        "accuracy_mean": float(np.mean(accuracies)),
        "accuracy_std": float(np.std(accuracies)),
        "folds": per_fold,
        "platt": _calibration_quality(held_p_platt[scored], same[scored]),
        "isotonic": _calibration_quality(held_p_iso[scored], same[scored]),
        "operating_points": operating,
        "_held_out_platt": held_p_platt,
    }


def _calibration_quality(p: np.ndarray, same: np.ndarray) -> dict[str, Any]:
    return {
        "brier": round(brier_score(p, same), 6),
        "log_loss": round(log_loss(p, same), 6),
        "reliability": reliability_table(p, same),
    }


# --- the low-FMR tail from all of LFW -----------------------------------------------------


def negative_tail(
    vectors: np.ndarray,
    found: np.ndarray,
    labels: Sequence[str],
    positives: np.ndarray,
    *,
    seed: int = 0,
    chunk: int = 1024,
) -> dict[str, Any]:
    """Thresholds at FMR_TARGETS from every different-identity pair among the images with a
    vector, chosen on one half of the identities and measured on the other (both ways).

    ``positives`` are the held-out same-person scores (pairs.txt's) the FNMR is read from.
    Only the top of each half's negatives is kept (twice what the largest FMR target
    needs), so memory stays small though a half holds ~20 million pairs.
    """
    rows = np.flatnonzero(found)
    v = np.asarray(vectors[rows], np.float32)
    names = np.asarray(labels)[rows]
    identities, ids = np.unique(names, return_inverse=True)
    rng = np.random.default_rng(seed)
    half = rng.permutation(len(identities)) % 2  # an identity's half: 0 or 1
    side = half[ids]
    keep = [
        _top_negatives(v, ids, side, h, fraction=FMR_TARGETS[0] * 2, chunk=chunk) for h in (0, 1)
    ]
    estimates = []
    for fmr in FMR_TARGETS:
        both = []
        for chosen_on, measured_on in ((0, 1), (1, 0)):
            top, total = keep[chosen_on]
            t = _threshold_from_top(top, total, fmr)
            top_m, total_m = keep[measured_on]
            fm = int(np.count_nonzero(top_m >= t))
            both.append(
                {
                    "threshold": t,
                    "fmr": fm / total_m,
                    "false_matches": fm,
                    "negatives": total_m,
                    "fnmr": float(np.mean(positives < t)),
                    "false_non_matches": int(np.count_nonzero(positives < t)),
                    "positives": len(positives),
                }
            )
        estimates.append(
            {
                "target_fmr": fmr,
                "threshold_mean": round(float(np.mean([b["threshold"] for b in both])), 6),
                "fmr": sum(b["false_matches"] for b in both) / sum(b["negatives"] for b in both),
                "false_matches": sum(b["false_matches"] for b in both),
                "negatives": sum(b["negatives"] for b in both),
                "fnmr": float(np.mean([b["fnmr"] for b in both])),
                "halves": both,
                # From the FMR measured on the other half, not the target: the tail does not
                # carry over exactly from one set of people to another.
                "expected_false_matches_in_a_million": round(
                    sum(b["false_matches"] for b in both)
                    / sum(b["negatives"] for b in both)
                    * GALLERY,
                    1,
                ),
            }
        )
    return {
        "images": len(rows),
        "identities": len(identities),
        "negatives_per_half": [int(keep[0][1]), int(keep[1][1])],
        "split_seed": seed,
        "operating_points": estimates,
        "_top": keep,
    }


def _top_negatives(
    v: np.ndarray, ids: np.ndarray, side: np.ndarray, which: int, *, fraction: float, chunk: int
) -> tuple[np.ndarray, int]:
    """The highest ``fraction`` of the different-identity scores among images of half
    ``which`` (each unordered pair once), and how many such pairs there are."""
    members = np.flatnonzero(side == which)
    vm, im = v[members], ids[members]
    n = len(members)
    total = 0
    parts: list[np.ndarray] = []
    floor = -np.inf
    for start in range(0, n, chunk):
        block = vm[start : start + chunk] @ vm[start:].T  # pairs (i, j) with j >= i
        i_ids = im[start : start + chunk, None]
        j_ids = im[None, start:]
        upper = np.triu(np.ones(block.shape, bool), k=1)
        different = upper & (i_ids != j_ids)
        total += int(different.sum())
        scores = block[different]
        parts.append(scores[scores > floor])
        # Keep the working set small: once enough is held, drop what cannot be in the top.
        held = np.concatenate(parts)
        need = math.ceil(fraction * total) + 1
        if len(held) > 4 * need:
            floor = float(np.partition(held, len(held) - need)[len(held) - need])
            held = held[held >= floor]
        parts = [held]
    top = np.sort(np.concatenate(parts))[::-1]
    need = math.ceil(fraction * total) + 1
    return top[:need], total


def _threshold_from_top(top: np.ndarray, total: int, fmr: float) -> float:
    allowed = math.floor(fmr * total)
    if allowed >= len(top):
        raise ValueError("kept too few negatives for this FMR")
    return float(np.nextafter(top[allowed], np.inf))


# --- the stored calibration ---------------------------------------------------------------


def fit_calibration(scores: np.ndarray, same: np.ndarray) -> dict[str, Any]:
    """What core.verdict needs, fitted on every usable pair: the Platt curve, the most
    accurate threshold, and the score cut-offs of the verdict bands."""
    platt = fit_platt(scores, same)
    threshold = _accuracy_threshold(scores, same)
    return {
        "method": "platt",
        "platt": {"a": platt.a, "b": platt.b},
        "threshold": threshold,
        "probability_at_threshold": float(platt.probability(np.asarray([threshold]))[0]),
        "verdicts": {
            "same": {"min_probability": VERDICT_BANDS["same"]},
            "different": {"max_probability": VERDICT_BANDS["different"]},
            "score_cutoffs": {
                "same_at_or_above": platt.score_at(VERDICT_BANDS["same"]),
                "different_at_or_below": platt.score_at(VERDICT_BANDS["different"]),
            },
        },
    }


def _pair_scores(
    pairs: Sequence[Pair], vectors: np.ndarray, found: np.ndarray, index_of: Mapping[str, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    a = np.asarray([index_of[p.first] for p in pairs])
    b = np.asarray([index_of[p.second] for p in pairs])
    scores = np.sum(vectors[a].astype(np.float64) * vectors[b], axis=1)
    same = np.asarray([p.same for p in pairs])
    folds = np.asarray([p.fold for p in pairs])
    return scores, same, folds, found[a] & found[b]


def _verdict_rates(fitted: dict[str, Any], scores: np.ndarray, same: np.ndarray) -> dict[str, Any]:
    """How the verdicts fall on the (usable) pairs, by truth: in-sample, for the README."""
    cut = fitted["verdicts"]["score_cutoffs"]
    verdict = np.where(
        scores >= cut["same_at_or_above"],
        "same",
        np.where(scores <= cut["different_at_or_below"], "different", "uncertain"),
    )
    return {
        truth: {
            v: int(np.count_nonzero((verdict == v) & mask))
            for v in ("same", "uncertain", "different")
        }
        for truth, mask in (("same_person_pairs", same), ("different_person_pairs", ~same))
    }


def calibrate(
    dataset: Dataset, pairs: Sequence[Pair], vectors: np.ndarray, found: np.ndarray
) -> dict[str, Any]:
    """Everything ``facesearch calibrate`` reports and stores, from the product's vectors."""
    scores, same, folds, usable = _pair_scores(pairs, vectors, found, dataset.index_of())
    held = cross_validate(scores, same, folds, usable)
    positives = scores[usable & same]
    tail = negative_tail(vectors, found, dataset.labels, positives)
    fitted = fit_calibration(scores[usable], same[usable])
    platt = Platt(**fitted["platt"])
    # The verdict cut-offs' own error rates: FNMR on the pairs, FMR estimated on every
    # all-LFW negative (both halves; the cut-offs were not chosen on them).
    tops, totals = zip(*tail["_top"], strict=True)
    negatives_top, negatives_total = np.concatenate(tops), sum(totals)
    cut = fitted["verdicts"]["score_cutoffs"]
    at_cutoffs = {}
    for name, t in (("same", cut["same_at_or_above"]), ("accuracy", fitted["threshold"])):
        false_matches = int(np.count_nonzero(negatives_top >= t))
        at_cutoffs[name] = {
            "threshold": t,
            "fmr_estimate": false_matches / negatives_total,
            "false_matches": false_matches,
            "negatives": negatives_total,
            "fnmr": float(np.mean(positives < t)),
            "expected_false_matches_in_a_million": false_matches / negatives_total * GALLERY,
        }
    return {
        "rates_at_cutoffs": at_cutoffs,
        "held_out": held,
        "tail": tail,
        "fitted": fitted,
        "verdicts_on_pairs": _verdict_rates(fitted, scores[usable], same[usable]),
        "platt_at_operating_points": [
            {
                "target_fmr": p["target_fmr"],
                "threshold": p["threshold_mean"],
                "probability": float(platt.probability(np.asarray([p["threshold_mean"]]))[0]),
            }
            for p in tail["operating_points"]
        ],
    }


def _public(value: Any) -> Any:
    """A report without its private (underscored) working arrays, JSON-ready."""
    if isinstance(value, dict):
        return {k: _public(v) for k, v in value.items() if not str(k).startswith("_")}
    if isinstance(value, list | tuple):
        return [_public(v) for v in value]
    if isinstance(value, np.floating | np.integer):
        return value.item()
    return value


def calibration_file(
    result: dict[str, Any], *, model: str, weights_sha256: str, recipe: dict[str, Any], command: str
) -> dict[str, Any]:
    """The committed calibration of one model recipe: the fitted numbers plus the held-out
    figures that justify them (core.verdict reads only the first)."""
    held, tail = result["held_out"], result["tail"]
    return {
        "model": model,
        "weights_sha256": weights_sha256,
        "recipe": recipe,
        "score": "cosine similarity of the two faces' vectors (a match's `score`)",
        **_public(result["fitted"]),
        "prior": "the probability is for a pair drawn as LFW's pairs are: one in two the same "
        "person. It is not the chance that a gallery's top match is the query's person.",
        "fitted_on": "LFW pairs.txt (View 2): 10 folds of 300 + 300 pairs, every usable pair",
        "held_out": {
            "accuracy_mean": round(held["accuracy_mean"], 6),
            "accuracy_std": round(held["accuracy_std"], 6),
            "brier": held["platt"]["brier"],
            "log_loss": held["platt"]["log_loss"],
            "operating_points": _public(held["operating_points"]),
        },
        "rates_at_cutoffs": _public(result["rates_at_cutoffs"]),
        "tail_estimates": [
            {k: p[k] for k in ("target_fmr", "threshold_mean", "fmr", "fnmr")}
            for p in _public(tail["operating_points"])
        ],
        "command": command,
    }


def write_report(result: dict[str, Any], path: Path, extra: dict[str, Any]) -> Path:
    """The full report as JSON at ``path`` and as Markdown beside it (``.md``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    public = {**extra, **_public(result)}
    path.write_text(json.dumps(public, indent=2, sort_keys=True) + "\n")
    markdown = path.with_suffix(".md")
    markdown.write_text("\n".join(markdown_report(public)) + "\n")
    return markdown


def _rate(value: float) -> str:
    return f"{value:.2e}" if 0 < value < 1e-3 else f"{value:.4f}"


def markdown_report(report: dict[str, Any]) -> list[str]:
    """docs/calibration.md: what a person reads to trust (or not) the verdicts."""
    held, tail, fitted = report["held_out"], report["tail"], report["fitted"]
    cut = fitted["verdicts"]["score_cutoffs"]
    lines = [
        "# Is it the same person? Calibration on LFW's pairs",
        "",
        "Made with:",
        "",
        "```sh",
        report["command"],
        "```",
        "",
        f"Recipe: `{json.dumps(report['recipe'], sort_keys=True)}`. Scores are cosine "
        "similarities of the product's vectors (a match's `score`); embeddings from "
        f"`{report['embedding_cache']}`.",
        "",
        "## Held out (10 folds of `pairs.txt`, each scored with what the other nine fitted)",
        "",
        f"- pairs: {held['pairs']:,} ({held['pairs_without_a_vector']} with an image without a "
        "face: errors in accuracy, left out of the rest)",
        f"- accuracy at the most accurate threshold: {100 * held['accuracy_mean']:.2f} ± "
        f"{100 * held['accuracy_std']:.2f}% (threshold on all pairs: {fitted['threshold']:.4f})",
        f"- Platt scaling: Brier {held['platt']['brier']:.5f}, log loss "
        f"{held['platt']['log_loss']:.4f}; isotonic: Brier {held['isotonic']['brier']:.5f}, "
        f"log loss {held['isotonic']['log_loss']:.4f}",
        "",
        "Reliability of the held-out Platt probabilities:",
        "",
        "| probability | pairs | mean predicted | fraction the same person |",
        "|---|---|---|---|",
        *[
            f"| {r['bin'][0]:.1f}-{r['bin'][1]:.1f} | {r['pairs']} | {r['mean_probability']:.4f} "
            f"| {r['fraction_same']:.4f} |"
            for r in held["platt"]["reliability"]
        ],
        "",
        "Operating points on the held-out folds (each fold's threshold chosen on the other "
        "nine folds' different-person pairs):",
        "",
        "| target FMR | threshold (mean; range) | FMR | FNMR |",
        "|---|---|---|---|",
        *[
            f"| {p['target_fmr']:g} | {p['threshold_mean']:.4f}; {p['threshold_range'][0]:.4f}-"
            f"{p['threshold_range'][1]:.4f} | {_rate(p['fmr'])} ({p['false_matches']}/"
            f"{p['negatives']}) | {_rate(p['fnmr'])} ({p['false_non_matches']}/"
            f"{p['positives']}) |"
            for p in held["operating_points"]
        ],
        "",
        "At FMR 1e-3 each fold's threshold stands on about 3 training pairs: too few to set or "
        "measure it well. The estimates below use far more.",
        "",
        "## Estimated tail (all LFW, different-identity pairs)",
        "",
        f"{tail['images']:,} images with a face, {tail['identities']:,} people, split at random "
        f"(seed {tail['split_seed']}) into two halves of identities with "
        f"{tail['negatives_per_half'][0]:,} and {tail['negatives_per_half'][1]:,} "
        "different-person pairs within each. Each threshold is chosen on one half and its FMR "
        "measured on the other (both ways, summed); the FNMR is on `pairs.txt`'s same-person "
        "pairs. Estimates: the pairs share images, and LFW's few labelling errors count as "
        "false matches.",
        "",
        "| target FMR | threshold | FMR measured on the other half | FNMR | false matches per "
        "search in a gallery of 1,000,000 |",
        "|---|---|---|---|---|",
        *[
            f"| {p['target_fmr']:g} | {p['threshold_mean']:.4f} | {_rate(p['fmr'])} "
            f"({p['false_matches']}/{p['negatives']:,}) | {_rate(p['fnmr'])} | "
            f"{p['expected_false_matches_in_a_million']:,.0f} |"
            for p in tail["operating_points"]
        ],
        "",
        "## The stored calibration",
        "",
        f"Platt curve p = 1 / (1 + exp(-(a·score + b))), a = {fitted['platt']['a']:.4f}, "
        f"b = {fitted['platt']['b']:.4f}, fitted on every usable pair. Verdicts: `same` at "
        f"score ≥ {cut['same_at_or_above']:.4f} (p ≥ {VERDICT_BANDS['same']}), `different` at "
        f"score ≤ {cut['different_at_or_below']:.4f} (p ≤ {VERDICT_BANDS['different']}), "
        "`uncertain` between. On the pairs (in sample):",
        "",
        "| pairs | same | uncertain | different |",
        "|---|---|---|---|",
        *[
            f"| {truth.replace('_', ' ')} | {row['same']} | {row['uncertain']} | "
            f"{row['different']} |"
            for truth, row in report["verdicts_on_pairs"].items()
        ],
        "",
        *[
            f"At the {name} cut-off (score {r['threshold']:.4f}): FNMR {_rate(r['fnmr'])} on "
            f"the pairs; FMR estimated on all {r['negatives']:,} all-LFW negatives "
            f"{_rate(r['fmr_estimate'])} ({r['false_matches']:,}), i.e. "
            f"{r['expected_false_matches_in_a_million']:,.0f} strangers a search at or above "
            "it in a gallery of 1,000,000."
            for name, r in report["rates_at_cutoffs"].items()
        ],
        "",
        "Probability at the estimated operating points (a `min_probability` of this selects "
        "the point): "
        + ", ".join(
            f"FMR {p['target_fmr']:g}: {p['probability']:.6f}"
            for p in report["platt_at_operating_points"]
        )
        + ".",
        "",
        f"Wall time: {report['seconds']:.0f} s.",
    ]
    return lines


# --- the command ----------------------------------------------------------------------------


def run_calibrate(
    *,
    archive: Path,
    pairs_path: Path,
    cache_dir: Path,
    out_dir: Path,
    report_path: Path | None,
    pipeline: FacePipeline,
) -> dict[str, Any]:
    """Embed (or read from the eval cache) every LFW image with the product's path, fit, and
    write ``out_dir/<model>.json`` and the full report."""
    from .embedders import EmbeddingCache, FaceNetMtcnn, embed_dataset  # noqa: PLC0415

    started = time.perf_counter()
    dataset = load_dataset(archive)
    pairs = parse_pairs(pairs_path.read_text().splitlines())
    embedder = FaceNetMtcnn(pipeline)
    cache = EmbeddingCache(cache_dir, embedder)
    embedded, _ = embed_dataset(embedder, dataset, cache)
    result = calibrate(dataset, pairs, embedded.vectors, embedded.found)
    command = command_line()
    stored = calibration_file(
        result,
        model=pipeline.embedding_version,
        weights_sha256=pipeline.spec.weights_sha256,
        recipe=embedder.describe(),
        command=command,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    # By the embedding version: a search looks its verdicts up by the version it was served
    # from (``core.verdict``), and another recipe's scores are another curve.
    path = out_dir / f"{pipeline.embedding_version}.json"
    path.write_text(json.dumps(stored, indent=2, sort_keys=True) + "\n")
    result["_paths"] = {"calibration": path}
    if report_path is not None:
        markdown = write_report(
            result,
            report_path,
            {
                "command": command,
                "archive": str(archive),
                "pairs": str(pairs_path),
                "embedding_cache": str(cache.path),
                "recipe": embedder.describe(),
                "seconds": round(time.perf_counter() - started, 1),
            },
        )
        result["_paths"] |= {"report": report_path, "markdown": markdown}
    return result


# --- a paragraph in facesearch eval's report --------------------------------------------------


def eval_report_notes(embedders: Mapping[str, Any]) -> list[str]:
    """What ``docs/evaluation.md`` says of the same-person calibration of the product's
    vectors: the committed file's held-out figures, if it is of this very recipe."""
    info = embedders.get("mtcnn-facenet")
    if not info:
        return []
    recipe = info["description"]
    # Calibrations are named by embedding version (the model alone for the original recipe).
    path = CALIBRATION_DIR / f"{recipe.get('embedding_version', recipe['model'])}.json"
    if not path.is_file():
        return []
    stored = json.loads(path.read_text())
    if stored.get("recipe") != recipe:
        return [
            "### Same-person calibration",
            "",
            f"`{path.name}` was fitted on another recipe of these vectors: refit it with "
            "`facesearch calibrate`.",
            "",
        ]
    held, cut = stored["held_out"], stored["verdicts"]["score_cutoffs"]
    points = {p["target_fmr"]: p for p in stored["tail_estimates"]}
    strict = points.get(1e-3)
    return [
        "### Same-person calibration",
        "",
        "`facesearch calibrate` fits, on these pairs and these vectors, the probability that "
        "a match is the same person and the verdicts every match carries (`same_person` in the "
        f"API; `core/calibration/{path.name}`, details in `docs/calibration.md`): held out, "
        f"accuracy {100 * held['accuracy_mean']:.2f} ± {100 * held['accuracy_std']:.2f}% at "
        f"score {stored['threshold']:.4f}, Brier {held['brier']:.5f}; `same` at score ≥ "
        f"{cut['same_at_or_above']:.4f}, `different` at ≤ {cut['different_at_or_below']:.4f}"
        + (
            f"; FMR 1e-3 (estimated on all-LFW negatives) at score {strict['threshold_mean']:.4f}"
            f" with FNMR {100 * strict['fnmr']:.2f}%."
            if strict
            else "."
        ),
        "",
    ]
