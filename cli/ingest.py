"""``facesearch ingest PATH``: upload an archive through the API and follow its job.

The file is streamed (never read whole) with a byte progress bar, then the job is polled
with an image progress bar until it ends, and a summary is printed. It speaks to the API
through the client generated from the OpenAPI document (``clients/python``); the archive goes
as its raw body, which that client streams from the open file as httpx reads it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, BinaryIO, cast

import click
import httpx
from facesearch_client import AuthenticatedClient
from facesearch_client.api.archives import post_v1_archives
from facesearch_client.api.jobs import get_v1_jobs_job_id, get_v1_jobs_job_id_items
from facesearch_client.models import (
    ErrorOut,
    GetV1JobsJobIdItemsStatus,
    JobCreatedOut,
    JobItemsOut,
    JobOut,
    PostV1ArchivesLabelFrom,
)
from facesearch_client.types import File
from tqdm import tqdm

FINISHED = ("succeeded", "partial", "failed", "cancelled")
SHOWN_FAILURES = 5
# Scripts pass the httpx client they made themselves (scripts/bench_ingest.py); the command
# makes the generated client.
AnyClient = AuthenticatedClient | httpx.Client


class _Progress:
    """The open archive as httpx reads it (``read`` in chunks), counting into a progress bar.
    ``fileno`` lets httpx send its length (``Content-Length``) rather than chunks."""

    def __init__(self, file: BinaryIO, bar: tqdm) -> None:
        self._file = file
        self._bar = bar

    def read(self, size: int = -1) -> bytes:
        chunk = self._file.read(size)
        self._bar.update(len(chunk))
        return chunk

    def fileno(self) -> int:
        return self._file.fileno()

    def __iter__(self) -> Any:  # httpx takes an iterable; it reads a file-like by `read`
        return iter(lambda: self.read(1024 * 1024), b"")


def generated(client: AnyClient) -> AuthenticatedClient:
    """The generated client over ``client`` (an httpx client is used as it is: its base URL,
    headers and timeouts)."""
    if isinstance(client, AuthenticatedClient):
        return client
    wrapped = AuthenticatedClient(base_url=str(client.base_url), token="")
    wrapped.set_httpx_client(client)
    return wrapped


def _error_text(parsed: object, status: int) -> str:
    return parsed.error.message if isinstance(parsed, ErrorOut) else f"HTTP {status}"


def upload(client: AnyClient, path: Path, label_from: str, *, quiet: bool) -> str:
    """Stream the archive to ``POST /v1/archives``; return the job's URL."""
    size = path.stat().st_size
    with (
        path.open("rb") as archive,
        tqdm(
            total=size, unit="B", unit_scale=True, desc="upload", disable=quiet, leave=False
        ) as bar,
    ):
        answer = post_v1_archives.sync_detailed(
            client=generated(client),
            body=File(payload=cast(BinaryIO, _Progress(archive, bar)), file_name=path.name),
            label_from=PostV1ArchivesLabelFrom(label_from),
            filename=path.name,
        )
    if not isinstance(answer.parsed, JobCreatedOut):
        raise click.ClickException(
            f"the API refused the archive ({int(answer.status_code)}): "
            f"{_error_text(answer.parsed, answer.status_code)}"
        )
    return str(answer.headers["Location"])


def _job(client: AuthenticatedClient, job_id: str) -> JobOut:
    answer = get_v1_jobs_job_id.sync_detailed(job_id, client=client)
    if not isinstance(answer.parsed, JobOut):
        raise click.ClickException(
            f"job {job_id}: {_error_text(answer.parsed, answer.status_code)}"
        )
    return answer.parsed


def follow(client: AnyClient, job_url: str, *, poll_s: float, quiet: bool) -> dict[str, Any]:
    """Poll the job with a live progress bar until it ends; return its last state."""
    job_id = job_url.rstrip("/").rsplit("/", 1)[1]
    with tqdm(total=0, unit="img", desc="ingest", disable=quiet) as bar:
        while True:
            job = _job(generated(client), job_id).to_dict()
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


def summary(client: AnyClient, job: dict[str, Any], wall_s: float) -> str:
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
        answer = get_v1_jobs_job_id_items.sync_detailed(
            job["id"],
            client=generated(client),
            status=GetV1JobsJobIdItemsStatus.FAILED,
            limit=SHOWN_FAILURES,
        )
        if isinstance(answer.parsed, JobItemsOut):
            items = answer.parsed.to_dict()["items"]
            lines.append(f"  first failures (all: GET /v1/jobs/{job['id']}/items?status=failed):")
            lines += [f"    {i['name']}: {i['error']}" for i in items]
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
    client = AuthenticatedClient(
        base_url=url,
        token=key or "",  # without a key the API answers 401, which is reported
        timeout=timeout,
        httpx_args={"transport": transport} if transport else {},
    )
    with client:
        job_url = upload(client, path, label_from, quiet=quiet)
        if not quiet:
            click.echo(f"job {job_url}", err=True)
        job = follow(client, job_url, poll_s=poll_s, quiet=quiet)
        click.echo(summary(client, job, time.monotonic() - started))
    return job
