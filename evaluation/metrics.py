"""Retrieval metrics, pure numpy.

A query's result is summarised by the 1-based ranks at which its *relevant* gallery items
(other images of the same identity) appear, plus ``n_relevant``, the number of relevant items
that exist. Every metric follows from those two, and a ranking cut at some depth (an index
that returns the top 100) is just a shorter list of ranks: relevant items that were not
returned count as never found, as in trec_eval, so figures on a cut ranking are lower bounds.

Ties are broken pessimistically (``rank_order``): among gallery items with exactly the same
score, non-relevant items rank first, then by gallery position. A tie can therefore never
make a pipeline look better than it is, and the order is deterministic.

Queries with ``n_relevant == 0`` have no defined recall, R-precision or AP (NaN); the LFW
protocol never asks them (identities with one image are in the gallery only), and
``summarize`` refuses them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "Summary",
    "average_precision",
    "precision_at_k",
    "r_precision",
    "rank1",
    "rank_order",
    "recall_at_k",
    "relevant_ranks",
    "summarize",
    "truncate",
]


def rank_order(scores: np.ndarray, relevant: np.ndarray) -> np.ndarray:
    """Gallery positions sorted best first along the last axis: by score (higher first),
    then non-relevant before relevant (pessimistic ties), then by position."""
    scores = np.asarray(scores)
    relevant = np.asarray(relevant, dtype=bool)
    position = np.broadcast_to(np.arange(scores.shape[-1]), scores.shape)
    # lexsort sorts by the last key first.
    return np.lexsort((position, relevant, -scores), axis=-1)


def relevant_ranks(ranked_relevance: np.ndarray) -> np.ndarray:
    """1-based ranks of the True entries of a best-first relevance list."""
    return np.flatnonzero(np.asarray(ranked_relevance, dtype=bool)) + 1


def truncate(ranks: np.ndarray, depth: int) -> np.ndarray:
    """The ranks a ranking cut after ``depth`` items still holds."""
    return ranks[ranks <= depth]


def rank1(ranks: np.ndarray) -> float:
    return float(len(ranks) > 0 and ranks[0] == 1)


def precision_at_k(ranks: np.ndarray, k: int) -> float:
    """Relevant items in the top ``k``, over ``k`` (also when fewer than k are relevant)."""
    if k < 1:
        raise ValueError("k must be >= 1")
    return float(np.count_nonzero(ranks <= k)) / k


def recall_at_k(ranks: np.ndarray, n_relevant: int, k: int) -> float:
    if k < 1:
        raise ValueError("k must be >= 1")
    if n_relevant == 0:
        return float("nan")
    return float(np.count_nonzero(ranks <= k)) / n_relevant


def r_precision(ranks: np.ndarray, n_relevant: int) -> float:
    """Precision at R = n_relevant (equal to recall at R)."""
    if n_relevant == 0:
        return float("nan")
    return float(np.count_nonzero(ranks <= n_relevant)) / n_relevant


def average_precision(ranks: np.ndarray, n_relevant: int) -> float:
    """Mean over the relevant items of the precision at each one's rank; items never
    retrieved contribute 0."""
    if n_relevant == 0:
        return float("nan")
    ranks = np.sort(np.asarray(ranks))
    if len(ranks) > n_relevant:
        raise ValueError(f"{len(ranks)} relevant ranks for {n_relevant} relevant items")
    hits = np.arange(1, len(ranks) + 1)
    return float(np.sum(hits / ranks)) / n_relevant


@dataclass(frozen=True)
class Summary:
    queries: int
    identities: int
    # Each figure averaged over queries, and over identities (the mean of each identity's
    # per-query mean: a person with 530 photos counts as much as one with 2).
    per_query: dict[str, float]
    per_identity: dict[str, float]
    precision_curve: list[float]  # precision@k per query, k = 1..len
    precision_curve_identity: list[float]

    def as_dict(self) -> dict[str, object]:
        return {
            "queries": self.queries,
            "identities": self.identities,
            "per_query": self.per_query,
            "per_identity": self.per_identity,
            "precision_at_k": self.precision_curve,
            "precision_at_k_per_identity": self.precision_curve_identity,
        }


def summarize(
    ranks: Sequence[np.ndarray],
    n_relevant: Sequence[int] | np.ndarray,
    identities: Sequence[object] | np.ndarray,
    *,
    k: int = 10,
    curve_to: int = 20,
) -> Summary:
    """Rank-1, precision@k, recall@k, R-precision and AP for every query, averaged."""
    n_relevant = np.asarray(n_relevant)
    if not len(ranks) == len(n_relevant) == len(identities):
        raise ValueError("ranks, n_relevant and identities must have one entry per query")
    if len(ranks) == 0:
        raise ValueError("no queries")
    if (n_relevant < 1).any():
        raise ValueError("every query needs at least one relevant item (an identity with >= 2)")
    table = np.asarray(
        [
            (
                rank1(r),
                precision_at_k(r, k),
                recall_at_k(r, int(n), k),
                r_precision(r, int(n)),
                average_precision(r, int(n)),
            )
            for r, n in zip(ranks, n_relevant, strict=True)
        ]
    )
    names = ["rank1", f"precision@{k}", f"recall@{k}", "r_precision", "map"]
    curve = np.asarray([[precision_at_k(r, j) for j in range(1, curve_to + 1)] for r in ranks])

    _, group = np.unique(np.asarray(identities, dtype=object).astype(str), return_inverse=True)
    counts = np.bincount(group)

    def by_identity(values: np.ndarray) -> np.ndarray:
        sums = np.zeros((len(counts), values.shape[1]))
        np.add.at(sums, group, values)
        return (sums / counts[:, None]).mean(axis=0)

    return Summary(
        queries=len(ranks),
        identities=len(counts),
        per_query=dict(zip(names, table.mean(axis=0).tolist(), strict=True)),
        per_identity=dict(zip(names, by_identity(table).tolist(), strict=True)),
        precision_curve=curve.mean(axis=0).tolist(),
        precision_curve_identity=by_identity(curve).tolist(),
    )
