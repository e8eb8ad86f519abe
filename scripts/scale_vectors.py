"""Vectors for the scale benchmark: LFW's real embeddings, and synthetic ones drawn like them.

Real embeddings come from the product's pipeline (``FacePipeline.process``: MTCNN, the crop,
FaceNet) over the LFW archive, every face of every image, as a gallery ingest would index
them. They are computed once and cached under ``~/.cache/facesearch/scale/`` (keyed by the
model and its weights' hash), never in the repository.

Synthetic faces follow a two-level model fitted to the real ones (LFW's subject of each
image, i.e. the face nearest the image centre, labelled by its folder):

    face = normalise(centre + noise),  centre ~ N(m, S_between),  noise ~ N(0, S_within)

``S_within`` is the pooled covariance of faces around their identity's mean (identities with
two or more faces), ``S_between`` the covariance of identity means less the part of it that is
within-identity noise averaged into a mean; a synthetic identity gets as many faces as a real
identity drawn at random has. So the synthetic gallery has what makes a face index hard: many
people, some with many near-duplicate faces. :func:`compare` measures how well it matches.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

PROJECT_ROOT = Path(__file__).resolve().parents[1]
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

CACHE_DIR = Path.home() / ".cache" / "facesearch" / "scale"
_SAVE_EVERY = 2048  # images between partial saves: a killed run resumes near where it stopped


@dataclass
class RealFaces:
    """Every face the pipeline found in LFW, in archive order."""

    vectors: np.ndarray  # (n, dim) float32, unit length
    image: np.ndarray  # (n,) int64: the image's position in the archive
    label: np.ndarray  # (n,) int64: the image's identity (folder), numbered by first sight
    central: np.ndarray  # (n,) bool: the face nearest its image's centre (LFW's subject)
    boxes: np.ndarray  # (n, 4) int32 x, y, w, h
    confidence: np.ndarray  # (n,) float32
    images: int  # images read
    seconds: float  # pipeline time spent computing them (over all runs)

    def __len__(self) -> int:
        return int(self.vectors.shape[0])


def cache_path(model_name: str, weights_sha256: str, limit: int | None) -> Path:
    tag = f"{model_name}-{weights_sha256[:12]}" + (f"-first{limit}" if limit else "")
    return CACHE_DIR / f"lfw-faces-{tag}.npz"


def load_real(path: Path) -> RealFaces:
    with np.load(path) as saved:
        return RealFaces(
            vectors=saved["vectors"],
            image=saved["image"],
            label=saved["label"],
            central=saved["central"],
            boxes=saved["boxes"],
            confidence=saved["confidence"],
            images=int(saved["images"]),
            seconds=float(saved["seconds"]),
        )


def _save(path: Path, faces: RealFaces) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(
        tmp,
        vectors=faces.vectors,
        image=faces.image,
        label=faces.label,
        central=faces.central,
        boxes=faces.boxes,
        confidence=faces.confidence,
        images=faces.images,
        seconds=faces.seconds,
    )
    os.replace(tmp, path)


def _batches(archive: Path, skip: int, size: int) -> Iterator[list[tuple[str, bytes]]]:
    from cli.lfw import iter_images  # noqa: PLC0415  (the archive reader the product uses)

    batch: list[tuple[str, bytes]] = []
    for position, image in enumerate(iter_images(archive)):
        if position < skip:
            continue
        batch.append((image.label, image.data))
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


class _Faces:
    """RealFaces being collected, a batch at a time."""

    def __init__(self, done: RealFaces | None, labels: list[int]) -> None:
        self.parts: dict[str, list[np.ndarray]] = {
            k: [] for k in ("vectors", "image", "central", "boxes", "confidence")
        }
        self.labels = np.asarray(labels, np.int64)
        self.images = self.seconds = 0.0
        if done is not None:
            for k in self.parts:
                self.parts[k].append(getattr(done, k))
            self.images, self.seconds = done.images, done.seconds

    def add(self, position: int, image: np.ndarray, faces: list[Any]) -> None:
        from evaluation.embedders import central_detection  # noqa: PLC0415

        if not faces:
            return
        chosen = central_detection(faces, image.shape)
        self.parts["vectors"].append(np.stack([f.embedding for f in faces]).astype(np.float32))
        self.parts["image"].append(np.full(len(faces), position, np.int64))
        self.parts["central"].append(np.asarray([f is chosen for f in faces]))
        self.parts["boxes"].append(np.asarray([f.box for f in faces], np.int32))
        self.parts["confidence"].append(np.asarray([f.confidence for f in faces], np.float32))

    def result(self) -> RealFaces:
        p = self.parts
        image = np.concatenate(p["image"]) if p["image"] else np.empty(0, np.int64)
        return RealFaces(
            vectors=np.concatenate(p["vectors"]) if p["vectors"] else np.empty((0, 0), np.float32),
            image=image,
            label=self.labels[image],
            central=np.concatenate(p["central"]) if p["central"] else np.empty(0, bool),
            boxes=np.concatenate(p["boxes"]) if p["boxes"] else np.empty((0, 4), np.int32),
            confidence=np.concatenate(p["confidence"]) if p["confidence"] else np.empty(0),
            images=int(self.images),
            seconds=float(self.seconds),
        )


def _image_labels(archive: Path, limit: int | None) -> list[int]:
    """Each image's identity, numbered by first sight (reading the archive is cheap)."""
    from cli.lfw import iter_images  # noqa: PLC0415

    seen: dict[str, int] = {}
    labels: list[int] = []
    for position, image in enumerate(iter_images(archive)):
        if limit is not None and position >= limit:
            break
        labels.append(seen.setdefault(image.label, len(seen)))
    return labels


