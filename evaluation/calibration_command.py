"""The body of ``facesearch calibrate`` (kept here so the CLI module stays a thin shell)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from cli.lfw import default_archive
from core.settings import get_settings
from core.verdict import CALIBRATION_DIR
from workers.runtime import build_pipeline  # cheap: TensorFlow loads with the model

from .calibration import run_calibrate

__all__ = ["run", "summary"]


def summary(result: dict[str, Any]) -> list[str]:
    """The figures a person reads first, one per line."""
    held, tail, fitted = result["held_out"], result["tail"], result["fitted"]
    cut = fitted["verdicts"]["score_cutoffs"]
    lines = [
        f"pairs: {held['pairs']} ({held['pairs_without_a_vector']} without a face)",
        f"accuracy at the threshold (held-out folds): {100 * held['accuracy_mean']:.2f} "
        f"± {100 * held['accuracy_std']:.2f}%, threshold {fitted['threshold']:.4f} (all pairs)",
        f"Platt a={fitted['platt']['a']:.3f} b={fitted['platt']['b']:.3f}; held-out Brier "
        f"{held['platt']['brier']:.5f} (isotonic {held['isotonic']['brier']:.5f})",
        f"verdicts: same if score >= {cut['same_at_or_above']:.4f}, different if <= "
        f"{cut['different_at_or_below']:.4f}, else uncertain",
    ]
    for p in held["operating_points"]:
        lines.append(
            f"pairs, FMR {p['target_fmr']:g}: threshold {p['threshold_mean']:.4f} -> FMR "
            f"{p['fmr']:.4f} ({p['false_matches']}/{p['negatives']}), FNMR {p['fnmr']:.4f} "
            f"({p['false_non_matches']}/{p['positives']})"
        )
    for p in tail["operating_points"]:
        lines.append(
            f"all-LFW estimate, FMR {p['target_fmr']:g}: threshold {p['threshold_mean']:.4f} -> "
            f"FMR {p['fmr']:.2e} ({p['false_matches']}/{p['negatives']}), FNMR {p['fnmr']:.4f}; "
            f"~{p['expected_false_matches_in_a_million']:g} false matches a search in a million"
        )
    return lines


def run(
    *,
    archive: Path | None,
    pairs: Path | None,
    cache_dir: Path | None,
    out_dir: Path | None,
    report: Path | None,
) -> None:
    settings = get_settings()
    archive = archive or default_archive()
    if not archive.is_file():
        raise click.ClickException(f"LFW archive not found at {archive}; pass --archive")
    pairs = pairs or archive.parent / "pairs.txt"
    if not pairs.is_file():
        raise click.ClickException(f"LFW pairs.txt not found at {pairs}; pass --pairs")
    # The product's pipeline as the workers build it (the recipe's settings included), so
    # the calibration is of the vectors searches compare.
    pipeline = build_pipeline(settings)
    click.echo(f"calibrating {pipeline.embedding_version} on {pairs}", err=True)
    result = run_calibrate(
        archive=archive,
        pairs_path=pairs,
        cache_dir=cache_dir or settings.data_dir / "eval-cache",
        out_dir=out_dir or CALIBRATION_DIR,
        report_path=report,
        pipeline=pipeline,
    )
    click.echo("\n".join(summary(result)))
    for kind, path in result["_paths"].items():
        click.echo(f"{kind}: {path}")
