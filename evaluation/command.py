"""The body of ``facesearch eval`` (kept here so the CLI module stays a thin shell)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from tqdm import tqdm

from cli.lfw import default_archive
from core.settings import get_settings
from workers.runtime import build_pipeline  # cheap: TensorFlow loads with the model

from .invocation import command_line
from .report import results_table, write_report
from .runner import PIPELINES, EvalConfig, evaluate

if TYPE_CHECKING:
    from workers.pipeline import FacePipeline

__all__ = ["run_eval", "run_through_api"]


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
        command=command_line(),
    )

    def product_pipeline() -> FacePipeline:
        # The workers' own (workers.runtime.build_pipeline: the recipe's settings included)
        # but not loaded: it loads (TensorFlow, verified weights) on its first image, so a
        # run that finds every vector in the cache takes seconds.
        return build_pipeline(settings)

    if config.pairs is None:
        click.echo(f"no pairs file at {pairs}: verification is skipped", err=True)
    click.echo(f"evaluating {', '.join(config.pipelines)} on {archive}", err=True)
    data = evaluate(config, pipeline=product_pipeline, progress=_progress)
    paths = write_report(data, out_dir)
    click.echo("\n".join(results_table(data)))
    for kind, path in paths.items():
        click.echo(f"{kind}: {path}")


def run_through_api(
    *,
    archive: Path | None,
    url: str,
    key: str | None,
    queries: int,
    seed: int,
    max_images: int | None,
    top_k: int,
    out_dir: Path,
    cache_dir: Path | None,
    resume: str | None = None,
) -> dict[str, Any]:
    """``facesearch eval --through-api``: LFW ingested and searched through a running API
    and its workers, next to the in-process harness on the same queries
    (``evaluation.product_path``). Writes ``product-path.json`` in ``out_dir``."""
    from .dataset import Dataset, load_dataset  # noqa: PLC0415
    from .product_path import (  # noqa: PLC0415 (the generated client: only this mode)
        compare,
        comparison_table,
        harness_ranks,
        run_product_path,
        sample_queries,
    )

    settings = get_settings()
    archive = archive or default_archive()
    if not archive.is_file():
        raise click.ClickException(f"LFW archive not found at {archive}; pass --archive")
    if not key:
        raise click.ClickException(
            "pass --key (or FACESEARCH_KEY): an admin key for every gallery, to make a fresh one"
        )
    dataset = load_dataset(archive)
    whole = max_images is None or max_images >= len(dataset)
    if not whole:
        n = int(max_images or 0)
        dataset = Dataset(
            dataset.labels[:n], dataset.names[:n], dataset.hashes[:n], dataset.data[:n]
        )
    chosen = sample_queries(dataset.labels, queries, seed)
    click.echo(
        f"{len(dataset)} images, {len(chosen)} queries (seed {seed}) through {url}", err=True
    )
    bar = tqdm(total=len(chosen), desc="searches", unit="q", mininterval=10, file=sys.stderr)
    product = run_product_path(
        dataset,
        chosen,
        url=url,
        key=key,
        archive=archive if whole else None,
        top_k=top_k,
        tick=lambda: bar.update(1),
        resume=resume,
        on_job=lambda gallery, job: click.echo(
            f"gallery {gallery}, ingest job {job} (if this run stops, --resume {gallery}:{job} "
            "follows the job instead of uploading again)",
            err=True,
        ),
    )
    bar.close()
    ranks, _ = harness_ranks(
        dataset,
        chosen,
        pipeline=build_pipeline(settings),  # the recipe the workers embedded with
        cache_dir=cache_dir or settings.data_dir / "eval-cache",
        progress=lambda todo: _progress("mtcnn-facenet", todo),
    )
    result = compare(dataset, product, ranks)
    result |= {
        "command": command_line(),
        "archive": str(archive),
        "images": len(dataset),
        "seed": seed,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "product-path.json").write_text(json.dumps(result, indent=2) + "\n")
    click.echo("\n".join(comparison_table(result)))
    click.echo(f"json: {out_dir / 'product-path.json'}")
    return result
