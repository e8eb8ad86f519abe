"""The compared pipelines' image -> vector step, and a cache of its results by image hash.

Each embedder turns decoded images into one vector per image, or none:

* ``mtcnn-facenet``: the product's pipeline (``FacePipeline.process`` as the settings
  configure it: MTCNN with its second pass, the crop, alignment, flip, FaceNet). With several
  faces in an image it keeps the face the product gives an image's label to
  (``models.face.prominent_face``: of the faces at least half as large as the largest, the
  one nearest the image centre; on LFW, always its subject), so the gallery measured here is
  the product's labelled faces. An image where MTCNN finds no
  face gets no vector, as in the product, which indexes nothing for it.
* ``facenet-nodetect``: the largest centred square of the whole image, resized to FaceNet's
  input: what detection adds.
* ``resnet50`` / ``mtcnn-resnet50``: Keras ResNet50 (ImageNet, 2048-d global average pool) on
  the whole image or on the MTCNN crop, built by ``keras.applications.ResNet50`` from a local
  weights file. There is no fallback: without the file these pipelines do not run.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import cv2
import numpy as np

from models.face import prominent_face
from workers.pipeline.align import crop_face
from workers.pipeline.embedder import l2_normalize
from workers.pipeline.weights import sha256_file

from .dataset import Dataset, decode

if TYPE_CHECKING:
    from workers.pipeline import Detection, FacePipeline

__all__ = [
    "EmbedResult",
    "Embedder",
    "EmbeddingCache",
    "FaceNetCentreCrop",
    "FaceNetMtcnn",
    "ResNet50Embedder",
    "WeightsUnavailableError",
    "central_detection",
    "centre_crop",
    "embed_dataset",
]

RESNET_SIZE = 224
# The product's rule for which face an image's label names (part of the cache key).
LABELLED_FACE = "nearest the image centre among faces >= 0.5 x the largest's area"


class WeightsUnavailableError(RuntimeError):
    """A pipeline's weights are not on this machine: its rows are reported as not run."""


@dataclass
class EmbedResult:
    vectors: np.ndarray  # (n, dim) float32, L2-normalised; zero rows where found is False
    found: np.ndarray  # (n,) bool: a face (or, without detection, the image) was embedded
    boxes: np.ndarray  # (n, 4) int32 x, y, w, h of the face used; -1 without one
    faces: np.ndarray  # (n,) int32 faces detected (1 for pipelines without detection)


class Embedder(Protocol):
    name: str
    dim: int

    def describe(self) -> dict[str, Any]:
        """Model, weights hash and parameters: everything that changes the vectors."""
        ...

    def embed(self, images: Sequence[np.ndarray]) -> EmbedResult: ...


def cache_key(embedder: Embedder) -> str:
    """File-name-safe key: the pipeline's name plus a hash of everything in ``describe()``."""
    blob = json.dumps(embedder.describe(), sort_keys=True).encode()
    return f"{embedder.name}-{hashlib.sha256(blob).hexdigest()[:16]}"


def central_detection(found: Sequence[Detection], shape: Sequence[int]) -> Detection | None:
    """The detection whose box centre is nearest the image centre (the first such, in the
    detector's confidence order, on a tie); None without detections."""
    if not found:
        return None
    cy, cx = shape[0] / 2, shape[1] / 2
    return min(
        found,
        key=lambda d: (d.box[0] + d.box[2] / 2 - cx) ** 2 + (d.box[1] + d.box[3] / 2 - cy) ** 2,
    )


def centre_crop(image: np.ndarray, size: int) -> np.ndarray:
    """The largest centred square of ``image``, resized to ``size`` x ``size``."""
    height, width = image.shape[:2]
    side = min(height, width)
    y, x = (height - side) // 2, (width - side) // 2
    square = np.ascontiguousarray(image[y : y + side, x : x + side])
    interpolation = cv2.INTER_AREA if side >= size else cv2.INTER_LINEAR
    return cv2.resize(square, (size, size), interpolation=interpolation).astype(np.uint8)


def _empty(n: int, dim: int) -> EmbedResult:
    return EmbedResult(
        vectors=np.zeros((n, dim), np.float32),
        found=np.zeros(n, bool),
        boxes=np.full((n, 4), -1, np.int32),
        faces=np.zeros(n, np.int32),
    )


def _pipeline_description(pipeline: FacePipeline) -> dict[str, Any]:
    return {
        "model": pipeline.model_name,
        "weights_sha256": pipeline.spec.weights_sha256,
        "standardization": pipeline.spec.standardization,
        "image_size": pipeline.spec.image_size,
    }


