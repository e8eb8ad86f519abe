"""The tuning harness's detection cache: MTCNN run once over the archive, every candidate kept.

Detection is the slow half of the product's path (~30 ms an LFW image here) and every
variant the harness compares starts from the same detections, so it runs once:

* **First pass**: the product's ``FaceDetector`` (same patched MTCNN, same pyramid, same
  clipping and rounding) with the ONet threshold lowered to ``CANDIDATE_CONFIDENCE``. A
  variant's confidence threshold is then a filter on the cached confidences; this is exact,
  because a lower-scored box never suppresses a higher-scored one in MTCNN's NMS.
* **Second pass**: only for images where nothing reaches the product's ``MIN_CONFIDENCE``,
  the detector's second-pass settings (``detector.SecondPass``: the image enlarged, lower
  PNet/RNet thresholds), each kept under its own pass number.

Stored as one npz per archive (keyed by the images' hashes) under
``~/.cache/facesearch/tuning/``.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workers.pipeline.detector import (
    LANDMARK_NAMES,
    MIN_CONFIDENCE,
    Detection,
    FaceDetector,
    SecondPass,
)

from .dataset import Dataset, decode

__all__ = ["CANDIDATE_CONFIDENCE", "SECOND_PASSES", "DetectionCache", "detect_all"]

# The ONet threshold of the cached first pass: below every threshold a variant tries.
CANDIDATE_CONFIDENCE = 0.5

# Second-pass settings tried on images with no face at MIN_CONFIDENCE; pass number = 2 + index.
# Each keeps ONet scores down to CANDIDATE_CONFIDENCE; a variant filters higher.
SECOND_PASSES: tuple[SecondPass, ...] = (
    SecondPass(min_confidence=CANDIDATE_CONFIDENCE),  # the detector's default settings
    SecondPass(upscale=1.0, min_confidence=CANDIDATE_CONFIDENCE),  # lower thresholds only
    SecondPass(upscale=3.0, min_confidence=CANDIDATE_CONFIDENCE),
)


@dataclass
class DetectionCache:
    """Every cached detection of every image, flat, with per-image offsets."""

    hashes: np.ndarray  # (n,) sha256 of each image's bytes
    offsets: np.ndarray  # (n + 1,) detections of image i: offsets[i]:offsets[i + 1]
    boxes: np.ndarray  # (m, 4) int32 x, y, w, h
    confidence: np.ndarray  # (m,) float32
    landmarks: np.ndarray  # (m, 5, 2) int32, LANDMARK_NAMES order; -1 where absent
    passes: np.ndarray  # (m,) int8: 1 first pass, 2.. second-pass settings
    seconds: np.ndarray  # (n,) first-pass seconds per image (its chunk's time / its size)

    def of(self, i: int) -> slice:
        return slice(int(self.offsets[i]), int(self.offsets[i + 1]))

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, **{k: getattr(self, k) for k in self.__dataclass_fields__})
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> DetectionCache:
        with np.load(path) as saved:
            return cls(**{k: saved[k] for k in cls.__dataclass_fields__})


def _digest(dataset: Dataset) -> str:
    return hashlib.sha256("".join(dataset.hashes).encode()).hexdigest()[:16]


def _rows(found: Sequence[Detection], pass_no: int) -> list[tuple[object, ...]]:
    rows: list[tuple[object, ...]] = []
    for d in found:
        marks = np.full((5, 2), -1, np.int32)
        for k, name in enumerate(LANDMARK_NAMES):
            if name in d.landmarks:
                marks[k] = d.landmarks[name]
        rows.append((d.box, d.confidence, marks, pass_no))
    return rows


def _cache(
    dataset: Dataset, per_image: list[list[tuple[object, ...]]], seconds: np.ndarray
) -> DetectionCache:
    flat = [r for rows in per_image for r in rows]
    return DetectionCache(
        hashes=np.asarray(dataset.hashes, dtype="U64"),
        offsets=np.concatenate([[0], np.cumsum([len(r) for r in per_image])]).astype(np.int64),
        boxes=np.asarray([r[0] for r in flat], np.int32).reshape(-1, 4),
        confidence=np.asarray([r[1] for r in flat], np.float32),
        landmarks=np.asarray([r[2] for r in flat], np.int32).reshape(-1, 5, 2),
        passes=np.asarray([r[3] for r in flat], np.int8),
        seconds=seconds,
    )


def _first_pass(
    dataset: Dataset, path: Path, chunk: int, progress: Callable[[int, int], None] | None
) -> DetectionCache:
    if path.is_file():
        return DetectionCache.load(path)
    detector = FaceDetector(min_confidence=CANDIDATE_CONFIDENCE, max_faces=100, batch_size=chunk)
    per_image: list[list[tuple[object, ...]]] = []
    seconds = np.zeros(len(dataset), np.float32)
    for start in range(0, len(dataset), chunk):
        part = range(start, min(start + chunk, len(dataset)))
        images = [decode(dataset.data[i]) for i in part]
        began = time.perf_counter()
        found = detector.detect(images)
        seconds[start : start + len(images)] = (time.perf_counter() - began) / len(images)
        per_image.extend(_rows(f, 1) for f in found)
        if progress is not None:
            progress(start + len(images), len(dataset))
    cache = _cache(dataset, per_image, seconds)
    cache.save(path)
    return cache


def _second_pass(dataset: Dataset, first: DetectionCache, path: Path) -> DetectionCache:
    if path.is_file():
        return DetectionCache.load(path)
    # Only where the product's threshold finds nothing.
    missed = {
        i
        for i in range(len(dataset))
        if not (first.confidence[first.of(i)] >= MIN_CONFIDENCE).any()
    }
    detector = FaceDetector(min_confidence=CANDIDATE_CONFIDENCE, max_faces=100, batch_size=1)
    per_image: list[list[tuple[object, ...]]] = [[] for _ in range(len(dataset))]
    seconds = np.zeros(len(dataset), np.float32)
    for i in sorted(missed):
        image = decode(dataset.data[i])
        began = time.perf_counter()
        for k, settings in enumerate(SECOND_PASSES):
            found = detector.detect_second_pass([image], settings)[0]
            per_image[i].extend(_rows(found, 2 + k))
        seconds[i] = (time.perf_counter() - began) / len(SECOND_PASSES)
    cache = _cache(dataset, per_image, seconds)
    cache.save(path)
    return cache


def _merge(first: DetectionCache, second: DetectionCache) -> DetectionCache:
    n = len(first.hashes)
    rows: list[np.ndarray] = []
    for i in range(n):
        rows.append(np.r_[first.of(i)])
        rows.append(np.r_[second.of(i)] + len(first.passes))
    take = np.concatenate(rows).astype(np.int64) if rows else np.zeros(0, np.int64)
    both = {
        k: np.concatenate([getattr(first, k), getattr(second, k)])
        for k in ("boxes", "confidence", "landmarks", "passes")
    }
    counts = np.diff(first.offsets) + np.diff(second.offsets)
    return DetectionCache(
        hashes=first.hashes,
        offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        boxes=both["boxes"][take],
        confidence=both["confidence"][take],
        landmarks=both["landmarks"][take],
        passes=both["passes"][take],
        seconds=first.seconds,
    )


def detect_all(
    dataset: Dataset,
    folder: Path,
    *,
    chunk: int = 32,
    progress: Callable[[int, int], None] | None = None,
) -> DetectionCache:
    """The cached detections of ``dataset`` (computed and saved on the first call): the
    first pass, then the second-pass settings for images the first pass leaves faceless."""
    stem = f"detections-{len(dataset)}-{_digest(dataset)}"
    first = _first_pass(dataset, folder / f"{stem}-first.npz", chunk, progress)
    passes = hashlib.sha256(repr(SECOND_PASSES).encode()).hexdigest()[:8]
    second = _second_pass(dataset, first, folder / f"{stem}-second-{passes}.npz")
    return _merge(first, second)


if __name__ == "__main__":  # the detection stage alone: python -m evaluation.tuning_detect
    from cli.lfw import default_archive

    from .dataset import load_dataset

    def _tick(done: int, total: int) -> None:
        if done % 1024 < 32 or done == total:
            print(f"detected {done}/{total}", flush=True)

    cached = detect_all(
        load_dataset(default_archive()),
        Path.home() / ".cache" / "facesearch" / "tuning",
        progress=_tick,
    )
    print(f"{len(cached.hashes)} images, {len(cached.passes)} detections", flush=True)