def embed_lfw(
    archive: Path,
    model_dir: Path,
    model_name: str,
    *,
    limit: int | None,
    refresh: bool,
    batch_size: int = 32,
    say: Callable[[str], None] = print,
) -> tuple[RealFaces, Path]:
    """LFW's faces through the product's pipeline, from the cache when it holds them."""
    from evaluation.dataset import decode  # noqa: PLC0415
    from workers.pipeline import FacePipeline, get_spec  # noqa: PLC0415

    spec = get_spec(model_name)
    path = cache_path(spec.name, spec.weights_sha256, limit)
    partial = path.with_suffix(".partial.npz")
    if path.is_file() and not refresh:
        say(f"real faces: cached at {path}")
        return load_real(path), path
    done = load_real(partial) if partial.is_file() and not refresh else None
    labels = _image_labels(archive, limit)
    collected = _Faces(done, labels)
    pipeline = FacePipeline(model_name=model_name, weights_dir=model_dir, batch_size=batch_size)
    pipeline.load()
    position = int(collected.images)
    say(f"real faces: embedding LFW ({pipeline.model_name}, {pipeline.dim}-d) from {position}")
    since_save = 0
    for batch in _batches(archive, position, batch_size):
        chunk = batch[: len(labels) - position]
        if not chunk:
            break
        started = time.perf_counter()
        arrays = [decode(data) for _, data in chunk]
        for offset, (array, faces) in enumerate(zip(arrays, pipeline.process(arrays), strict=True)):
            collected.add(position + offset, array, faces)
        collected.seconds += time.perf_counter() - started
        position += len(chunk)
        collected.images = position
        since_save += len(chunk)
        if since_save >= _SAVE_EVERY:
            since_save = 0
            _save(partial, collected.result())
            say(f"  {position}/{len(labels)} images, {collected.seconds:.0f} s of pipeline")
    real = collected.result()
    _save(path, real)
    partial.unlink(missing_ok=True)
    return real, path


# ---------------------------------------------------------------------- the synthetic model


@dataclass
class FaceModel:
    """The fitted two-level Gaussian (see the module's docstring)."""

    mean: np.ndarray  # (d,) mean of identity means
    between: np.ndarray  # (d, d) factor: centre = mean + z @ between
    within: np.ndarray  # (d, d) factor: noise = z @ within
    sizes: np.ndarray  # faces per real identity (the distribution synthetic ones draw from)
    centres: np.ndarray  # (identities, d): real identities' mean face (to draw queries near)

    @property
    def dim(self) -> int:
        return int(self.mean.shape[0])


def _factor(cov: np.ndarray) -> np.ndarray:
    """A matrix F with F.T @ F == cov, negative eigenvalues (estimation noise) set to 0."""
    values, vecs = np.linalg.eigh((cov + cov.T) / 2)
    return (vecs * np.sqrt(np.clip(values, 0, None))).T


