"""``facesearch eval``: the whole evaluation, from the archive to the report.

Every image of every identity with two or more images is a query; the gallery is every image
minus the query itself. Each named pipeline is an embedder (``embedders``) plus a way to rank
(exact k-NN in numpy, or the product's ``VectorIndex``). Vectors are cached by image hash, so
only the first run embeds.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .dataset import Dataset, Pair, load_dataset, parse_pairs
from .embedders import (
    Embedder,
    EmbeddingCache,
    EmbedResult,
    FaceNetCentreCrop,
    FaceNetMtcnn,
    ResNet50Embedder,
    WeightsUnavailableError,
    embed_dataset,
)
from .invocation import redacted
from .metrics import summarize, truncate
from .search import Retrieval, exact_knn, index_knn, neighbour_recall
from .verification import verify

if TYPE_CHECKING:
    from workers.pipeline import FacePipeline

__all__ = ["PIPELINES", "EvalConfig", "Pipeline", "evaluate", "queries_of"]


@dataclass(frozen=True)
class Pipeline:
    name: str
    embedder: str  # which embedder makes its vectors (pipelines may share one)
    ranking: str  # "exact" or "index"
    description: str


PIPELINES: dict[str, Pipeline] = {
    p.name: p
    for p in (
        Pipeline(
            "resnet50-knn",
            "resnet50",
            "exact",
            "whole image (centred square, 224 px) -> Keras ResNet50 ImageNet, 2048-d avg pool "
            "-> exact cosine k-NN",
        ),
        Pipeline(
            "mtcnn-resnet50-knn",
            "mtcnn-resnet50",
            "exact",
            "MTCNN face crop (224 px) -> Keras ResNet50 ImageNet, 2048-d avg pool "
            "-> exact cosine k-NN",
        ),
        Pipeline(
            "facenet-nodetect-knn",
            "facenet-nodetect",
            "exact",
            "whole image (centred square, 160 px) -> FaceNet -> exact cosine k-NN",
        ),
        Pipeline(
            "mtcnn-facenet-knn",
            "mtcnn-facenet",
            "exact",
            "the product's MTCNN + crop + FaceNet -> exact cosine k-NN",
        ),
        Pipeline(
            "mtcnn-facenet-milvus",
            "mtcnn-facenet",
            "index",
            "the product's path: MTCNN + crop + FaceNet -> the product's VectorIndex "
            "(milvus-lite) with its index settings",
        ),
    )
}


@dataclass
class EvalConfig:
    archive: Path
    pairs: Path | None
    out_dir: Path
    cache_dir: Path
    pipelines: list[str] = field(default_factory=lambda: list(PIPELINES))
    resnet50_weights: Path | None = None
    index_type: str = "HNSW"
    search_ef: int = 512
    depth: int = 100  # the index's rankings stop here (the API's largest top_k)
    k: int = 10
    showcase: str = "Albert_Costa"
    name: str = "evaluation"  # file names of the report
    command: str = ""


def queries_of(labels: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Query positions (images of identities with >= 2 images) and their relevant counts."""
    _, ids, counts = np.unique(np.asarray(labels), return_inverse=True, return_counts=True)
    per_image = counts[ids]
    queries = np.flatnonzero(per_image >= 2)
    return queries, per_image[queries] - 1


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for package in ("tensorflow-cpu", "keras", "mtcnn", "pymilvus", "milvus-lite", "numpy"):
        try:
            out[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            out[package] = "not installed"
    return out


def _make_embedder(name: str, config: EvalConfig, pipeline: Callable[[], FacePipeline]) -> Embedder:
    if name == "mtcnn-facenet":
        return FaceNetMtcnn(pipeline())
    if name == "facenet-nodetect":
        return FaceNetCentreCrop(pipeline())
    if name == "resnet50":
        return ResNet50Embedder(config.resnet50_weights)
    if name == "mtcnn-resnet50":
        # Checked before the detector is asked for, so a missing file costs nothing.
        ResNet50Embedder(config.resnet50_weights)
        return ResNet50Embedder(config.resnet50_weights, detect_with=pipeline())
    raise ValueError(f"unknown embedder {name!r}")


def _showcase(
    dataset: Dataset, queries: np.ndarray, retrieval: Retrieval, who: str, k: int
) -> list[dict[str, Any]]:
    rows = []
    for qi, q in enumerate(queries):
        if dataset.labels[q] != who:
            continue
        top = [int(i) for i in retrieval.top[qi] if i >= 0][:k]
        rows.append(
            {
                "query": dataset.key(int(q)),
                "found_in_top": int(np.count_nonzero(retrieval.ranks[qi] <= k)),
                "others": int(dataset.labels.count(who) - 1),
                "top": [
                    {"image": dataset.key(i), "score": round(float(s), 4)}
                    for i, s in zip(top, retrieval.top_scores[qi], strict=False)
                ],
            }
        )
    return rows


def _embed_all(
    config: EvalConfig,
    dataset: Dataset,
    queries: np.ndarray,
    pairs: list[Pair] | None,
    *,
    pipeline: Callable[[], FacePipeline],
    progress: Callable[[str, int], Callable[[int], None]] | None,
) -> tuple[dict[str, EmbedResult | str], dict[str, dict[str, Any]]]:
    """Each needed embedder's vectors (or why it did not run), and what to report about it."""
    embeddings: dict[str, EmbedResult | str] = {}
    embedder_info: dict[str, dict[str, Any]] = {}
    for name in dict.fromkeys(PIPELINES[p].embedder for p in config.pipelines):
        try:
            embedder = _make_embedder(name, config, pipeline)
        except WeightsUnavailableError as exc:
            embeddings[name] = f"not run: weights unavailable: {exc}"
            continue
        cache = EmbeddingCache(config.cache_dir, embedder)
        todo = len(cache.missing(dataset.hashes))
        tick = progress(name, todo) if progress is not None and todo else None
        result, spent = embed_dataset(embedder, dataset, cache, progress=tick)
        embeddings[name] = result
        embedder_info[name] = {
            "description": embedder.describe(),
            "cache": str(cache.path),
            "images": len(dataset),
            "embedded_now": todo,
            "embedding_seconds_this_run": round(spent, 1),
            "embedding_seconds_total": round(cache.seconds, 1),
            "images_without_a_vector": int((~result.found).sum()),
            "images_with_several_faces": int((result.faces > 1).sum()),
            "queries_without_a_vector": int((~result.found[queries]).sum()),
            "without_a_vector": [dataset.key(int(i)) for i in np.flatnonzero(~result.found)],
        }
        if pairs is not None:
            embedder_info[name]["verification"] = verify(
                pairs, result.vectors, result.found, dataset.index_of()
            )
    return embeddings, embedder_info


def evaluate(
    config: EvalConfig,
    *,
    pipeline: Callable[[], FacePipeline],
    dataset: Dataset | None = None,
    pairs_lines: list[str] | None = None,
    progress: Callable[[str, int], Callable[[int], None]] | None = None,
) -> dict[str, Any]:
    """Run the configured pipelines; return the report's data (``report.write`` writes it).

    ``pipeline`` returns the loaded product ``FacePipeline`` (called only if a pipeline
    needs it). ``dataset`` and ``pairs_lines`` override the archive and pairs file (tests).
    ``progress(label, total)`` returns a callback that is told how many images were done.
    """
    unknown = [p for p in config.pipelines if p not in PIPELINES]
    if unknown:
        raise ValueError(f"unknown pipelines {unknown}; known: {', '.join(PIPELINES)}")
    started = time.perf_counter()
    if dataset is None:
        dataset = load_dataset(config.archive)
    read_seconds = time.perf_counter() - started
    labels = np.asarray(dataset.label_ids())
    queries, n_relevant = queries_of(dataset.labels)
    query_labels = [dataset.labels[q] for q in queries]
    if pairs_lines is None and config.pairs is not None and config.pairs.is_file():
        pairs_lines = config.pairs.read_text().splitlines()
    pairs = parse_pairs(pairs_lines) if pairs_lines else None

    embeddings, embedder_info = _embed_all(
        config, dataset, queries, pairs, pipeline=pipeline, progress=progress
    )

    rows: dict[str, dict[str, Any]] = {}
    retrievals: dict[str, Retrieval] = {}
    for name in config.pipelines:
        spec = PIPELINES[name]
        embedded = embeddings[spec.embedder]
        row: dict[str, Any] = {"description": spec.description, "embedder": spec.embedder}
        rows[name] = row
        if isinstance(embedded, str):
            row["status"], _, row["reason"] = embedded.rpartition(": ")
            continue
        result = embedded
        if spec.ranking == "exact":
            retrieval = exact_knn(result.vectors, result.found, labels, queries, keep=config.depth)
        else:
            model = str(embedder_info[spec.embedder]["description"]["model"])
            retrieval = index_knn(
                result.vectors,
                result.found,
                labels,
                queries,
                model_name=model,
                index_type=config.index_type,
                search_ef=config.search_ef,
                depth=config.depth,
                work_dir=config.cache_dir,
            )
        retrievals[name] = retrieval
        summary = summarize(retrieval.ranks, n_relevant, query_labels, k=config.k)
        cut = [truncate(r, config.depth) for r in retrieval.ranks]
        row |= {
            "status": "ok",
            "depth": retrieval.depth,
            "ranking": retrieval.details,
            "ranking_seconds": round(retrieval.seconds, 2),
            "metrics": summary.as_dict(),
            # Every row cut at the index's depth: the like-for-like comparison with it.
            f"metrics_at_depth_{config.depth}": summarize(
                cut, n_relevant, query_labels, k=config.k
            ).as_dict(),
            "showcase": _showcase(dataset, queries, retrieval, config.showcase, config.k),
        }
        verification = embedder_info[spec.embedder].get("verification")
        if verification is not None:
            row["verification"] = verification

    # What the index loses: its top `depth` against the exact top `depth` of the same vectors.
    for name, retrieval in retrievals.items():
        spec = PIPELINES[name]
        exact = next(
            (
                retrievals[other]
                for other, p in PIPELINES.items()
                if p.embedder == spec.embedder and p.ranking == "exact" and other in retrievals
            ),
            None,
        )
        if spec.ranking == "index" and exact is not None:
            rows[name]["ranking"]["neighbour_recall"] = round(neighbour_recall(retrieval, exact), 6)

    return {
        "command": config.command,
        "archive": str(config.archive),
        "pairs": str(config.pairs) if config.pairs else None,
        "images": len(dataset),
        "identities": len(set(dataset.labels)),
        "queries": len(queries),
        "query_identities": len(set(query_labels)),
        "k": config.k,
        "index_depth": config.depth,
        # precision@k of a perfect ranking (all relevant items first): the ceiling of the plot.
        "ideal_precision_at_k": [
            float(np.mean(np.minimum(n_relevant, j) / j)) for j in range(1, 21)
        ],
        "showcase_identity": config.showcase,
        "pipelines": rows,
        "embedders": embedder_info,
        "environment": {
            **_versions(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "argv": redacted(sys.argv),
        },
        "seconds": {
            "read_archive": round(read_seconds, 1),
            "total": round(time.perf_counter() - started, 1),
        },
        "_retrievals": retrievals,  # for the pictures; not written to JSON
        "_dataset": dataset,
        "_queries": queries,
    }
