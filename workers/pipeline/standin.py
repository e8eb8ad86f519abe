"""A fixed-cost stand-in for the face model, for measuring the plumbing around it.

The plumbing benchmark (``scripts/bench_plumbing.py``) runs the product end to end with this
in place of MTCNN and FaceNet, so what it measures is everything else: reading, storing,
fetching, decoding, cropping, rows, progress, indexing. The stand-in finds one centred face
per image and gives it a unit vector seeded by a hash of the crop (the same image, the same
vector: a redelivered task writes the same rows). Each call *sleeps* its cost (``detect_ms``
an image, ``embed_ms`` a face): that is how an accelerator looks to the CPU, which is free
meanwhile; 0 ms gives the plumbing's own ceiling.

Only the benchmark selects it, through ``STANDIN_ENV`` (``workers.runtime``); its model name
is its own, so its vectors never share a collection with a real model's.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .detector import MIN_CONFIDENCE, MIN_FACE_SIZE, Detection, validate_image
from .embedder import check_crops
from .face_pipeline import FacePipeline
from .weights import ModelSpec, UrlSource

__all__ = [
    "STANDIN_ENV",
    "STANDIN_MODEL",
    "StandInDetector",
    "StandInEmbedder",
    "parse_standin",
    "standin_pipeline",
]

# "detect_ms=2,embed_ms=1" (either may be left out: 0 ms); unset: the real model.
STANDIN_ENV = "FACESEARCH_STANDIN_MODEL"
STANDIN_MODEL = "standin-128"
STANDIN_SPEC = ModelSpec(
    name=STANDIN_MODEL,
    dim=128,
    standardization="fixed",
    weights_sha256="0" * 64,
    weights_size=None,
    source=UrlSource(url="file:///dev/null"),  # never pulled: the stand-in has no weights
    description="fixed-cost stand-in for benchmarks (one centred face, hash-seeded vectors)",
)


def _sleep_ms(ms: float, count: int) -> None:
    if ms > 0 and count > 0:
        time.sleep(ms * count / 1000.0)


class StandInDetector:
    """One face per image: the centred box of half the image's sides."""

    min_confidence = MIN_CONFIDENCE
    min_face_size = MIN_FACE_SIZE
    max_faces = 1
    max_detect_side: int | None = None
    loaded = True

    def __init__(self, *, ms_per_image: float = 0.0, batch_size: int = 32) -> None:
        self.ms_per_image = ms_per_image
        self.batch_size = batch_size

    def load(self) -> None:
        return None

    def detect(self, images: Sequence[np.ndarray]) -> list[list[Detection]]:
        checked = [validate_image(image, i) for i, image in enumerate(images)]
        _sleep_ms(self.ms_per_image, len(checked))
        results: list[list[Detection]] = []
        for image in checked:
            height, width = image.shape[:2]
            w, h = max(1, width // 2), max(1, height // 2)
            x, y = (width - w) // 2, (height - h) // 2
            centre = {"nose": (x + w // 2, y + h // 2)}
            results.append([Detection(box=(x, y, w, h), confidence=0.99, landmarks=centre)])
        return results


class StandInEmbedder:
    """A unit vector per crop, seeded by the crop's bytes: deterministic, like a model."""

    loaded = True

    def __init__(self, *, dim: int, size: int, ms_per_face: float = 0.0) -> None:
        self.dim = dim
        self.size = size
        self.ms_per_face = ms_per_face
        self.batch_size = 32

    def load(self) -> None:
        return None

    def embed(self, crops: np.ndarray) -> np.ndarray:
        check_crops(crops, self.size)
        _sleep_ms(self.ms_per_face, len(crops))
        out = np.empty((len(crops), self.dim), dtype=np.float32)
        for i, crop in enumerate(crops):
            seed = int.from_bytes(hashlib.blake2b(crop.tobytes(), digest_size=8).digest())
            vector = np.random.default_rng(seed).standard_normal(self.dim)
            out[i] = vector / np.linalg.norm(vector)
        return out


def parse_standin(text: str) -> tuple[float, float]:
    """``"detect_ms=2,embed_ms=1"`` -> (2.0, 1.0); a part left out is 0 ms."""
    costs = {"detect_ms": 0.0, "embed_ms": 0.0}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition("=")
        if name.strip() not in costs:
            raise ValueError(f"{STANDIN_ENV}: unknown part {name!r} (detect_ms, embed_ms)")
        try:
            costs[name.strip()] = float(value)
        except ValueError as exc:
            raise ValueError(f"{STANDIN_ENV}: {part!r} is not name=milliseconds") from exc
        if costs[name.strip()] < 0:
            raise ValueError(f"{STANDIN_ENV}: {part!r} is negative")
    return costs["detect_ms"], costs["embed_ms"]


def standin_pipeline(
    *,
    detect_ms: float = 0.0,
    embed_ms: float = 0.0,
    batch_size: int = 32,
    release_memory: bool = True,
) -> FacePipeline:
    """A FacePipeline whose detector and embedder are the stand-ins (crops stay real)."""
    return FacePipeline(
        model_name=STANDIN_MODEL,
        weights_dir=Path(os.devnull),
        batch_size=batch_size,
        max_faces=1,
        spec=STANDIN_SPEC,
        detector=StandInDetector(ms_per_image=detect_ms, batch_size=batch_size),
        embedder=StandInEmbedder(
            dim=STANDIN_SPEC.dim, size=STANDIN_SPEC.image_size, ms_per_face=embed_ms
        ),
        release_memory=release_memory,
    )