class FaceNetMtcnn:
    """The product's path, exactly as a worker runs it: ``FacePipeline.process`` (detection
    with its second pass, the crop, alignment and flip: whatever the pipeline is configured
    with; ``workers.runtime.build_pipeline`` configures it from the settings), then the face
    the image's label names (``models.face.prominent_face``). Every face of the image is
    embedded, as the worker does, and the labelled one is kept. ``facesearch calibrate``
    fits on these very vectors, so both share one cache."""

    name = "mtcnn-facenet"

    def __init__(self, pipeline: FacePipeline) -> None:
        self.pipeline = pipeline
        self.dim = pipeline.dim

    def describe(self) -> dict[str, Any]:
        second = getattr(self.pipeline._detector, "second_pass", None)  # no public accessor
        return {
            **_pipeline_description(self.pipeline),
            "detector": "mtcnn",
            "min_confidence": self.pipeline.min_confidence,
            "min_face_size": self.pipeline.min_face_size,
            "margin": self.pipeline.margin,
            "max_faces": self.pipeline.max_faces,
            "max_detect_side": self.pipeline._detector.max_detect_side,  # no public accessor
            "face": LABELLED_FACE,
            "embedding_version": self.pipeline.embedding_version,
            "align": self.pipeline.align,
            "flip": self.pipeline.flip,
            "second_pass": None if second is None else asdict(second),
        }

    def embed(self, images: Sequence[np.ndarray]) -> EmbedResult:
        result = _empty(len(images), self.dim)
        for i, (image, faces) in enumerate(zip(images, self.pipeline.process(images), strict=True)):
            result.faces[i] = len(faces)
            chosen = prominent_face(
                [f.box for f in faces], int(image.shape[1]), int(image.shape[0])
            )
            if chosen is None:
                continue
            result.vectors[i] = faces[chosen].embedding
            result.boxes[i] = faces[chosen].box
            result.found[i] = True
        return result


class FaceNetCentreCrop:
    """No detection: the centred square of the whole image -> FaceNet."""

    name = "facenet-nodetect"

    def __init__(self, pipeline: FacePipeline) -> None:
        self.pipeline = pipeline
        self.dim = pipeline.dim

    def describe(self) -> dict[str, Any]:
        return {**_pipeline_description(self.pipeline), "crop": "largest centred square"}

    def embed(self, images: Sequence[np.ndarray]) -> EmbedResult:
        result = _empty(len(images), self.dim)
        if not images:
            return result
        size = self.pipeline.spec.image_size
        result.vectors[:] = self.pipeline.embed(np.stack([centre_crop(im, size) for im in images]))
        result.found[:] = True
        result.faces[:] = 1
        for i, image in enumerate(images):
            side = min(image.shape[:2])
            result.boxes[i] = (
                (image.shape[1] - side) // 2,
                (image.shape[0] - side) // 2,
                side,
                side,
            )
        return result


class ResNet50Embedder:
    """Keras ResNet50 (ImageNet), 2048-d global average pool, on the whole image (centred
    square) or on the MTCNN face crop (with the product's margin)."""

    dim = 2048

    def __init__(
        self, weights: Path | None, *, detect_with: FacePipeline | None = None, batch_size: int = 32
    ) -> None:
        if weights is None or not Path(weights).is_file():
            where = f"at {weights}" if weights else "configured (RESNET50_WEIGHTS)"
            raise WeightsUnavailableError(f"ImageNet ResNet50 weights are not {where}")
        self.weights = Path(weights)
        self.weights_sha256 = sha256_file(self.weights)
        self.detect_with = detect_with
        self.batch_size = batch_size
        self.name = "mtcnn-resnet50" if detect_with is not None else "resnet50"
        self._model: Any = None

    def describe(self) -> dict[str, Any]:
        described: dict[str, Any] = {
            "model": "keras.applications.ResNet50 (ImageNet, include_top=False, pooling=avg)",
            "weights_file": str(self.weights),
            "weights_sha256": self.weights_sha256,
            "image_size": RESNET_SIZE,
            "preprocess": "keras.applications.resnet50.preprocess_input",
        }
        if self.detect_with is not None:
            described |= {
                "detector": "mtcnn",
                "min_confidence": self.detect_with.min_confidence,
                "min_face_size": self.detect_with.min_face_size,
                "margin": self.detect_with.margin,
                "face": "nearest the image centre",
            }
        else:
            described["crop"] = "largest centred square"
        return described

    def _load(self) -> Any:
        if self._model is None:
            os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
            import keras  # noqa: PLC0415 - TensorFlow: only when this pipeline runs

            # The real Keras loading code, from a local file: it raises if the file does not
            # fit the architecture (e.g. the with-top file), never falls back to random weights.
            self._model = keras.applications.ResNet50(
                weights=str(self.weights),
                include_top=False,
                pooling="avg",
                input_shape=(RESNET_SIZE, RESNET_SIZE, 3),
            )
        return self._model

    def embed(self, images: Sequence[np.ndarray]) -> EmbedResult:
        result = _empty(len(images), self.dim)
        if not images:
            return result
        rows: list[int] = []
        crops: list[np.ndarray] = []
        if self.detect_with is None:
            rows = list(range(len(images)))
            crops = [centre_crop(im, RESNET_SIZE) for im in images]
            result.faces[:] = 1
        else:
            margin = self.detect_with.margin
            for i, (image, found) in enumerate(
                zip(images, self.detect_with.detect(images), strict=True)
            ):
                result.faces[i] = len(found)
                chosen = central_detection(found, image.shape)
                if chosen is not None:
                    result.boxes[i] = chosen.box
                    rows.append(i)
                    crops.append(crop_face(image, chosen.box, margin=margin, size=RESNET_SIZE))
        if not crops:
            return result
        import keras  # noqa: PLC0415

        model = self._load()
        batch = keras.applications.resnet50.preprocess_input(np.stack(crops).astype(np.float32))
        out = np.asarray(model.predict(batch, batch_size=self.batch_size, verbose=0))
        result.vectors[rows] = l2_normalize(out)
        result.found[rows] = True
        return result


