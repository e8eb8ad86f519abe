"""The report: JSON (everything), Markdown (the tables), and two pictures (PNG).

matplotlib (Agg, no display) and Pillow are imported only here.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from .calibration import eval_report_notes
from .dataset import Dataset
from .search import Retrieval

__all__ = ["write_report"]

METRICS = [("rank1", "rank-1"), ("precision@{k}", "P@{k}"), ("recall@{k}", "R@{k}")]
METRICS += [("r_precision", "R-precision"), ("map", "mAP")]
PRODUCT = "mtcnn-facenet-milvus"
THUMB = 64


def _pct(value: float) -> str:
    return f"{100 * value:.2f}"


def _metric_cells(metrics: dict[str, float], k: int) -> list[str]:
    return [_pct(metrics[key.format(k=k)]) for key, _ in METRICS]


def _headers(k: int) -> list[str]:
    return [label.format(k=k) for _, label in METRICS]


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def results_table(data: dict[str, Any]) -> list[str]:
    """The headline table: per-query averages, verification, showcase, faces not found."""
    k = data["k"]
    rows = []
    for name, row in data["pipelines"].items():
        if row["status"] != "ok":
            rows.append([f"`{name}`", row["status"], *[""] * 7])
            continue
        ver = row.get("verification")
        verification = (
            f"{_pct(ver['accuracy_mean'])} ± {_pct(ver['accuracy_std'])}" if ver else "n/a"
        )
        show = row["showcase"]
        showcase = (
            f"{sum(s['found_in_top'] for s in show)}/{sum(s['others'] for s in show)} "
            f"({', '.join(str(s['found_in_top']) for s in show)})"
            if show
            else "n/a"
        )
        missing = data["embedders"][row["embedder"]]["images_without_a_vector"]
        rows.append(
            [
                f"`{name}`",
                *_metric_cells(row["metrics"]["per_query"], k),
                verification,
                showcase,
                str(missing),
            ]
        )
    header = ["pipeline", *_headers(k), "LFW verification (10-fold)"]
    header += [f"{data['showcase_identity']} in top {k}", "images without a face"]
    return _table(header, rows)


def _identity_table(data: dict[str, Any]) -> list[str]:
    k = data["k"]
    rows = [
        [f"`{name}`", *_metric_cells(row["metrics"]["per_identity"], k)]
        for name, row in data["pipelines"].items()
        if row["status"] == "ok"
    ]
    return _table(["pipeline", *_headers(k)], rows)


def _depth_table(data: dict[str, Any]) -> list[str]:
    k, depth = data["k"], data["index_depth"]
    rows = [
        [f"`{name}`", *_metric_cells(row[f"metrics_at_depth_{depth}"]["per_query"], k)]
        for name, row in data["pipelines"].items()
        if row["status"] == "ok"
    ]
    return _table(["pipeline", *_headers(k)], rows)


def _verification_notes(data: dict[str, Any]) -> list[str]:
    lines = []
    for name, row in data["pipelines"].items():
        ver = row.get("verification")
        if row["status"] != "ok" or not ver or not ver["pairs_without_a_vector"]:
            continue
        lines.append(
            f"- `{name}`: {ver['pairs_without_a_vector']} of the {ver['pairs']:,} pairs have "
            "an image without a face and count as errors above; scored on the other pairs "
            f"only (same thresholds): {_pct(ver['usable_pairs_accuracy_mean'])} ± "
            f"{_pct(ver['usable_pairs_accuracy_std'])}."
        )
    return [*lines, ""] if lines else []


def _index_notes(data: dict[str, Any]) -> list[str]:
    lines = []
    for name, row in data["pipelines"].items():
        ranking = row.get("ranking", {})
        if "neighbour_recall" in ranking:
            lines.append(
                f"Neighbour recall of `{name}`: {100 * ranking['neighbour_recall']:.3f}% of "
                f"each query's exact top {data['index_depth']} (same vectors) came back from "
                f"the index ({ranking['index_type']}, M={ranking['hnsw_m']}, "
                f"efConstruction={ranking['hnsw_ef_construction']}, ef="
                f"{ranking['effective_ef']}), at {ranking['queries_per_second']:.0f} "
                f"queries/s in batches."
            )
    return [*lines, ""] if lines else []


def _markdown(data: dict[str, Any], pictures: dict[str, str]) -> str:
    k, depth, who = data["k"], data["index_depth"], data["showcase_identity"]
    env = data["environment"]
    lines = [
        "# Retrieval quality on LFW",
        "",
        "Made with:",
        "",
        "```sh",
        data["command"],
        "```",
        "",
        f"Archive `{data['archive']}`: {data['images']:,} images of {data['identities']:,} "
        f"people. Queries: every image of every person with two or more images "
        f"({data['queries']:,} queries, {data['query_identities']:,} people); the gallery is "
        "all the images minus the query itself. Figures are percentages.",
        "",
        "## Protocol",
        "",
        "- **One face per image.** With several faces in an image, the face the product "
        "labels is used (`models.face.prominent_face`: of the faces at least half as large as "
        "the largest, the one nearest the image centre; on LFW, its subject in every image).",
        "- **No face found.** Such an image gets no vector, as in the product (which indexes "
        "nothing for it): it is not in the gallery, so it can never be retrieved, and as a query "
        "it retrieves nothing and scores 0 on every measure. It still counts as a query and as "
        "a relevant image of its person: no fallback crop, so the figures are what the product "
        "would do. The counts are under *What was run*.",
        "- **Ties** (exactly equal scores) are broken pessimistically: other people's images "
        "rank before the same person's, then archive order. A tie never flatters a row.",
        f"- **Measures.** rank-1: the nearest image is the same person. P@{k}: share of the "
        f"top {k} that is the same person (over {k}, also when the person has fewer other "
        f"photos). R@{k}: share of the person's other photos in the top {k}. R-precision: "
        "precision at R, the number of the person's other photos. mAP: mean average precision "
        "over the whole ranking.",
        "- **Verification** (`pairs.txt`, 10 folds of 300 + 300 pairs; `name n` is "
        "`name/name_000n.jpg`): cosine distance, the threshold chosen on the other 9 folds "
        "(the most accurate one; the smallest of equals), accuracy on the held-out fold; mean "
        "and population standard deviation over the folds. A pair with an image without a "
        "face counts as an error.",
        "",
        "## Results",
        "",
        f"Averaged over queries. Verification: mean ± standard deviation over the 10 folds of "
        f"`pairs.txt`. {who}: for each of his photos, how many of his other photos are in its "
        f"top {k}.",
        "",
        *results_table(data),
        "",
        *_verification_notes(data),
        *eval_report_notes(data["embedders"]),
        "Averaged over people (each person's mean over their queries, then the mean over "
        "people, so George W Bush's 530 photos weigh as much as any pair):",
        "",
        *_identity_table(data),
        "",
        f"### Index recall loss (every row cut at rank {depth})",
        "",
        f"The index row asks the index for the top {depth} + 1 (the API's largest `top_k` is "
        f"{depth}; the query's own image comes back too and is dropped), so its rankings stop at "
        f"rank {depth}: R-precision and mAP count relevant images beyond rank {depth} as not "
        "found (lower bounds). Cut the same way, the exact rows compare like for like; the gap "
        f"between `mtcnn-facenet-knn` and `{PRODUCT}` here is what the index loses.",
        "",
        *_depth_table(data),
        "",
        *_index_notes(data),
    ]
    if "curve" in pictures:
        lines += ["## Precision@k", "", f"![precision@k]({pictures['curve']})", ""]
    lines += [f"## {who}", ""]
    for name, row in data["pipelines"].items():
        if row["status"] != "ok" or not row["showcase"]:
            continue
        found = ", ".join(
            f"`{Path(s['query']).name}` {s['found_in_top']}/{s['others']}" for s in row["showcase"]
        )
        lines.append(f"- `{name}`: {found}")
    if "grid" in pictures:
        lines += [
            "",
            f"`{PRODUCT}`: each row is one of his photos (blue) and its top {k}; green: the "
            "same person, red: someone else; the number is the cosine similarity. The picture "
            f"(`{pictures['grid']}`) is written beside this report but kept out of the "
            "repository, since it is made of LFW photos.",
        ]
    lines += ["", "## What was run", ""]
    for name, info in data["embedders"].items():
        desc = info["description"]
        lines += [
            f"### `{name}`",
            "",
            *[f"- {key}: `{value}`" for key, value in sorted(desc.items())],
            f"- images without a vector (no face found): {info['images_without_a_vector']} "
            f"({info['queries_without_a_vector']} of them queries)",
            f"- images with more than one face (the one the product labels is used): "
            f"{info['images_with_several_faces']}",
            f"- embedding wall time: {info['embedding_seconds_total']:.0f} s for "
            f"{info['images']:,} images (this run: {info['embedded_now']:,} embedded in "
            f"{info['embedding_seconds_this_run']:.0f} s, the rest from the cache)",
            "",
        ]
        if info["without_a_vector"]:
            shown = ", ".join(f"`{k}`" for k in info["without_a_vector"][:40])
            more = len(info["without_a_vector"]) - 40
            lines += [f"No face: {shown}" + (f" and {more} more" if more > 0 else ""), ""]
    for name, row in data["pipelines"].items():
        if row["status"] != "ok":
            lines += [f"- `{name}`: {row['status']} ({row.get('reason', '')})"]
            continue
        details = ", ".join(f"{key}={value}" for key, value in row["ranking"].items())
        lines += [
            f"- `{name}`: {row['description']}. Ranking: {details}; {row['ranking_seconds']:.1f} s."
        ]
    lines += [
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in env.items() if k not in {"argv"}) + ".",
        f"Wall time: {data['seconds']['total']:.0f} s (reading the archive: "
        f"{data['seconds']['read_archive']:.0f} s). All figures are also in "
        f"`{pictures.get('json', 'the JSON report')}`.",
        "",
        # Written by `facesearch eval --tune` (evaluation/tuning.py), not by this report.
        "Tuning of the face path (margin, which face, detector thresholds, a second detection "
        "pass, eye alignment, flip), chosen on half of the identities: [tuning.md](tuning.md).",
        "",
    ]
    return "\n".join(lines)


def _plot_curves(data: dict[str, Any], path: Path) -> None:
    import matplotlib  # noqa: PLC0415 - only the report draws

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=100)
    for name, row in data["pipelines"].items():
        if row["status"] != "ok":
            continue
        curve = row["metrics"]["precision_at_k"]
        style = "--" if row["depth"] is not None else "-"
        ax.plot(range(1, len(curve) + 1), curve, style, marker="o", markersize=3, label=name)
    ideal = data.get("ideal_precision_at_k")
    if ideal:
        ax.plot(range(1, len(ideal) + 1), ideal, ":", color="grey", label="perfect ranking")
    ax.set_xlabel("k")
    ax.set_ylabel("precision@k (mean over queries)")
    ax.set_xticks(range(1, 21))
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"LFW, {data['queries']:,} queries, gallery of {data['images']:,} images")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _thumb(data: bytes, colour: tuple[int, int, int], caption: str) -> Image.Image:
    with Image.open(io.BytesIO(data)) as opened:
        image = opened.convert("RGB").resize((THUMB, THUMB), Image.Resampling.BILINEAR)
    cell = Image.new("RGB", (THUMB + 6, THUMB + 18), "white")
    cell.paste(Image.new("RGB", (THUMB + 6, THUMB + 6), colour), (0, 0))
    cell.paste(image, (3, 3))
    ImageDraw.Draw(cell).text((4, THUMB + 6), caption, fill=(0, 0, 0))
    return cell


def _grid(
    dataset: Dataset, queries: np.ndarray, retrieval: Retrieval, who: str, path: Path
) -> bool:
    rows = [qi for qi, q in enumerate(queries) if dataset.labels[q] == who]
    if not rows:
        return False
    cell_w, cell_h = THUMB + 6, THUMB + 18
    columns = 1 + retrieval.top.shape[1]
    sheet = Image.new("RGB", (columns * (cell_w + 2), len(rows) * (cell_h + 2)), "white")
    for r, qi in enumerate(rows):
        q = int(queries[qi])
        cells = [_thumb(dataset.data[q], (40, 90, 220), dataset.names[q][-8:-4])]
        for i, score in zip(retrieval.top[qi], retrieval.top_scores[qi], strict=True):
            if i < 0:
                continue
            same = dataset.labels[i] == who
            colour = (30, 170, 60) if same else (220, 40, 40)
            cells.append(_thumb(dataset.data[i], colour, f"{score:.3f}"))
        for c, cell in enumerate(cells):
            sheet.paste(cell, (c * (cell_w + 2), r * (cell_h + 2)))
    # A 256-colour palette keeps the picture small (photos compress poorly as RGB PNG).
    sheet.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    return True


def write_report(data: dict[str, Any], out_dir: Path, name: str = "evaluation") -> dict[str, Path]:
    """Write ``<name>.json``, ``<name>.md`` and the PNGs into ``out_dir``; return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / f"{name}.json", "markdown": out_dir / f"{name}.md"}
    pictures: dict[str, str] = {"json": paths["json"].name}
    if any(row["status"] == "ok" for row in data["pipelines"].values()):
        paths["curve"] = out_dir / f"{name}-precision-at-k.png"
        _plot_curves(data, paths["curve"])
        pictures["curve"] = paths["curve"].name
    retrievals: dict[str, Retrieval] = data.get("_retrievals", {})
    product = retrievals.get(PRODUCT)
    if product is not None:
        grid = out_dir / f"{name}-{data['showcase_identity'].lower().replace('_', '-')}.png"
        if _grid(data["_dataset"], data["_queries"], product, data["showcase_identity"], grid):
            paths["grid"] = grid
            pictures["grid"] = grid.name
    public = {key: value for key, value in data.items() if not key.startswith("_")}
    paths["json"].write_text(json.dumps(public, indent=2) + "\n")
    paths["markdown"].write_text(_markdown(public, pictures))
    return paths
