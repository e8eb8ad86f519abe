"""LFW as an evaluation set: every image with its identity and content hash, and pairs.txt.

The archive is read once, as a stream, and the JPEG bytes are kept in memory (~105 MB for all
of LFW): the pipelines decode them in chunks, and nothing is extracted to disk.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from cli.lfw import LfwImage, iter_images

__all__ = ["Dataset", "Pair", "decode", "load_dataset", "parse_pairs"]


@dataclass
class Dataset:
    """Images in archive order. ``key(i)`` is ``Name/Name_NNNN.jpg``."""

    labels: list[str]
    names: list[str]  # file names, e.g. Albert_Costa_0001.jpg
    hashes: list[str]  # sha256 of the bytes: the embedding cache's key
    data: list[bytes] = field(repr=False)

    def __len__(self) -> int:
        return len(self.labels)

    def key(self, i: int) -> str:
        return f"{self.labels[i]}/{self.names[i]}"

    def index_of(self) -> dict[str, int]:
        return {self.key(i): i for i in range(len(self))}

    def label_ids(self) -> np.ndarray:
        """One int per image: the identity, numbered in order of first appearance."""
        ids: dict[str, int] = {}
        return np.asarray([ids.setdefault(label, len(ids)) for label in self.labels], np.int64)

    @classmethod
    def from_images(cls, images: Iterable[LfwImage]) -> Dataset:
        labels, names, hashes, data = [], [], [], []
        for image in images:
            labels.append(image.label)
            names.append(image.name)
            hashes.append(hashlib.sha256(image.data).hexdigest())
            data.append(image.data)
        return cls(labels, names, hashes, data)


def load_dataset(archive: Path) -> Dataset:
    return Dataset.from_images(iter_images(archive))


def decode(data: bytes) -> np.ndarray:
    """JPEG bytes -> HxWx3 uint8 RGB (what the product's workers hand the pipeline)."""
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


@dataclass(frozen=True)
class Pair:
    fold: int  # 0-based
    first: str  # Name/Name_NNNN.jpg
    second: str
    same: bool


def _member(name: str, number: str) -> str:
    # pairs.txt names an image by identity and its 1-based number; the archive's file is
    # <Name>/<Name>_<number, zero-padded to 4>.jpg (e.g. "Abel_Pacheco 1" ->
    # Abel_Pacheco/Abel_Pacheco_0001.jpg).
    return f"{name}/{name}_{int(number):04d}.jpg"


def parse_pairs(lines: Sequence[str]) -> list[Pair]:
    """The standard View 2 file: a header ``folds<TAB>n``, then per fold n matched pairs
    (``name i j``) followed by n mismatched pairs (``name1 i name2 j``)."""
    header = lines[0].split()
    folds, per_fold = int(header[0]), int(header[1])
    body = [line.split() for line in lines[1:] if line.strip()]
    if len(body) != folds * 2 * per_fold:
        raise ValueError(
            f"pairs file announces {folds} folds of {per_fold}+{per_fold} pairs "
            f"but has {len(body)} pair lines"
        )
    pairs: list[Pair] = []
    for k, parts in enumerate(body):
        fold = k // (2 * per_fold)
        if len(parts) == 3:
            pairs.append(Pair(fold, _member(parts[0], parts[1]), _member(parts[0], parts[2]), True))
        elif len(parts) == 4:
            pairs.append(
                Pair(fold, _member(parts[0], parts[1]), _member(parts[2], parts[3]), False)
            )
        else:
            raise ValueError(f"pairs file line {k + 2}: expected 3 or 4 fields, got {parts}")
    return pairs
