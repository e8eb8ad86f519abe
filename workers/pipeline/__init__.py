"""Face pipeline: MTCNN detection, FaceNet embeddings, model weights.

Importing this package is cheap (numpy, OpenCV): TensorFlow and mtcnn are imported only when
a pipeline is loaded.
"""

from .align import (
    FACE_SIZE,
    MARGIN,
    aligned_crop,
    crop_face,
    crop_faces,
    expand_box,
    standardize,
)
from .detector import MIN_CONFIDENCE, MIN_FACE_SIZE, Detection, FaceDetector, SecondPass
from .embedder import FaceEmbedder, l2_normalize
from .face_pipeline import Face, FacePipeline, Recipe, parse_version
from .weights import (
    DEFAULT_MODEL,
    MODELS,
    ModelSpec,
    UrlSource,
    WeightsError,
    WheelSource,
    get_spec,
    pull,
    sha256_file,
    weights_path,
)

__all__ = [
    "DEFAULT_MODEL",
    "FACE_SIZE",
    "MARGIN",
    "MIN_CONFIDENCE",
    "MIN_FACE_SIZE",
    "MODELS",
    "Detection",
    "Face",
    "FaceDetector",
    "FaceEmbedder",
    "FacePipeline",
    "ModelSpec",
    "Recipe",
    "SecondPass",
    "UrlSource",
    "WeightsError",
    "WheelSource",
    "aligned_crop",
    "crop_face",
    "crop_faces",
    "expand_box",
    "get_spec",
    "l2_normalize",
    "parse_version",
    "pull",
    "sha256_file",
    "standardize",
    "weights_path",
]
