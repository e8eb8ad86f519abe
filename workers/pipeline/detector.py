"""MTCNN face detection, batched.

MTCNN (``mtcnn==1.0.0``) is about 4x faster when same-sized images go through
``detect_faces`` as one list (FACTS: ~95 ms an LFW image alone, ~22-40 ms in a list of 16-32),
so ``FaceDetector.detect`` groups its inputs by shape, runs each group in chunks and puts the
results back in input order.

Two defects of mtcnn 1.0.0 are corrected here (see ``_patch_mtcnn``), because both change
results silently:

* Its score sort is unstable. PNet scores saturate at exactly 1.0, and which of several tied
  boxes survives NMS then depends on the *other* images in the batch: the same image gave
  boxes up to 4 px apart alone and in a batch of 16, hence different embeddings for the same
  face depending on what it was uploaded with. A stable sort makes an image's result
  independent of its batch.
* Its image pyramid counts scales as if ``min_face_size`` were 12, so for
  ``min_face_size`` above ~24 the last scales shrink the image below PNet's 12 px input, TF
  raises, and ``detect_faces`` swallows the error as "no faces" for the *whole batch* (this is
  why FACTS saw min_face_size=60 find nothing on LFW). The pyramid now stops at 12 px.

TensorFlow and mtcnn are imported in ``load()`` only.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import cv2
import numpy as np

__all__ = [
    "GPU_PAD_TO",
    "LANDMARK_NAMES",
    "MIN_CONFIDENCE",
    "MIN_FACE_SIZE",
    "Detection",
    "FaceDetector",
    "SecondPass",
    "validate_image",
]

log = logging.getLogger(__name__)

# MTCNN's final-stage (ONet) probability. On LFW every true face scored >= 0.95 and nearly all
# >= 0.99 (see the tests and the report); the few spurious boxes MTCNN returns at its own 0.8
# threshold (background faces cut by the frame, textures) cluster below 0.9. 0.9 keeps real
# faces (a missed face in a query is worse than a stray vector in the index) and drops most
# junk. keras-facenet uses 0.95.
MIN_CONFIDENCE = 0.9

# MTCNN's own default and FaceNet's (davidsandberg) alignment default. Faces under ~20 px give
# poor embeddings anyway. Larger values speed detection up on big photos (fewer pyramid
# levels); with the pyramid fix below they work, but check them on real faces first.
MIN_FACE_SIZE = 20

# PNet's input window: an image (or pyramid level) smaller than this cannot hold a face.
_PNET_WINDOW = 12
_ONET_DEFAULT_THRESHOLD = 0.8

# A chunk of images is stacked into one float32 tensor (12 bytes a pixel) plus its pyramid
# (~2x). Cap the pixels per chunk so 32 phone photos (32 x 12 MP) cannot take ~10 GB; at
# LFW size (250x250) the cap allows 256 images, so batch_size is what limits.
_MAX_CHUNK_PIXELS = 16_000_000

# With a GPU, images are padded to sides rounded up to this many pixels, so that images of
# nearby sizes are detected in one batch (``FaceDetector.pad_to``).
GPU_PAD_TO = 64

LANDMARK_NAMES: tuple[str, ...] = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


@dataclass(frozen=True)
class SecondPass:
    """A second detection for an image where nothing reaches ``min_confidence`` (off by
    default: ``FaceDetector(second_pass=SecondPass())`` turns it on).

    On all of LFW, 11 images had no face at 0.9 with the first pass (docs/evaluation.md,
    "Tuning"). MTCNN misses such faces early: PNet/RNet drop the proposal (a small, blurred
    or half-turned face) before ONet scores it. The retry enlarges the image (PNet's 12 px
    window then sees finer detail) and lowers the first two stages' thresholds, and accepts
    what ONet scores at ``min_confidence`` or more. It costs one more detection, on the
    enlarged image, for those images only.
    """

    upscale: float = 2.0  # the image is enlarged by this factor (bilinear) before detection
    min_face_size: int = 20  # in the enlarged image's pixels
    threshold_pnet: float = 0.5  # mtcnn's defaults: 0.6
    threshold_rnet: float = 0.6  # 0.7
    min_confidence: float = 0.8  # ONet probability accepted by the retry (mtcnn's own 0.8)

    def __post_init__(self) -> None:
        if not 1.0 <= self.upscale <= 4.0:
            raise ValueError(f"upscale must be in [1, 4], got {self.upscale}")
        if self.min_face_size < _PNET_WINDOW:
            raise ValueError(f"min_face_size must be >= {_PNET_WINDOW}, got {self.min_face_size}")
        for name in ("threshold_pnet", "threshold_rnet", "min_confidence"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")


@dataclass(frozen=True)
class Detection:
    box: tuple[int, int, int, int]  # x, y, width, height; original pixels, clipped to the image
    confidence: float
    # Landmarks are reported as detected: for a face cut by the frame they may lie outside it.
    landmarks: dict[str, tuple[int, int]]


def validate_image(image: object, index: int = 0) -> np.ndarray:
    """Return ``image`` if it is an HxWx3 uint8 array, else raise ValueError."""
    if not isinstance(image, np.ndarray):
        raise ValueError(
            f"image {index}: expected a numpy array (HxWx3 uint8 RGB), got {type(image).__name__}"
        )
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(
            f"image {index}: expected shape HxWx3 (RGB), got {image.shape}; convert grayscale "
            "or RGBA images to RGB first (e.g. PIL's Image.convert('RGB'))"
        )
    if image.dtype != np.uint8:
        raise ValueError(
            f"image {index}: expected dtype uint8 (0-255 RGB), got {image.dtype}; convert "
            "before calling (e.g. np.clip(x * 255, 0, 255).astype(np.uint8) for 0-1 floats)"
        )
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"image {index}: empty image, shape {image.shape}")
    return image


_patch_lock = threading.Lock()
_patched = False


def _patch_mtcnn() -> None:
    """Fix the two mtcnn 1.0.0 defects described in the module docstring (process-wide)."""
    global _patched  # noqa: PLW0603 - a process-wide one-time patch
    with _patch_lock:
        if _patched:
            return
        version = importlib.metadata.version("mtcnn")
        if version != "1.0.0":
            # The fixes were written against 1.0.0 (pinned in pyproject); re-check them
            # before extending this to another version.
            log.warning("mtcnn %s is not 1.0.0: not patching its sort and pyramid", version)
            _patched = True
            return
        # Lazy: importing mtcnn imports TensorFlow.
        from mtcnn.stages import stage_pnet  # noqa: PLC0415
        from mtcnn.utils import bboxes, images  # noqa: PLC0415

        def sort_by_scores(tensor: Any, scores: Any, ascending: bool = True) -> Any:
            # Stable: tied boxes keep their per-image order (np.where's raster order), which
            # does not depend on the other images in the batch.
            key = scores if ascending else -np.asarray(scores)
            return tensor[np.argsort(key, kind="stable")]

        def build_scale_pyramid(
            width: int,
            height: int,
            min_face_size: int,
            scale_factor: float,
            min_size: int = _PNET_WINDOW,
        ) -> np.ndarray:
            # Every level keeps the image's short side >= PNet's window. For the default
            # min_face_size=20 this gives upstream's levels for 98% of image sizes (20-5000
            # px), and one more, smallest level (for the largest faces) for the rest.
            min_dim = min(width, height)
            scale = min_size / min_face_size
            scales: list[float] = []
            while min_dim * scale >= min_size:
                scales.append(scale)
                scale *= scale_factor
            return np.asarray(scales, dtype=np.float64)

        bboxes.sort_by_scores = sort_by_scores
        images.build_scale_pyramid = build_scale_pyramid
        stage_pnet.build_scale_pyramid = build_scale_pyramid  # imported there by name
        _patched = True


def _compile_stages(mtcnn: Any) -> None:
    """Run MTCNN's three networks as TensorFlow graphs instead of eagerly.

    mtcnn calls each Keras network eagerly, once per pyramid level: for one LFW image that
    is about a dozen calls, and Keras's and TensorFlow's Python dispatch cost more than the
    convolutions. As graph functions, measured here on 40 LFW images: one image's detection
    114 -> 29 ms, and 73 -> 24 ms an image in batches of 32, with identical boxes, landmarks
    and scores. One signature with free batch, height and width: PNet sees every pyramid
    size, and RNet and ONet their fixed patches, without a retrace per shape.
    """
    import tensorflow as tf  # noqa: PLC0415 - loaded with mtcnn already

    signature = [tf.TensorSpec([None, None, None, 3], tf.float32)]
    # Each network's input window (PNet, RNet, ONet): traced now, at load, so that the first
    # search does not pay for it (about a second here).
    for stage, window in zip(mtcnn.stages, (12, 24, 48), strict=True):
        stage._model = tf.function(stage._model, input_signature=signature)
        stage._model(tf.zeros((1, window, window, 3), tf.float32))


def _padded(image: np.ndarray, multiple: int | str | None) -> np.ndarray:
    """``image`` padded right and bottom (black) to sides that are multiples of ``multiple``.

    Boxes found in it are boxes of the image itself (the origin does not move); whatever
    reaches into the padding is clipped to the image when converted."""
    if not isinstance(multiple, int):
        return image
    height, width = image.shape[:2]
    padded_h, padded_w = -(-height // multiple) * multiple, -(-width // multiple) * multiple
    if (padded_h, padded_w) == (height, width):
        return image
    out = np.zeros((padded_h, padded_w, 3), dtype=image.dtype)
    out[:height, :width] = image
    return out


class FaceDetector:
    """MTCNN with batching by image shape, confidence filtering and plain-Python results."""

    def __init__(
        self,
        *,
        min_confidence: float = MIN_CONFIDENCE,
        min_face_size: int = MIN_FACE_SIZE,
        max_faces: int = 20,
        batch_size: int = 32,
        max_detect_side: int | None = None,
        pad_to: int | Literal["auto"] | None = None,
        second_pass: SecondPass | None = None,
    ) -> None:
        if pad_to not in (None, "auto") and (not isinstance(pad_to, int) or pad_to < 1):
            raise ValueError(
                f"pad_to must be a positive number of pixels, None or 'auto': {pad_to}"
            )
        if max_detect_side is not None and max_detect_side < min_face_size:
            raise ValueError(
                f"max_detect_side must be >= min_face_size ({min_face_size}), got {max_detect_side}"
            )
        if not 0.0 <= min_confidence <= 1.0:
            raise ValueError(f"min_confidence must be in [0, 1], got {min_confidence}")
        if min_face_size < _PNET_WINDOW:
            raise ValueError(f"min_face_size must be >= {_PNET_WINDOW}, got {min_face_size}")
        if max_faces < 1:
            raise ValueError(f"max_faces must be >= 1, got {max_faces}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.min_confidence = min_confidence
        self.min_face_size = min_face_size
        self.max_faces = max_faces
        self.batch_size = batch_size
        # Optional (None: off): detect on a copy whose longer side is at most this many
        # pixels, then crop from the full-resolution image. MTCNN's cost grows with the pixel
        # count: a 4000x3000 photo took 4.6 s and +1.2 GB RSS here, 1000x750 ~0.3 s. The
        # price: faces under min_face_size * longer_side / max_detect_side pixels are missed.
        self.max_detect_side = max_detect_side
        # Detection batched across images of different sizes: each image is padded (right
        # and bottom, black) to its sides rounded up to a multiple of ``pad_to`` pixels, so
        # that images of nearby sizes share one batch. An image's padded size depends on it
        # alone, so its faces do not depend on what it is batched with. Worth it where a
        # batch costs about what one image does (a GPU): "auto" turns it on there. On a CPU
        # a batch costs about its images' pixels, and the padding only adds pixels.
        self.pad_to = pad_to
        # Off (None) by default; see SecondPass. Turning it on changes which images get a face.
        self.second_pass = second_pass
        self.load_seconds: float | None = None
        self._mtcnn: Any = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._mtcnn is not None

    def load(self) -> None:
        if self._mtcnn is not None:
            return
        with self._lock:
            if self._mtcnn is not None:
                return
            started = time.perf_counter()
            # Before the first TensorFlow import of the process; setdefault keeps an
            # operator's explicit choice.
            os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
            from mtcnn import MTCNN  # noqa: PLC0415 - imports TensorFlow: only when loading

            _patch_mtcnn()
            mtcnn = MTCNN()
            _compile_stages(mtcnn)
            if self.pad_to == "auto":
                import tensorflow as tf  # noqa: PLC0415 - loaded with mtcnn already

                self.pad_to = GPU_PAD_TO if tf.config.list_physical_devices("GPU") else None
            self._mtcnn = mtcnn
            self.load_seconds = time.perf_counter() - started

    def detect(self, images: Sequence[np.ndarray]) -> list[list[Detection]]:
        """Faces in each image (HxWx3 uint8 RGB), best first, at most ``max_faces`` each."""
        checked = [validate_image(image, i) for i, image in enumerate(images)]
        results: list[list[Detection]] = [[] for _ in checked]
        if not checked:
            return results
        self.load()

        # What MTCNN sees for each image, and the factor back to the original's pixels.
        work: list[tuple[np.ndarray, float]] = [self._detection_input(im) for im in checked]
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for i, (image, back) in enumerate(work):
            # An image whose short side is under min_face_size cannot contain a detectable
            # face (and gives MTCNN an empty pyramid): skip it.
            if min(image.shape[:2]) >= self.min_face_size:
                padded = _padded(image, self.pad_to)
                work[i] = (padded, back)
                by_shape.setdefault(padded.shape, []).append(i)

        for shape, indices in by_shape.items():
            per_chunk = max(1, min(self.batch_size, _MAX_CHUNK_PIXELS // (shape[0] * shape[1])))
            for start in range(0, len(indices), per_chunk):
                chunk = indices[start : start + per_chunk]
                raw = self._run_mtcnn([work[i][0] for i in chunk])
                for i, faces in zip(chunk, raw, strict=True):
                    results[i] = self._convert(faces, checked[i].shape, work[i][1])
        if self.second_pass is not None:
            retry = [i for i, found in enumerate(results) if not found]
            again = self.detect_second_pass([checked[i] for i in retry], self.second_pass)
            for i, found in zip(retry, again, strict=True):
                results[i] = found
        return results

    def detect_second_pass(
        self, images: Sequence[np.ndarray], settings: SecondPass
    ) -> list[list[Detection]]:
        """Each image detected once with ``settings`` (enlarged, lower PNet/RNet thresholds),
        one image at a time; faces at ``settings.min_confidence`` or more, in the original
        image's pixels. ``detect`` calls it for images where it found nothing."""
        checked = [validate_image(image, i) for i, image in enumerate(images)]
        self.load()
        results: list[list[Detection]] = []
        for image in checked:
            work, back = self._detection_input(image)
            if settings.upscale != 1.0:
                height, width = work.shape[:2]
                size = (round(width * settings.upscale), round(height * settings.upscale))
                work = cv2.resize(np.ascontiguousarray(work), size, interpolation=cv2.INTER_LINEAR)
                back *= width / size[0]
            if min(work.shape[:2]) < settings.min_face_size:
                results.append([])
                continue
            raw = self._run_mtcnn(
                [work],
                min_face_size=settings.min_face_size,
                threshold_pnet=settings.threshold_pnet,
                threshold_rnet=settings.threshold_rnet,
                threshold_onet=settings.min_confidence,
            )
            results.append(self._convert(raw[0], image.shape, back, settings.min_confidence))
        return results

    def _detection_input(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        """The image MTCNN runs on and the factor that maps its pixels back."""
        height, width = image.shape[:2]
        longest = max(height, width)
        if self.max_detect_side is None or longest <= self.max_detect_side:
            return image, 1.0
        scale = self.max_detect_side / longest
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        small = cv2.resize(np.ascontiguousarray(image), size, interpolation=cv2.INTER_AREA)
        # Map back with the factor actually applied (rounding), along the longer side.
        back = width / size[0] if width >= height else height / size[1]
        return small, back

    def _run_mtcnn(self, images: list[np.ndarray], **options: Any) -> list[list[dict[str, Any]]]:
        raw = self._mtcnn.detect_faces(
            [np.ascontiguousarray(image) for image in images],
            **{
                "min_face_size": self.min_face_size,
                "threshold_onet": min(_ONET_DEFAULT_THRESHOLD, self.min_confidence),
                **options,
            },
        )
        # With no proposal at all in the chunk, mtcnn returns a flat empty list instead of
        # one list per image.
        if len(raw) != len(images):
            if any(raw):
                raise RuntimeError(f"mtcnn returned {len(raw)} results for {len(images)} images")
            return [[] for _ in images]
        return list(raw)

    def _convert(
        self,
        faces: list[dict[str, Any]],
        shape: tuple[int, ...],
        back: float,
        min_confidence: float | None = None,
    ) -> list[Detection]:
        height, width = int(shape[0]), int(shape[1])
        floor = self.min_confidence if min_confidence is None else min_confidence
        detections: list[Detection] = []
        for face in faces:
            confidence = float(face["confidence"])
            if confidence < floor:
                continue
            x, y, w, h = (float(v) * back for v in face["box"])
            x1, y1 = max(0, round(x)), max(0, round(y))
            x2, y2 = min(width, round(x + w)), min(height, round(y + h))
            if x2 - x1 < 1 or y2 - y1 < 1:
                continue
            keypoints = face.get("keypoints", {})
            landmarks = {
                name: (
                    round(float(keypoints[name][0]) * back),
                    round(float(keypoints[name][1]) * back),
                )
                for name in LANDMARK_NAMES
                if name in keypoints
            }
            detections.append(
                Detection(
                    box=(x1, y1, x2 - x1, y2 - y1), confidence=confidence, landmarks=landmarks
                )
            )
        # Stable sort: equal confidences keep MTCNN's order, so results are reproducible.
        detections.sort(key=lambda d: -d.confidence)
        return detections[: self.max_faces]
