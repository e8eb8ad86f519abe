"""The body of ``facesearch eval`` (kept here so the CLI module stays a thin shell)."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable
from pathlib import Path

import click
from tqdm import tqdm

from cli.lfw import default_archive
from core.settings import get_settings
from workers.pipeline import FacePipeline  # cheap: TensorFlow loads with the model

from .report import results_table, write_report
from .runner import PIPELINES, EvalConfig, evaluate

__all__ = ["run_eval"]


def _progress(label: str, total: int) -> Callable[[int], None]:
    bar = tqdm(
        total=total, desc=f"embedding ({label})", unit="img", mininterval=10, file=sys.stderr
    )

    def tick(done: int) -> None:
        bar.update(done)
        if bar.n >= total:
            bar.close()

    return tick


def run_eval(
    *,
    archive: Path | None,
    pairs: Path | None,
    pipelines: list[str],
    out_dir: Path,
    cache_dir: Path | None,
    resnet50_weights: Path | None,
    depth: int,
) -> None:
    settings = get_settings()
    archive = archive or default_archive()
    if not archive.is_file():
        raise click.ClickException(f"LFW archive not found at {archive}; pass --archive")
    pairs = pairs or archive.parent / "pairs.txt"
    unknown = [p for p in pipelines if p not in PIPELINES]
    if unknown:
        raise click.BadParameter(
            f"unknown {unknown}; choose from {', '.join(PIPELINES)}", param_hint="--pipeline"
        )
    config = EvalConfig(
        archive=archive,
        pairs=pairs if pairs.is_file() else None,
        out_dir=out_dir,
        cache_dir=cache_dir or settings.data_dir / "eval-cache",
        pipelines=pipelines or list(PIPELINES),
        resnet50_weights=resnet50_weights,
        # The product's index settings (MILVUS_INDEX_TYPE, MILVUS_SEARCH_EF).
        index_type=settings.milvus_index_type,
        search_ef=settings.milvus_search_ef,
        depth=depth,
        command=shlex.join(["facesearch", *sys.argv[1:]]),
    )

    def product_pipeline() -> FacePipeline:
        # Built as the workers build it (workers.runtime.get_pipeline) but not loaded: it
        # loads (TensorFlow, verified weights) on its first image, so a run that finds every
        # vector in the cache takes seconds.
        return FacePipeline(
            model_name=settings.model_name,
            weights_dir=settings.model_dir,
            max_faces=settings.max_faces_per_image,
            batch_size=settings.pipeline_batch_size,
            max_detect_side=settings.detect_max_side or None,
        )

    if config.pairs is None:
        click.echo(f"no pairs file at {pairs}: verification is skipped", err=True)
    click.echo(f"evaluating {', '.join(config.pipelines)} on {archive}", err=True)
    data = evaluate(config, pipeline=product_pipeline, progress=_progress)
    paths = write_report(data, out_dir)
    click.echo("\n".join(results_table(data)))
    for kind, path in paths.items():
        click.echo(f"{kind}: {path}")
