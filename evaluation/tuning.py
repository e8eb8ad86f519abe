"""Tuning the product's face path on retrieval, without fooling ourselves.

``python -m evaluation.tuning`` (or ``facesearch eval --tune``). Every parameter is chosen on
half A of the identities only; the chosen configuration is then reported on half B (never
looked at while choosing) and on all of LFW.

* **Split**: the sorted identity names, permuted by ``numpy.random.default_rng(SPLIT_SEED)``;
  the first half (rounded down) is A. Every image of a person is in the same half, so no
  query's relevant items cross halves, and each half's gallery is that half's images.
* **Detections** come from ``tuning_detect`` (MTCNN once over the archive, every candidate).
* **Variants** differ in margin, which face is chosen, the confidence threshold, the second
  detection pass, the crop (interpolation, square), eye alignment and flip augmentation.
  Vectors are cached per crop (image, box, geometry, mirrored or not), so a variant only
  embeds the crops no earlier variant made: changing which face is chosen costs the images
  with several faces, a threshold the images it changes.
* **Choice**: stages in a fixed order (margin, face, threshold, second pass, crop,
  alignment, flip); in each, the variant with the best mAP on A is kept (a tie keeps the
  earlier, simpler one). The margin grid is 0.1-0.3 around the product's 0.25, extended to
  0.0, or to 0.4 and 0.5, only when an end of it wins. Nothing from B enters any choice.
* **Cost**: ms per face of crop + embedding on this machine, timed on the same 128 faces for
  each variant (detection is shared and reported on its own).

Writes ``docs/tuning.json`` and prints the Markdown tables that ``docs/tuning.md`` holds.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from workers.pipeline.align import aligned_crop, crop_face
from workers.pipeline.embedder import FaceEmbedder, l2_normalize

from .dataset import Dataset, Pair, decode, load_dataset, parse_pairs
from .metrics import average_precision, rank1, summarize
from .runner import queries_of
from .search import exact_knn
from .tuning_detect import SECOND_PASSES, DetectionCache, detect_all
from .verification import verify

__all__ = ["SPLIT_SEED", "Variant", "choose_faces", "split_identities", "tune"]

# The identity split's seed (documented in docs/evaluation.md; changing it changes the halves).
SPLIT_SEED = 13

MARGINS = (0.1, 0.2, 0.3)  # the product's 0.25 is the baseline
MARGINS_LOW, MARGINS_HIGH = (0.0,), (0.4, 0.5)
FACE_CHOICES = ("centre", "largest", "confidence", "largest-on-centre")
THRESHOLDS = (0.8, 0.95)
SECOND_PASS_CHOICES = ((2, 0.8), (2, 0.5), (3, 0.8), (4, 0.8))  # (pass number, min confidence)
COST_FACES = 128


@dataclass(frozen=True)
class Variant:
    margin: float = 0.25
    choose: str = "centre"  # see choose_faces
    min_confidence: float = 0.9
    second_pass: int = 0  # 0: off; else the tuning_detect pass number (2 + SECOND_PASSES index)
    second_pass_confidence: float = 0.8
    interpolation: str = "product"  # product (area when shrinking, else bilinear) or cubic
    square: bool = False  # grow the box to a square around its centre before cropping
    align: bool = False
    flip: bool = False

    def label(self) -> str:
        default = Variant()
        parts = [f"{k}={v}" for k, v in asdict(self).items() if getattr(default, k) != v]
        return ", ".join(parts) or "product (margin 0.25, centre face, 0.9)"


def split_identities(labels: Sequence[str], seed: int = SPLIT_SEED) -> np.ndarray:
    """Per image, True if its identity is in half A."""
    names = sorted(set(labels))
    order = np.random.default_rng(seed).permutation(len(names))
    half_a = {names[j] for j in order[: len(names) // 2]}
    return np.asarray([label in half_a for label in labels])


def _centre_distance(box: np.ndarray, shape: tuple[int, int]) -> float:
    return float(
        (box[0] + box[2] / 2 - shape[1] / 2) ** 2 + (box[1] + box[3] / 2 - shape[0] / 2) ** 2
    )


def choose_faces(
    cache: DetectionCache, shapes: np.ndarray, variant: Variant, images: Sequence[int]
) -> dict[int, int]:
    """Image index -> the chosen row of ``cache`` (images without a face are absent).

    centre: box centre nearest the image centre (the product's harness and API);
    largest: largest box; confidence: highest ONet probability; largest-on-centre: the
    largest box that contains the image centre, else the one nearest it.
    """
    chosen: dict[int, int] = {}
    for i in images:
        rows = np.r_[cache.of(i)]
        first = rows[(cache.passes[rows] == 1) & (cache.confidence[rows] >= variant.min_confidence)]
        if len(first) == 0 and variant.second_pass:
            first = rows[
                (cache.passes[rows] == variant.second_pass)
                & (cache.confidence[rows] >= variant.second_pass_confidence)
            ]
        if len(first) == 0:
            continue
        shape = (int(shapes[i][0]), int(shapes[i][1]))
        boxes = cache.boxes[first]
        area = boxes[:, 2].astype(np.int64) * boxes[:, 3]
        dist = np.asarray([_centre_distance(b, shape) for b in boxes])
        if variant.choose == "centre":
            pick = int(np.argmin(dist))
        elif variant.choose == "largest":
            pick = int(np.argmax(area))
        elif variant.choose == "confidence":
            pick = int(np.argmax(cache.confidence[first]))
        elif variant.choose == "largest-on-centre":
            cy, cx = shape[0] / 2, shape[1] / 2
            on = (
                (boxes[:, 0] <= cx)
                & (cx <= boxes[:, 0] + boxes[:, 2])
                & (boxes[:, 1] <= cy)
                & (cy <= boxes[:, 1] + boxes[:, 3])
            )
            pick = int(np.argmax(np.where(on, area, -1))) if on.any() else int(np.argmin(dist))
        else:
            raise ValueError(f"unknown face choice {variant.choose!r}")
        chosen[i] = int(first[pick])
    return chosen


def _square(box: np.ndarray) -> tuple[int, int, int, int]:
    x, y, w, h = (int(v) for v in box)
    side = max(w, h)
    return x + (w - side) // 2, y + (h - side) // 2, side, side


def make_crop(
    image: np.ndarray, cache: DetectionCache, row: int, variant: Variant, size: int
) -> np.ndarray:
    box = cache.boxes[row]
    x, y, w, h = (int(v) for v in box)
    geometry = _square(box) if variant.square else (x, y, w, h)
    if variant.align:
        left, right = cache.landmarks[row][0], cache.landmarks[row][1]
        if (left >= 0).all() and (right >= 0).all():
            return aligned_crop(
                image,
                geometry,
                (float(left[0]), float(left[1])),
                (float(right[0]), float(right[1])),
                margin=variant.margin,
                size=size,
            )
    if variant.interpolation == "cubic":
        import cv2  # noqa: PLC0415

        from workers.pipeline.align import expand_box  # noqa: PLC0415

        x1, y1, x2, y2 = expand_box(geometry, variant.margin, image.shape)
        region = np.ascontiguousarray(image[y1:y2, x1:x2])
        return cv2.resize(region, (size, size), interpolation=cv2.INTER_CUBIC)
    return crop_face(image, geometry, margin=variant.margin, size=size)


class CropVectors:
    """Embeddings per crop: key = image hash, box and everything that shapes the crop."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: dict[str, int] = {}
        self.vectors: list[np.ndarray] = []
        if path.is_file():
            with np.load(path) as saved:
                self.rows = {str(k): i for i, k in enumerate(saved["keys"])}
                self.vectors = list(saved["vectors"])

    @staticmethod
    def key(image_hash: str, box: np.ndarray, variant: Variant, mirror: bool) -> str:
        b = ",".join(str(int(v)) for v in box)
        return (
            f"{image_hash[:20]}|{b}|m{variant.margin}|{variant.interpolation}|"
            f"s{int(variant.square)}|a{int(variant.align)}|f{int(mirror)}"
        )

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp.npz")
        np.savez(tmp, keys=np.asarray(list(self.rows), dtype=str), vectors=np.asarray(self.vectors))
        os.replace(tmp, self.path)


def seed_from_eval_cache(store: CropVectors, folder: Path, model: str) -> int:
    """Reuse ``facesearch eval``'s product vectors (``mtcnn-facenet-*.npz``: same detector,
    margin 0.25, central face, same weights) as the baseline's crops: the crop key holds the
    box, so a vector is only reused for exactly the box this harness would crop. Returns how
    many were added."""
    added = 0
    for meta in sorted(folder.glob("mtcnn-facenet-*.json")):
        described = json.loads(meta.read_text())["description"]
        product = {"margin": 0.25, "min_confidence": 0.9, "min_face_size": 20, "model": model}
        if any(described.get(k) != v for k, v in product.items()):
            continue
        with np.load(meta.with_suffix(".npz")) as saved:
            hashes, vectors = saved["hashes"], saved["vectors"]
            found, boxes = saved["found"], saved["boxes"]
        for h, vector, ok, box in zip(hashes, vectors, found, boxes, strict=True):
            key = CropVectors.key(str(h), box, Variant(), mirror=False)
            if ok and key not in store.rows:
                store.rows[key] = len(store.vectors)
                store.vectors.append(vector)
                added += 1
    return added


@dataclass
class Context:
    dataset: Dataset
    cache: DetectionCache
    shapes: np.ndarray
    embedder: FaceEmbedder
    store: CropVectors
    label_ids: np.ndarray
    pairs: list[Pair]
    index_of: dict[str, int]


def vectors_for(
    ctx: Context, variant: Variant, images: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """(n, dim) vectors and found mask for the whole dataset (zeros outside ``images``)."""
    n = len(ctx.dataset)
    chosen = choose_faces(ctx.cache, ctx.shapes, variant, images)
    mirrors = (False, True) if variant.flip else (False,)
    keys = {
        (i, m): CropVectors.key(ctx.dataset.hashes[i], ctx.cache.boxes[row], variant, m)
        for i, row in chosen.items()
        for m in mirrors
    }
    todo = sorted({i for (i, m), k in keys.items() if k not in ctx.store.rows})
    size = ctx.embedder.spec.image_size
    batch = 256
    for start in range(0, len(todo), batch):
        part = todo[start : start + batch]
        crops, names = [], []
        for i in part:
            image = decode(ctx.dataset.data[i])
            crop = make_crop(image, ctx.cache, chosen[i], variant, size)
            for m in mirrors:
                if keys[(i, m)] not in ctx.store.rows:
                    crops.append(crop[:, ::-1] if m else crop)
                    names.append(keys[(i, m)])
        out = ctx.embedder.embed(np.ascontiguousarray(np.stack(crops)))
        for name, vector in zip(names, out, strict=True):
            ctx.store.rows[name] = len(ctx.store.vectors)
            ctx.store.vectors.append(vector)
        if (start // batch) % 8 == 7:
            ctx.store.save()
    if todo:
        ctx.store.save()
    dim = ctx.embedder.dim
    vectors = np.zeros((n, dim), np.float32)
    found = np.zeros(n, bool)
    for i in chosen:
        total = sum(ctx.store.vectors[ctx.store.rows[keys[(i, m)]]] for m in mirrors)
        vectors[i] = total
        found[i] = True
    vectors[found] = l2_normalize(vectors[found])
    return vectors, found


def measure(
    ctx: Context, vectors: np.ndarray, found: np.ndarray, subset: np.ndarray
) -> dict[str, Any]:
    """Retrieval on ``subset`` (its own gallery) and verification on the pairs inside it."""
    idx = np.flatnonzero(subset)
    labels = [ctx.dataset.labels[i] for i in idx]
    queries, n_relevant = queries_of(labels)
    retrieval = exact_knn(vectors[idx], found[idx], ctx.label_ids[idx], queries, keep=10)
    summary = summarize(retrieval.ranks, n_relevant, [labels[q] for q in queries], k=10)
    r1 = np.asarray([rank1(r) for r in retrieval.ranks])
    ap = np.asarray(
        [average_precision(r, int(n)) for r, n in zip(retrieval.ranks, n_relevant, strict=True)]
    )
    inside = set(idx.tolist())
    pairs = [
        p
        for p in ctx.pairs
        if ctx.index_of.get(p.first, -1) in inside and ctx.index_of.get(p.second, -1) in inside
    ]
    verification = verify(pairs, vectors, found, ctx.index_of)
    return {
        "images": len(idx),
        "identities": len(set(labels)),
        "queries": len(queries),
        "images_without_a_face": int((~found[idx]).sum()),
        "without_a_face": [ctx.dataset.key(int(i)) for i in idx if not found[i]],
        **{k: round(v, 6) for k, v in summary.per_query.items()},
        # Standard errors of the mean over queries (queries of one person are not
        # independent, so these are if anything optimistic).
        "rank1_se": round(float(r1.std(ddof=1) / np.sqrt(len(r1))), 6),
        "map_se": round(float(ap.std(ddof=1) / np.sqrt(len(ap))), 6),
        "verification_pairs": verification["pairs"],
        "verification_mean": round(verification["accuracy_mean"], 6),
        "verification_std": round(verification["accuracy_std"], 6),
        "pairs_without_a_vector": verification["pairs_without_a_vector"],
    }


def cost_ms_per_face(ctx: Context, variant: Variant, images: Sequence[int]) -> float:
    """Crop (and warp) plus embedding (twice with flip), ms a face, on ``COST_FACES`` faces."""
    chosen = choose_faces(ctx.cache, ctx.shapes, variant, images)
    sample = sorted(chosen)[:COST_FACES]
    decoded = [decode(ctx.dataset.data[i]) for i in sample]
    size = ctx.embedder.spec.image_size
    ctx.embedder.embed(np.zeros((1, size, size, 3), np.uint8))  # warm
    # The best of two runs: the machine is shared, and the faster run is the one less
    # disturbed by other work.
    times = []
    for _ in range(2):
        began = time.perf_counter()
        crops = np.stack(
            [
                make_crop(im, ctx.cache, chosen[i], variant, size)
                for im, i in zip(decoded, sample, strict=True)
            ]
        )
        if variant.flip:
            crops = np.concatenate([crops, crops[:, :, ::-1]])
        ctx.embedder.embed(np.ascontiguousarray(crops))
        times.append(time.perf_counter() - began)
    return min(times) * 1000 / len(sample)


def _shapes(dataset: Dataset) -> np.ndarray:
    out = np.zeros((len(dataset), 2), np.int32)
    for i, data in enumerate(dataset.data):
        import io  # noqa: PLC0415

        with Image.open(io.BytesIO(data)) as image:  # header only, no decoding
            out[i] = (image.height, image.width)
    return out


def _on_every_set(ctx: Context, variant: Variant, half_a: np.ndarray) -> dict[str, Any]:
    """``variant`` on half A, half B and all of LFW (each its own gallery)."""
    vectors, found = vectors_for(ctx, variant, range(len(ctx.dataset)))
    return {
        "half_a": measure(ctx, vectors, found, half_a),
        "half_b": measure(ctx, vectors, found, ~half_a),
        "all": measure(ctx, vectors, found, np.ones(len(ctx.dataset), bool)),
    }


def _earlier_costs(out: Path | None) -> dict[tuple[object, ...], float]:
    """ms/face by crop geometry from an interrupted run's partial report: timing them again
    would only add noise."""
    costs: dict[tuple[object, ...], float] = {}
    if out is not None and out.is_file():
        for row in json.loads(out.read_text()).get("variants", []):
            v = Variant(**row["variant"])
            costs[(v.margin, v.interpolation, v.square, v.align, v.flip)] = row["ms_per_face"]
    return costs


def _dataset(archive: Path, limit: int | None) -> Dataset:
    if limit is None:
        return load_dataset(archive)
    # A quick run on the archive's first images (smoke tests).
    from itertools import islice  # noqa: PLC0415

    from cli.lfw import iter_images  # noqa: PLC0415

    return Dataset.from_images(islice(iter_images(archive), limit))


def tune(
    *,
    archive: Path,
    pairs_file: Path,
    weights_dir: Path,
    folder: Path,
    out: Path | None,
    seed_from: Path | None = None,
    limit: int | None = None,
    crop_stage: bool = False,
) -> dict[str, Any]:
    from workers.pipeline.weights import DEFAULT_MODEL, get_spec, weights_path  # noqa: PLC0415

    dataset = _dataset(archive, limit)
    spec = get_spec(DEFAULT_MODEL)
    embedder = FaceEmbedder(spec, weights_path(spec.name, weights_dir), batch_size=64)
    ctx = Context(
        dataset=dataset,
        cache=detect_all(dataset, folder),
        shapes=_shapes(dataset),
        embedder=embedder,
        store=CropVectors(folder / f"crops-{spec.name}.npz"),
        label_ids=dataset.label_ids(),
        pairs=parse_pairs(pairs_file.read_text().splitlines()),
        index_of=dataset.index_of(),
    )
    if seed_from is not None:
        print(f"reused {seed_from_eval_cache(ctx.store, seed_from, spec.name)} vectors", flush=True)
    half_a = split_identities(dataset.labels)
    images_a = np.flatnonzero(half_a).tolist()
    rows: list[dict[str, Any]] = []

    costs = _earlier_costs(out)

    def cost(variant: Variant) -> float:
        # Face choice, thresholds and the second pass do not change a face's cost.
        crop = (variant.margin, variant.interpolation, variant.square, variant.align, variant.flip)
        if crop not in costs:
            costs[crop] = round(cost_ms_per_face(ctx, variant, images_a), 1)
        return costs[crop]

    def run(variant: Variant, stage: str) -> dict[str, Any]:
        began = time.perf_counter()
        vectors, found = vectors_for(ctx, variant, images_a)
        row: dict[str, Any] = {
            "stage": stage,
            "variant": asdict(variant),
            "label": variant.label(),
            "half_a": measure(ctx, vectors, found, half_a),
            "ms_per_face": cost(variant),
            "seconds": round(time.perf_counter() - began, 1),
        }
        a = row["half_a"]
        print(
            f"[{stage}] {row['label']}: rank-1 {a['rank1']:.4f} mAP {a['map']:.4f} "
            f"R-prec {a['r_precision']:.4f} verif {a['verification_mean']:.4f} "
            f"no-face {a['images_without_a_face']} {row['ms_per_face']} ms/face "
            f"({row['seconds']} s)",
            flush=True,
        )
        rows.append(row)
        if out is not None:  # progress survives an interrupted run (vectors are cached too)
            out.write_text(json.dumps({"partial": True, "variants": rows}, indent=1) + "\n")
        return row

    best = Variant()
    best_row = run(best, "baseline")

    def stage(name: str, candidates: list[Variant]) -> None:
        nonlocal best, best_row
        for candidate in candidates:
            row = run(candidate, name)
            if row["half_a"]["map"] > best_row["half_a"]["map"]:
                best, best_row = candidate, row

    stage("margin", [replace(best, margin=m) for m in MARGINS])
    # The grid's ends only if the best margin is at an end of it (each costs a full embedding
    # of half A, ~5 minutes here).
    if best.margin in (MARGINS[0], MARGINS[-1]):
        low = best.margin == MARGINS[0]
        stage("margin", [replace(best, margin=m) for m in (MARGINS_LOW if low else MARGINS_HIGH)])
    stage("face", [replace(best, choose=c) for c in FACE_CHOICES if c != best.choose])
    stage("threshold", [replace(best, min_confidence=t) for t in THRESHOLDS])
    stage(
        "second pass",
        [replace(best, second_pass=p, second_pass_confidence=c) for p, c in SECOND_PASS_CHOICES],
    )
    # The crop-shape variants (bicubic resizing, a square box) are implemented but not in
    # the run: each full variant cost 6-9 minutes of this shared machine, and alignment and
    # flip came first. ``--crop-stage`` runs them.
    if crop_stage:
        stage("crop", [replace(best, interpolation="cubic"), replace(best, square=True)])
    stage("align", [replace(best, align=True)])
    stage("flip", [replace(best, flip=True)])

    if seed_from is not None:  # eval may have embedded more since the start
        seed_from_eval_cache(ctx.store, seed_from, spec.name)
    report: dict[str, Any] = {
        "split_seed": SPLIT_SEED,
        "second_passes": [asdict(s) for s in SECOND_PASSES],
        "detection_ms_per_image": round(float(ctx.cache.seconds.mean() * 1000), 1),
        "variants": rows,
        "chosen": asdict(best),
        "chosen_label": best.label(),
    }
    for name, variant in (("product", Variant()), ("chosen", best)):
        report[name] = _on_every_set(ctx, variant, half_a)
        print(
            name,
            json.dumps({k: v for k, v in report[name]["all"].items() if k != "without_a_face"}),
            flush=True,
        )
    if out is not None:
        out.write_text(json.dumps(report, indent=1) + "\n")
    print("\n".join(markdown(report)), flush=True)
    return report


def _pct(value: float) -> str:
    return f"{100 * value:.2f}"


def markdown(report: dict[str, Any]) -> list[str]:
    """The tables of docs/tuning.md."""
    lines = [
        "| stage | variant | rank-1 | P@10 | R@10 | R-precision | mAP | verification "
        "| no face | ms/face |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in report["variants"]:
        a = row["half_a"]
        lines.append(
            f"| {row['stage']} | {row['label']} | {_pct(a['rank1'])} ± {_pct(a['rank1_se'])} "
            f"| {_pct(a['precision@10'])} | {_pct(a['recall@10'])} | {_pct(a['r_precision'])} "
            f"| {_pct(a['map'])} ± {_pct(a['map_se'])} "
            f"| {_pct(a['verification_mean'])} ± {_pct(a['verification_std'])} "
            f"| {a['images_without_a_face']} | {row['ms_per_face']} |"
        )
    lines += [
        "",
        "| configuration | set | images | queries | rank-1 | P@10 | R@10 | R-precision | mAP "
        "| verification (pairs) | no face |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in ("product", "chosen"):
        for part, title in (("half_a", "half A"), ("half_b", "half B"), ("all", "all LFW")):
            m = report[name][part]
            lines.append(
                f"| {name} | {title} | {m['images']:,} | {m['queries']:,} "
                f"| {_pct(m['rank1'])} ± {_pct(m['rank1_se'])} | {_pct(m['precision@10'])} "
                f"| {_pct(m['recall@10'])} | {_pct(m['r_precision'])} "
                f"| {_pct(m['map'])} ± {_pct(m['map_se'])} "
                f"| {_pct(m['verification_mean'])} ± {_pct(m['verification_std'])} "
                f"({m['verification_pairs']:,}) | {m['images_without_a_face']} |"
            )
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    from cli.lfw import default_archive  # noqa: PLC0415
    from core.settings import get_settings  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog="python -m evaluation.tuning", description=__doc__)
    parser.add_argument("--archive", type=Path, default=None)
    parser.add_argument("--pairs", type=Path, default=None)
    parser.add_argument(
        "--cache", type=Path, default=Path.home() / ".cache" / "facesearch" / "tuning"
    )
    parser.add_argument("--out", type=Path, default=Path("docs/tuning.json"))
    parser.add_argument(
        "--reuse",
        type=Path,
        default=get_settings().data_dir / "eval-cache",
        help="facesearch eval's cache folder: reuse its product vectors as the baseline's "
        "(default: DATA_DIR/eval-cache)",
    )
    parser.add_argument("--limit", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument(
        "--crop-stage", action="store_true", help="also try bicubic resizing and a square box"
    )
    args = parser.parse_args(argv)
    archive = args.archive or default_archive()
    tune(
        archive=archive,
        pairs_file=args.pairs or archive.parent / "pairs.txt",
        weights_dir=get_settings().model_dir,
        folder=args.cache,
        out=args.out,
        seed_from=args.reuse if args.reuse.is_dir() else None,
        limit=args.limit,
        crop_stage=args.crop_stage,
    )


if __name__ == "__main__":
    main()