class EmbeddingCache:
    """One embedder's results by image sha256, in ``<folder>/<cache_key>.npz``.

    Saved after every chunk (atomically), so an interrupted run resumes where it stopped.
    """

    def __init__(self, folder: Path, embedder: Embedder) -> None:
        self.key = cache_key(embedder)
        self.path = Path(folder) / f"{self.key}.npz"
        self.meta_path = Path(folder) / f"{self.key}.json"
        self.dim = embedder.dim
        self.description = embedder.describe()
        self.rows: dict[str, int] = {}
        self.store = _empty(0, self.dim)
        self.seconds = 0.0  # embedding time spent on what is cached, over all runs
        if self.path.is_file():
            with np.load(self.path) as saved:
                self.rows = {str(h): i for i, h in enumerate(saved["hashes"])}
                self.store = EmbedResult(
                    saved["vectors"], saved["found"], saved["boxes"], saved["faces"]
                )
            if self.meta_path.is_file():
                self.seconds = float(json.loads(self.meta_path.read_text())["seconds"])

    def missing(self, hashes: Sequence[str]) -> list[int]:
        return [i for i, h in enumerate(hashes) if h not in self.rows]

    def add(self, hashes: Sequence[str], result: EmbedResult, seconds: float) -> None:
        new = [(h, i) for i, h in enumerate(hashes) if h not in self.rows]
        if not new:
            return
        take = [i for _, i in new]
        base = len(self.rows)
        for k, (h, _) in enumerate(new):
            self.rows[h] = base + k
        self.store = EmbedResult(
            np.concatenate([self.store.vectors, result.vectors[take]]),
            np.concatenate([self.store.found, result.found[take]]),
            np.concatenate([self.store.boxes, result.boxes[take]]),
            np.concatenate([self.store.faces, result.faces[take]]),
        )
        self.seconds += seconds

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp.npz")
        np.savez(
            tmp,
            hashes=np.asarray(list(self.rows), dtype="U64"),
            vectors=self.store.vectors,
            found=self.store.found,
            boxes=self.store.boxes,
            faces=self.store.faces,
        )
        os.replace(tmp, self.path)
        meta = {"description": self.description, "seconds": self.seconds, "images": len(self.rows)}
        self.meta_path.write_text(json.dumps(meta, indent=2, sort_keys=True))

    def lookup(self, hashes: Sequence[str]) -> EmbedResult:
        idx = [self.rows[h] for h in hashes]
        return EmbedResult(
            self.store.vectors[idx],
            self.store.found[idx],
            self.store.boxes[idx],
            self.store.faces[idx],
        )


def embed_dataset(
    embedder: Embedder,
    dataset: Dataset,
    cache: EmbeddingCache,
    *,
    chunk: int = 256,
    progress: Callable[[int], None] | None = None,
) -> tuple[EmbedResult, float]:
    """Every image's result in dataset order, embedding only what the cache lacks.

    Returns the results and the seconds spent embedding in this call.
    """
    todo = cache.missing(dataset.hashes)
    spent = 0.0
    for start in range(0, len(todo), chunk):
        part = todo[start : start + chunk]
        started = time.perf_counter()
        images = [decode(dataset.data[i]) for i in part]
        result = embedder.embed(images)
        seconds = time.perf_counter() - started
        spent += seconds
        cache.add([dataset.hashes[i] for i in part], result, seconds)
        cache.save()
        if progress is not None:
            progress(len(part))
    return cache.lookup(dataset.hashes), spent
