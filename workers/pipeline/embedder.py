"""FaceNet (Inception-ResNet-v1) embeddings, batched.

The architecture comes from keras-facenet (it builds on Keras 3); the weights are loaded into
it from a verified .h5 (``weights.weights_path``). Loading a whole saved model instead is tied
to the Python version that pickled its Lambda layer (FACTS), so we never do that.

Inference goes through one ``tf.function`` whose input signature has an unknown batch
dimension: it is traced once per process, whatever the batch sizes. That is why the last
chunk is *not* padded to the full batch size: padding would avoid retracing (which the
signature already does) at the price of computing up to batch_size-1 dummy faces, e.g. 32
faces of work (~500 ms) for a one-face search query that needs ~30 ms.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from .align import standardize
from .weights import ModelSpec

__all__ = ["FaceEmbedder", "check_crops", "l2_normalize"]


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float32); zero rows stay zero."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, np.float32(1e-12))).astype(np.float32, copy=False)


def check_crops(crops: object, size: int) -> None:
    """Raise ValueError unless ``crops`` is an (n, size, size, 3) uint8 array."""
    if not isinstance(crops, np.ndarray) or crops.dtype != np.uint8:
        raise ValueError(
            f"crops must be a uint8 numpy array, got {getattr(crops, 'dtype', type(crops))}"
        )
    if crops.ndim != 4 or crops.shape[1:] != (size, size, 3):
        raise ValueError(f"crops must have shape (n, {size}, {size}, 3), got {crops.shape}")


class FaceEmbedder:
    def __init__(self, spec: ModelSpec, weights_file: Path, *, batch_size: int = 32) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.spec = spec
        self.weights_file = Path(weights_file)
        self.batch_size = batch_size
        self.load_seconds: float | None = None
        self._infer: Any = None
        self._model: Any = None
        self._lock = threading.Lock()

    @property
    def dim(self) -> int:
        return self.spec.dim

    @property
    def loaded(self) -> bool:
        return self._infer is not None

    def load(self) -> None:
        if self._infer is not None:
            return
        with self._lock:
            if self._infer is not None:
                return
            started = time.perf_counter()
            os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
            # Lazy: TensorFlow costs 2-3 s and ~1 GB; importing this package must stay cheap.
            import tensorflow as tf  # noqa: PLC0415
            from keras_facenet.inception_resnet_v1 import InceptionResNetV1  # noqa: PLC0415

            size = self.spec.image_size
            model = InceptionResNetV1(input_shape=(size, size, 3), classes=self.spec.dim)
            model.load_weights(str(self.weights_file))

            @tf.function(
                input_signature=[tf.TensorSpec(shape=(None, size, size, 3), dtype=tf.float32)],
                reduce_retracing=True,
            )
            def infer(batch: Any) -> Any:
                return model(batch, training=False)

            # Trace now (one face) so the first real request does not pay for it.
            infer(tf.zeros((1, size, size, 3), dtype=tf.float32))
            self._model = model
            self._infer = infer
            self.load_seconds = time.perf_counter() - started

    def embed(self, crops: np.ndarray) -> np.ndarray:
        """(n, 160, 160, 3) uint8 RGB crops -> (n, dim) float32, L2-normalised."""
        check_crops(crops, self.spec.image_size)
        if len(crops) == 0:
            return np.empty((0, self.dim), dtype=np.float32)
        self.load()
        out = np.empty((len(crops), self.dim), dtype=np.float32)
        for start in range(0, len(crops), self.batch_size):
            chunk = standardize(crops[start : start + self.batch_size], self.spec.standardization)
            out[start : start + len(chunk)] = self._infer(chunk).numpy()
        # The model ends in an L2-normalise layer; renormalising in float32 is ~free and
        # guarantees unit vectors for the index's inner-product/cosine metric.
        return l2_normalize(out)