def fit(real: RealFaces) -> FaceModel:
    x = real.vectors[real.central].astype(np.float64)
    labels = real.label[real.central]
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    dim = x.shape[1]
    sums = np.zeros((counts.size, dim))
    np.add.at(sums, inverse, x)
    means = sums / counts[:, None]
    residual = x - means[inverse]
    multi = counts[inverse] >= 2
    # Pooled within-identity covariance; n/(n-1) undoes the shrink of measuring around the
    # identity's own mean.
    weights = (counts / np.maximum(counts - 1, 1))[inverse][multi]
    r = residual[multi]
    within = (r * weights[:, None]).T @ r / multi.sum()
    # An identity mean of n faces carries S_within / n of noise; what is left is between.
    centred = means - means.mean(axis=0)
    between = centred.T @ centred / counts.size - within * float(np.mean(1.0 / counts))
    return FaceModel(
        mean=means.mean(axis=0),
        between=_factor(between),
        within=_factor(within),
        sizes=counts,
        centres=means,
    )


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def synthesize(
    model: FaceModel, count: int, rng: np.random.Generator, chunk: int = 100_000
) -> Iterator[tuple[np.ndarray, list[int], np.ndarray]]:
    """``count`` synthetic faces in chunks, identity by identity: each chunk's faces (float32,
    unit), the number of faces of each of its identities, and those identities' centres."""
    made = 0
    while made < count:
        want = min(chunk, count - made)
        sizes: list[int] = []
        while sum(sizes) < want:
            sizes.append(int(rng.choice(model.sizes)))
        sizes[-1] -= sum(sizes) - want  # the last identity is cut to fit exactly
        centres = model.mean + rng.standard_normal((len(sizes), model.dim)) @ model.between
        faces = np.repeat(centres, sizes, axis=0)
        faces += rng.standard_normal((want, model.dim)) @ model.within
        made += want
        yield _unit(faces), sizes, centres.astype(np.float32)


def queries_near(model: FaceModel, centres: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A new face of each identity whose centre is given (another photo of a known person)."""
    return _unit(centres + rng.standard_normal(centres.shape) @ model.within)


# ---------------------------------------------------------------------- how well they match


def nn_cosine(vectors: np.ndarray, probes: np.ndarray) -> np.ndarray:
    """Each probe row's cosine to its nearest other vector of ``vectors``."""
    best = np.full(probes.size, -2.0, np.float32)
    for start in range(0, vectors.shape[0], 50_000):
        block = vectors[start : start + 50_000]
        scores = vectors[probes] @ block.T
        own = probes - start
        inside = (own >= 0) & (own < block.shape[0])
        scores[np.nonzero(inside)[0], own[inside]] = -2.0  # not itself
        best = np.maximum(best, scores.max(axis=1))
    return best


def ks_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Kolmogorov-Smirnov statistic: the largest gap between the two empirical CDFs."""
    grid = np.sort(np.concatenate([a, b]))
    cdf_a = np.searchsorted(np.sort(a), grid, side="right") / a.size
    cdf_b = np.searchsorted(np.sort(b), grid, side="right") / b.size
    return float(np.max(np.abs(cdf_a - cdf_b)))


QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def compare(
    real: np.ndarray, synthetic: np.ndarray, rng: np.random.Generator, probes: int
) -> dict[str, Any]:
    """Real vs synthetic sets of the same size: nearest-neighbour cosine and random-pair
    cosine, as quantiles and the KS distance."""
    n = min(real.shape[0], synthetic.shape[0])
    real, synthetic = real[:n], synthetic[:n]
    p = rng.choice(n, size=min(probes, n), replace=False)
    out: dict[str, Any] = {"set_size": n, "probes": int(p.size)}
    for name, (a, b) in {
        "nn_cosine": (nn_cosine(real, p), nn_cosine(synthetic, p)),
        "pair_cosine": (
            np.einsum("ij,ij->i", real[p], real[rng.permutation(n)[: p.size]]),
            np.einsum("ij,ij->i", synthetic[p], synthetic[rng.permutation(n)[: p.size]]),
        ),
    }.items():
        out[name] = {
            "quantiles": list(QUANTILES),
            "real": [round(float(v), 3) for v in np.quantile(a, QUANTILES)],
            "synthetic": [round(float(v), 3) for v in np.quantile(b, QUANTILES)],
            "ks": round(ks_distance(a, b), 3),
        }
    return out


def digest(vectors: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(vectors).tobytes()).hexdigest()[:12]
