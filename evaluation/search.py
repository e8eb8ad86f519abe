"""Ranking the gallery for every query: exact k-NN in numpy, or through the product's index.

The gallery is every image that has a vector (an image where the detector found no face is
not indexed by the product, so it cannot be retrieved); each query's own image is left out of
its ranking. The output is, per query, the ranks of its relevant items (``metrics``).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .metrics import rank_order, relevant_ranks

__all__ = ["Retrieval", "exact_knn", "index_knn", "neighbour_recall"]

TOP = 10  # kept per query for the showcase and the picture


@dataclass
class Retrieval:
    ranks: list[np.ndarray]  # per query: 1-based ranks of its relevant items
    top: np.ndarray  # (queries, TOP) dataset indices, best first; -1 where there is none
    top_scores: np.ndarray  # (queries, TOP) cosine similarities; NaN where there is none
    neighbours: np.ndarray  # (queries, depth kept) dataset indices, best first; -1: none
    depth: int | None  # None: the whole gallery is ranked; else rankings stop there
    seconds: float  # ranking wall time (for the index: build + search)
    details: dict[str, Any]


def _empty_top(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.full((n, TOP), -1, np.int64), np.full((n, TOP), np.nan, np.float32)


def exact_knn(
    vectors: np.ndarray,
    found: np.ndarray,
    labels: np.ndarray,
    queries: Sequence[int] | np.ndarray,
    *,
    block: int = 256,
    keep: int = 100,
) -> Retrieval:
    """Cosine similarity of each query against the whole gallery, fully sorted (pessimistic
    ties), in blocks of ``block`` queries (256 x 13k floats: ~13 MB a block). The first
    ``keep`` neighbours of each query are kept (to measure an index's recall against them)."""
    started = time.perf_counter()
    gallery = np.flatnonzero(found)
    where = np.full(len(found), -1)
    where[gallery] = np.arange(len(gallery))
    g_vectors = vectors[gallery].astype(np.float32)
    g_labels = labels[gallery]
    ranks: list[np.ndarray] = [np.empty(0, np.int64) for _ in queries]
    top, top_scores = _empty_top(len(queries))
    neighbours = np.full((len(queries), keep), -1, np.int64)
    n_keep = min(keep, len(gallery) - 1)
    todo = [(qi, int(q)) for qi, q in enumerate(queries) if found[q]]
    for start in range(0, len(todo), block):
        part = todo[start : start + block]
        rows = np.asarray([qi for qi, _ in part])
        items = np.asarray([q for _, q in part])
        scores = vectors[items].astype(np.float32) @ g_vectors.T
        relevant = g_labels[None, :] == labels[items][:, None]
        # The query's own image: out of the ranking (last, and not relevant).
        own = np.arange(len(part)), where[items]
        scores[own] = -np.inf
        relevant[own] = False
        order = rank_order(scores, relevant)
        ranked = np.take_along_axis(relevant, order, axis=1)
        for k, qi in enumerate(rows):
            ranks[qi] = relevant_ranks(ranked[k])
        n_top = min(TOP, len(gallery) - 1)
        top[rows, :n_top] = gallery[order[:, :n_top]]
        top_scores[rows, :n_top] = np.take_along_axis(scores, order[:, :n_top], axis=1)
        neighbours[rows, :n_keep] = gallery[order[:, :n_keep]]
    return Retrieval(
        ranks=ranks,
        top=top,
        top_scores=top_scores,
        neighbours=neighbours,
        depth=None,
        seconds=time.perf_counter() - started,
        details={"method": "exact cosine k-NN (numpy, float32)", "gallery": len(gallery)},
    )


def index_knn(
    vectors: np.ndarray,
    found: np.ndarray,
    labels: np.ndarray,
    queries: Sequence[int] | np.ndarray,
    *,
    model_name: str,
    index_type: str,
    search_ef: int,
    depth: int,
    work_dir: Path,
    batch: int = 256,
) -> Retrieval:
    """The same rankings through the product's ``VectorIndex`` on a fresh milvus-lite index.

    Each query asks for ``depth + 1`` hits (its own image comes back too and is dropped), so
    rankings stop at ``depth``. Hits are re-sorted with the same pessimistic tie rule.
    """
    from core.index import VectorIndex  # noqa: PLC0415 - pymilvus: only for this pipeline

    started = time.perf_counter()
    gallery = np.flatnonzero(found)
    ranks: list[np.ndarray] = [np.empty(0, np.int64) for _ in queries]
    top, top_scores = _empty_top(len(queries))
    neighbours = np.full((len(queries), depth), -1, np.int64)
    work_dir.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="milvus-", dir=work_dir))
    index = VectorIndex(str(folder / "index.db"), index_type=index_type, search_ef=search_ef)
    try:
        # Ids are dataset positions + 1 (face and image ids are positive in the product).
        index.upsert(
            model_name,
            face_ids=(gallery + 1).tolist(),
            vectors=vectors[gallery],
            image_ids=(gallery + 1).tolist(),
            gallery_ids=[0] * len(gallery),
        )
        built = time.perf_counter()
        todo = [(qi, int(q)) for qi, q in enumerate(queries) if found[q]]
        for start in range(0, len(todo), batch):
            part = todo[start : start + batch]
            hits = index.search(model_name, vectors[[q for _, q in part]], depth + 1, gallery_id=0)
            for (qi, q), found_hits in zip(part, hits, strict=True):
                got = [(h.face_id - 1, h.score) for h in found_hits if h.face_id - 1 != q]
                ids = np.asarray([g for g, _ in got], np.int64)
                scores = np.asarray([s for _, s in got], np.float32)
                relevant = labels[ids] == labels[q]
                order = rank_order(scores, relevant)[:depth]
                ranks[qi] = relevant_ranks(relevant[order])
                n_top = min(TOP, len(order))
                top[qi, :n_top] = ids[order[:n_top]]
                top_scores[qi, :n_top] = scores[order[:n_top]]
                neighbours[qi, : len(order)] = ids[order]
        searched = time.perf_counter()
        rows = index.count(model_name)
    finally:
        index.close()
        shutil.rmtree(folder, ignore_errors=True)
    return Retrieval(
        ranks=ranks,
        top=top,
        top_scores=top_scores,
        neighbours=neighbours,
        depth=depth,
        seconds=searched - started,
        details={
            "method": "core.index.VectorIndex on milvus-lite (a fresh index, one writer)",
            "collection": VectorIndex.collection_name(model_name),
            "index_type": index_type,
            "metric": "IP on L2-normalised vectors (cosine)",
            "hnsw_m": index.hnsw_m,
            "hnsw_ef_construction": index.hnsw_ef_construction,
            "search_ef": search_ef,
            "effective_ef": max(search_ef, depth + 1),
            "limit": depth + 1,
            "depth": depth,
            "rows": rows,
            "build_seconds": round(built - started, 2),
            "search_seconds": round(searched - built, 2),
            "queries_per_second": round(len(todo) / max(searched - built, 1e-9), 1),
        },
    )


def neighbour_recall(approximate: Retrieval, exact: Retrieval) -> float:
    """Mean share of each query's exact top ``depth`` that the index returned (queries that
    have neighbours): the index's recall, independent of who the faces are."""
    depth = approximate.neighbours.shape[1]
    shares = []
    for got, truth in zip(approximate.neighbours, exact.neighbours[:, :depth], strict=True):
        wanted = truth[truth >= 0]
        if len(wanted):
            shares.append(len(np.intersect1d(got[got >= 0], wanted)) / len(wanted))
    return float(np.mean(shares)) if shares else float("nan")
