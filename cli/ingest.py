"""``facesearch ingest PATH``: upload an archive through the API and follow its job.

The file is streamed (never read whole) with a byte progress bar, then the job is polled
with an image progress bar until it ends, and a summary is printed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import httpx
from tqdm import tqdm

CHUNK = 1024 * 1024
FINISHED = ("succeeded", "partial", "failed", "cancelled")
SHOWN_FAILURES = 5


def _chunks(path: Path, bar: tqdm) -> Iterator[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            bar.update(len(chunk))
            yield chunk


def _error_text(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.text[:500]


def upload(client: httpx.Client, path: Path, label_from: str, *, quiet: bool) -> str:
    """Stream the archive to ``POST /v1/archives``; return the job's URL."""
    size = path.stat().st_size
    with tqdm(
        total=size, unit="B", unit_scale=True, desc="upload", disable=quiet, leave=False
    ) as bar:
        response = client.post(
            "/v1/archives",
            params={"label_from": label_from, "filename": path.name},
            content=_chunks(path, bar),
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
        )
    if response.status_code != 202:
        raise click.ClickException(
            f"the API refused the archive ({response.status_code}): {_error_text(response)}"
        )
    return str(response.headers["Location"])


def follow(client: httpx.Client, job_url: str, *, poll_s: float, quiet: bool) -> dict[str, Any]:
    """Poll the job with a live progress bar until it ends; return its last state."""
    with tqdm(total=0, unit="img", desc="ingest", disable=quiet) as bar:
        while True:
            response = client.get(job_url)
            response.raise_for_status()
            job: dict[str, Any] = response.json()
            progress = job["progress"]
            finished = progress["done"] + progress["failed"] + progress["skipped"]
            bar.total = progress["total"]
            bar.n = finished
            bar.set_postfix(
                failed=progress["failed"],
                skipped=progress["skipped"],
                total="known" if progress.get("total_known", True) else "counting",
            )
            bar.refresh()
            if job["status"] in FINISHED:
                return job
            time.sleep(poll_s)


def summary(client: httpx.Client, job: dict[str, Any], wall_s: float) -> str:
    progress = job["progress"]
    lines = [
        f"job {job['id']}: {job['status']}",
        f"  done {progress['done']}, failed {progress['failed']}, "
        f"skipped {progress['skipped']} (already in the gallery or cancelled), "
        f"total {progress['total']}",
        f"  {progress.get('images_per_s') or 0:.1f} images/s over the job; "
        f"{wall_s:.1f} s wall time here",
    ]
    if job.get("error"):
        lines.append(f"  error: {job['error']}")
    if progress["failed"]:
        response = client.get(
            f"/v1/jobs/{job['id']}/items", params={"status": "failed", "limit": SHOWN_FAILURES}
        )
        if response.status_code == 200:
            lines.append(f"  first failures (all: GET /v1/jobs/{job['id']}/items?status=failed):")
            lines += [f"    {i['name']}: {i['error']}" for i in response.json()["items"]]
    return "\n".join(lines)


def run(
    path: Path,
    *,
    url: str,
    key: str | None,
    label_from: str,
    poll_s: float = 1.0,
    quiet: bool = False,
    transport: httpx.BaseTransport | None = None,
) -> dict[str, Any]:
    started = time.monotonic()
    timeout = httpx.Timeout(30.0, read=600.0)  # a large upload is answered once it is stored
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    with httpx.Client(
        base_url=url, timeout=timeout, transport=transport, headers=headers
    ) as client:
        job_url = upload(client, path, label_from, quiet=quiet)
        if not quiet:
            click.echo(f"job {job_url}", err=True)
        job = follow(client, job_url, poll_s=poll_s, quiet=quiet)
        click.echo(summary(client, job, time.monotonic() - started))
    return job
