"""The tuning harness's own logic (no TensorFlow): the identity split, which face a variant
chooses, and what keys the per-crop vector cache."""

from __future__ import annotations

import numpy as np
import pytest

from evaluation.tuning import CropVectors, Variant, choose_faces, split_identities
from evaluation.tuning_detect import DetectionCache


def _cache(per_image: list[list[tuple[tuple[int, int, int, int], float, int]]]) -> DetectionCache:
    flat = [d for faces in per_image for d in faces]
    return DetectionCache(
        hashes=np.asarray([f"{i:064x}" for i in range(len(per_image))]),
        offsets=np.concatenate([[0], np.cumsum([len(f) for f in per_image])]).astype(np.int64),
        boxes=np.asarray([d[0] for d in flat], np.int32).reshape(-1, 4),
        confidence=np.asarray([d[1] for d in flat], np.float32),
        landmarks=np.full((len(flat), 5, 2), -1, np.int32),
        passes=np.asarray([d[2] for d in flat], np.int8),
        seconds=np.zeros(len(per_image), np.float32),
    )


def test_split_keeps_each_identity_whole_and_is_reproducible() -> None:
    labels = [f"person{i % 40}" for i in range(200)]
    half_a = split_identities(labels)
    assert np.array_equal(half_a, split_identities(list(labels)))
    a_names = {label for label, a in zip(labels, half_a, strict=True) if a}
    b_names = {label for label, a in zip(labels, half_a, strict=True) if not a}
    assert not a_names & b_names
    assert len(a_names) == 20
    assert len(b_names) == 20
    # Another seed is another split.
    assert not np.array_equal(half_a, split_identities(labels, seed=14))


# One 250x250 image: a small face on the centre, a large one off it, and a confident one in a
# corner; another image with only a low-confidence face and a second-pass face.
SHAPES = np.asarray([(250, 250), (250, 250)])
CACHE = _cache(
    [
        [
            ((100, 100, 50, 50), 0.95, 1),  # contains the centre, nearest it
            ((140, 20, 110, 110), 0.97, 1),  # largest, off centre
            ((0, 0, 30, 30), 0.999, 1),  # most confident
            ((90, 90, 80, 80), 0.85, 1),  # under 0.9
        ],
        [((80, 60, 90, 120), 0.85, 1), ((81, 61, 90, 120), 0.98, 2)],
    ]
)


@pytest.mark.parametrize(
    ("variant", "row"),
    [
        (Variant(), 0),
        (Variant(choose="largest"), 1),
        (Variant(choose="confidence"), 2),
        (Variant(choose="largest-on-centre"), 0),
        # At 0.8 the 80 px face on the centre counts, and is larger than the 50 px one.
        (Variant(choose="largest-on-centre", min_confidence=0.8), 3),
    ],
)
def test_which_face_is_chosen(variant: Variant, row: int) -> None:
    assert choose_faces(CACHE, SHAPES, variant, [0])[0] == row


def test_second_pass_only_where_the_first_finds_nothing() -> None:
    assert choose_faces(CACHE, SHAPES, Variant(), [0, 1]) == {0: 0}
    assert choose_faces(CACHE, SHAPES, Variant(second_pass=2), [0, 1]) == {0: 0, 1: 5}
    # A lower first-pass threshold takes the first pass's face, not the second pass's.
    assert choose_faces(CACHE, SHAPES, Variant(min_confidence=0.8, second_pass=2), [1]) == {1: 4}
    # The second pass's own threshold applies to its faces.
    assert (
        choose_faces(CACHE, SHAPES, Variant(second_pass=2, second_pass_confidence=0.99), [1]) == {}
    )


def test_crop_keys_differ_by_everything_that_shapes_the_crop() -> None:
    box = np.asarray([1, 2, 3, 4])
    base = CropVectors.key("ab" * 32, box, Variant(), mirror=False)
    others = [
        CropVectors.key("cd" * 32, box, Variant(), mirror=False),
        CropVectors.key("ab" * 32, np.asarray([1, 2, 3, 5]), Variant(), mirror=False),
        CropVectors.key("ab" * 32, box, Variant(margin=0.3), mirror=False),
        CropVectors.key("ab" * 32, box, Variant(align=True), mirror=False),
        CropVectors.key("ab" * 32, box, Variant(square=True), mirror=False),
        CropVectors.key("ab" * 32, box, Variant(interpolation="cubic"), mirror=False),
        CropVectors.key("ab" * 32, box, Variant(), mirror=True),
    ]
    assert len({base, *others}) == len(others) + 1
    # What only chooses the face shares the crop (that is what makes those variants cheap).
    for same in (Variant(choose="largest"), Variant(min_confidence=0.8), Variant(flip=True)):
        assert CropVectors.key("ab" * 32, box, same, mirror=False) == base
