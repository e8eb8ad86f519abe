"""Images in, faces with embeddings out: MTCNN -> crop -> FaceNet.

One ``FacePipeline`` per worker process: loading TensorFlow and the weights costs ~7 s and
~1.1 GB, so it is done once, lazily (``load()``, or the first call that needs it).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

from core.memory import release_free_heap
from models.embedding import NAMED_MARGIN, version_name
from workers.stages import STAGE_TIMES

from .align import MARGIN, crop_faces
from .detector import (
    MIN_CONFIDENCE,
    MIN_FACE_SIZE,
    Detection,
    FaceDetector,
    SecondPass,
    validate_image,
)
from .embedder import FaceEmbedder, check_crops, l2_normalize
from .weights import DEFAULT_MODEL, ModelSpec, get_spec, weights_path

__all__ = ["Detects", "Embeds", "Face", "FacePipeline", "Recipe", "parse_version"]


class Detects(Protocol):
    """What the pipeline asks of a detector (MTCNN, or the benchmark's stand-in)."""

    batch_size: int
    min_confidence: float
    min_face_size: int
    max_faces: int
    max_detect_side: int | None

    @property
    def loaded(self) -> bool: ...

    def load(self) -> None: ...

    def detect(self, images: Sequence[np.ndarray]) -> list[list[Detection]]: ...


class Embeds(Protocol):
    """What the pipeline asks of an embedder (FaceNet, or the benchmark's stand-in)."""

    batch_size: int

    @property
    def loaded(self) -> bool: ...

    def load(self) -> None: ...

    def embed(self, crops: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class Face:
    box: tuple[int, int, int, int]  # x, y, width, height; original pixels, clipped to the image
    confidence: float
    landmarks: dict[str, tuple[int, int]]  # left_eye, right_eye, nose, mouth_left, mouth_right
    embedding: np.ndarray  # float32, shape (dim,), L2-normalised

    def __eq__(self, other: object) -> bool:
        # The generated __eq__ would compare arrays with ==, which is ambiguous for numpy.
        if not isinstance(other, Face):
            return NotImplemented
        return (
            self.box == other.box
            and self.confidence == other.confidence
            and self.landmarks == other.landmarks
            and np.array_equal(self.embedding, other.embedding)
        )

    def __hash__(self) -> int:
        raise TypeError("Face holds a numpy array and a dict: it is not hashable")


def _eyes(
    detection: Detection,
) -> tuple[tuple[float, float], tuple[float, float]] | None:
    """(left, right) eye landmarks, or None (then the face is cropped unaligned)."""
    marks = detection.landmarks
    if "left_eye" not in marks or "right_eye" not in marks:
        return None
    (lx, ly), (rx, ry) = marks["left_eye"], marks["right_eye"]
    return (float(lx), float(ly)), (float(rx), float(ry))


@dataclass(frozen=True)
class Recipe:
    """What an embedding version names: the model and the options that change its vectors."""

    model_name: str
    margin: float = NAMED_MARGIN
    align: bool = False
    flip: bool = False


def parse_version(version: str) -> Recipe:
    """The recipe of an ``embedding_version`` string (``model[+marginM][+align][+flip]``);
    ValueError for anything else, so a stored version is never half understood."""
    model_name, *options = version.split("+")
    if not model_name:
        raise ValueError(f"embedding version {version!r} names no model")
    margin, align, flip = NAMED_MARGIN, False, False
    for option in options:
        if option == "align":
            align = True
        elif option == "flip":
            flip = True
        elif option.startswith("margin"):
            try:
                margin = float(option.removeprefix("margin"))
            except ValueError:
                raise ValueError(f"embedding version {version!r}: bad margin {option!r}") from None
        else:
            raise ValueError(f"embedding version {version!r}: unknown option {option!r}")
    return Recipe(model_name=model_name, margin=margin, align=align, flip=flip)


class FacePipeline:
    def __init__(
        self,
        *,
        model_name: str = DEFAULT_MODEL,
        weights_dir: Path,
        min_confidence: float = MIN_CONFIDENCE,
        min_face_size: int = MIN_FACE_SIZE,
        max_faces: int = 20,
        margin: float = MARGIN,
        batch_size: int = 32,
        max_detect_side: int | None = None,
        release_memory: bool = True,
        pad_to: int | Literal["auto"] | None = "auto",
        spec: ModelSpec | None = None,
        detector: Detects | None = None,
        embedder: Embeds | None = None,
        flip: bool = False,
        align: bool = False,
        second_pass: SecondPass | None = None,
    ) -> None:
        """``max_detect_side`` (an addition, off by default): detect on a copy downscaled to
        this longer side, crop and embed from the original; see ``detector``.

        ``release_memory``: after each ``process`` call, hand the heap's free pages back to
        the OS (``core.memory``): without it a long-running worker's RSS sits about 500 MB
        higher and wanders from batch to batch. It costs ~30 ms after a batch of 32 LFW
        images (about 1% of the batch's time) and ~4 ms after one image.

        ``pad_to``: detection batched across images of different sizes, each padded to
        sides rounded up to this many pixels; "auto" (the default) does it where a GPU is
        (``detector.FaceDetector``).

        ``spec``, ``detector`` and ``embedder`` replace the model's own parts (the plumbing
        benchmark's fixed-cost stand-in, ``standin``); without them MTCNN and the weights of
        ``model_name`` are used.

        Options measured by the tuning harness (``evaluation.tuning``, docs/evaluation.md
        "Tuning"), all off by default. Each changes the vectors: turning one on is a model
        change (``embedding_version`` says which), and faces embedded without it must be
        re-embedded, never mixed with the new ones.

        ``flip``: each face's vector is the normalised sum of the embeddings of its crop and
        of the crop's mirror image (twice the embedding cost).
        ``align``: the crop is cut from the image rotated so that MTCNN's eye landmarks are
        level (``align.aligned_crop``: same box, margin and size; one affine warp).
        ``second_pass``: images where nothing reaches ``min_confidence`` are detected again
        with these settings (``detector.SecondPass``)."""
        # WeightsError now for an unknown model, not at load.
        spec = spec if spec is not None else get_spec(model_name)
        if not 0.0 <= margin <= 2.0:
            raise ValueError(f"margin is a fraction of the face box, in [0, 2]; got {margin}")
        self.model_name: str = spec.name
        self.dim: int = spec.dim
        self.spec = spec
        self.weights_dir = Path(weights_dir)
        self.margin = margin
        self.flip = flip
        self.align = align
        self.release_memory = release_memory
        self.load_seconds: float | None = None
        self._detector: Detects = detector or FaceDetector(
            min_confidence=min_confidence,
            min_face_size=min_face_size,
            max_faces=max_faces,
            batch_size=batch_size,
            max_detect_side=max_detect_side,
            pad_to=pad_to,
            second_pass=second_pass,
        )
        self._given_embedder = embedder
        self._embedder: Embeds | None = None
        self._batch_size = batch_size
        self._lock = threading.Lock()
        self._versions: dict[str, FacePipeline] = {}

    @property
    def batch_size(self) -> int:
        return self._batch_size

    @batch_size.setter
    def batch_size(self, value: int) -> None:
        # Settable on a loaded pipeline (no reload): only the chunking changes.
        if value < 1:
            raise ValueError(f"batch_size must be >= 1, got {value}")
        self._batch_size = value
        self._detector.batch_size = value
        if self._embedder is not None:
            self._embedder.batch_size = value

    @property
    def embedding_version(self) -> str:
        """The model name plus every option that changes the vectors but not the model (what
        a store of vectors must match before mixing them): ``model_name`` alone with the
        defaults, else e.g. ``facenet-20170512-110547+margin0.3+align+flip``."""
        return version_name(self.model_name, margin=self.margin, align=self.align, flip=self.flip)

    def for_version(self, version: str) -> FacePipeline:
        """A pipeline that makes vectors of ``version`` (another recipe of this model), sharing
        this one's loaded detector and networks: a search answered from the faces of an older
        version embeds its query as they were embedded (never mixing two recipes' vectors).
        ValueError for a version of another model, or one that cannot be read."""
        if version == self.embedding_version:
            return self
        derived = self._versions.get(version)
        if derived is not None:
            return derived
        recipe = parse_version(version)
        if recipe.model_name != self.model_name:
            raise ValueError(
                f"embedding version {version!r} is of another model than {self.model_name!r}"
            )
        self.load()
        derived = FacePipeline(
            model_name=self.model_name,
            weights_dir=self.weights_dir,
            margin=recipe.margin,
            align=recipe.align,
            flip=recipe.flip,
            batch_size=self.batch_size,
            release_memory=self.release_memory,
            spec=self.spec,
            detector=self._detector,
            embedder=self._embedder,
        )
        derived.load()  # both parts are loaded already: this only marks it so
        self._versions[version] = derived
        return derived

    @property
    def min_confidence(self) -> float:
        return self._detector.min_confidence

    @property
    def min_face_size(self) -> int:
        return self._detector.min_face_size

    @property
    def max_faces(self) -> int:
        return self._detector.max_faces

    @property
    def loaded(self) -> bool:
        return self._embedder is not None and self._embedder.loaded and self._detector.loaded

    def load(self) -> None:
        """Load MTCNN and FaceNet (verified weights). Idempotent; raises WeightsError."""
        if self.loaded:
            return
        with self._lock:
            if self.loaded:
                return
            started = time.perf_counter()
            embedder = self._given_embedder
            if embedder is None:
                # Verify before the expensive TensorFlow import: a missing or corrupt file
                # fails fast with a message that says what to do.
                path = weights_path(self.model_name, self.weights_dir)
                embedder = FaceEmbedder(self.spec, path, batch_size=self.batch_size)
            embedder.load()
            self._detector.load()
            self._embedder = embedder
            self.load_seconds = time.perf_counter() - started

    def detect(self, images: Sequence[np.ndarray]) -> list[list[Detection]]:
        """Faces in each HxWx3 uint8 RGB image, best first, at most ``max_faces`` each."""
        self._validate(images)
        self.load()
        return self._detector.detect(images)

    def embed(self, crops: np.ndarray) -> np.ndarray:
        """(n, 160, 160, 3) uint8 crops -> (n, dim) float32, L2-normalised, in batches.
        With ``flip``: the normalised sum of each crop's and its mirror's embeddings."""
        check_crops(crops, self.spec.image_size)  # before loading: bad input fails fast
        self.load()
        assert self._embedder is not None  # load() sets it
        if not self.flip or len(crops) == 0:
            return self._embedder.embed(crops)
        # One call for both, so the mirrors share the embedder's batches.
        both = self._embedder.embed(np.concatenate([crops, crops[:, :, ::-1]]))
        return l2_normalize(both[: len(crops)] + both[len(crops) :])

    def process(self, images: Sequence[np.ndarray]) -> list[list[Face]]:
        """One list of faces per input image, best first, at most ``max_faces`` each."""
        self._validate(images)
        with STAGE_TIMES.timed("detect", len(images)):
            detections = self.detect(images)
        size = self.spec.image_size
        with STAGE_TIMES.timed("crop", len(images)):
            crops = [
                crop_faces(
                    image,
                    [d.box for d in found],
                    margin=self.margin,
                    size=size,
                    eyes=[_eyes(d) for d in found] if self.align else None,
                )
                for image, found in zip(images, detections, strict=True)
            ]
            all_crops = (
                np.concatenate(crops) if crops else np.empty((0, size, size, 3), dtype=np.uint8)
            )
        # All crops of the call in one go: the embedder batches across images.
        with STAGE_TIMES.timed("embed", len(all_crops)):
            embeddings = self.embed(all_crops)

        results: list[list[Face]] = []
        offset = 0
        for found in detections:
            faces = [
                Face(
                    box=d.box,
                    confidence=d.confidence,
                    landmarks=d.landmarks,
                    embedding=embeddings[offset + k].copy(),
                )
                for k, d in enumerate(found)
            ]
            offset += len(found)
            results.append(faces)
        if self.release_memory:
            # The batch's buffers are garbage now (only the small embeddings were copied out).
            release_free_heap()
        return results

    @staticmethod
    def _validate(images: Sequence[np.ndarray]) -> None:
        # Check everything before any work so a bad image fails the call in milliseconds,
        # not after a batch of detections.
        if isinstance(images, np.ndarray):
            raise ValueError(
                "images must be a sequence of HxWx3 arrays; wrap a single image in a list"
            )
        for i, image in enumerate(images):
            validate_image(image, i)
