"""The standard LFW verification protocol (View 2, ``pairs.txt``): 10 folds of 300 matched
and 300 mismatched pairs. For each fold, the cosine-distance threshold is the one that is
most accurate on the other nine folds; accuracy is measured on the held-out fold; the figure
is the mean and (population) standard deviation over the 10 folds, as FaceNet's
``lfw.evaluate`` reports it.

A pair with an image that has no vector (no face found) cannot be judged: it counts as an
error in its test fold whatever the threshold, and is left out when thresholds are chosen
(it would be wrong for every threshold alike).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .dataset import Pair

__all__ = ["best_threshold", "verify"]


def best_threshold(distances: np.ndarray, same: np.ndarray) -> float:
    """The threshold t maximising the accuracy of "same iff distance <= t".

    Candidates are the midpoints between consecutive distinct distances (and one below the
    smallest); of equally good ones the smallest is taken, so the choice is deterministic.
    """
    if len(distances) == 0:
        raise ValueError("no pairs to choose a threshold from")
    values = np.unique(distances)
    candidates = np.concatenate([[values[0] - 1.0], (values[:-1] + values[1:]) / 2, [values[-1]]])
    d_same = np.sort(distances[same])
    d_diff = np.sort(distances[~same])
    correct = np.searchsorted(d_same, candidates, side="right") + (
        len(d_diff) - np.searchsorted(d_diff, candidates, side="right")
    )
    return float(candidates[int(np.argmax(correct))])


def verify(
    pairs: Sequence[Pair],
    vectors: np.ndarray,
    found: np.ndarray,
    index_of: Mapping[str, int],
) -> dict[str, Any]:
    """10-fold accuracy of cosine distance on ``pairs``; ``index_of`` maps a pair's
    ``Name/Name_NNNN.jpg`` to the row of ``vectors``."""
    missing_images = sorted({k for p in pairs for k in (p.first, p.second) if k not in index_of})
    if missing_images:
        raise ValueError(f"pairs name images absent from the archive: {missing_images[:5]}")
    a = np.asarray([index_of[p.first] for p in pairs])
    b = np.asarray([index_of[p.second] for p in pairs])
    same = np.asarray([p.same for p in pairs])
    folds = np.asarray([p.fold for p in pairs])
    usable = found[a] & found[b]
    distances = 1.0 - np.sum(vectors[a].astype(np.float64) * vectors[b], axis=1)
    accuracies, usable_accuracies, thresholds = [], [], []
    for fold in np.unique(folds):
        test = folds == fold
        train = ~test & usable
        threshold = best_threshold(distances[train], same[train])
        predicted = distances[test] <= threshold
        correct = (predicted == same[test]) & usable[test]
        accuracies.append(float(correct.mean()))
        usable_accuracies.append(float(correct[usable[test]].mean()))
        thresholds.append(threshold)
    return {
        "folds": len(accuracies),
        "pairs": len(pairs),
        "pairs_without_a_vector": int((~usable).sum()),
        "accuracy_mean": float(np.mean(accuracies)),
        "accuracy_std": float(np.std(accuracies)),
        "fold_accuracies": accuracies,
        # The same thresholds, scored only on pairs where both images have a vector (how
        # published figures, which align every LFW image, are usually computed).
        "usable_pairs_accuracy_mean": float(np.mean(usable_accuracies)),
        "usable_pairs_accuracy_std": float(np.std(usable_accuracies)),
        "thresholds": thresholds,
        "distance": "cosine distance (1 - cosine similarity); same person iff <= threshold",
    }
