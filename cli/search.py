"""``facesearch search IMAGE``: search a running server with a photo and print the matches."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click
import httpx

DEFAULT_URL = "http://127.0.0.1:8000"
# The server answers as soon as the search ends, or after this many seconds (its most).
WAIT_S = 30
FINISHED = {"succeeded", "partial", "failed", "cancelled"}


def api_error(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code}"


def _wait_s(deadline: float) -> int:
    return max(0, min(WAIT_S, int(deadline - time.monotonic())))


def run_search(client: httpx.Client, image: Path, top_k: int, timeout_s: float) -> dict[str, Any]:
    """Search, with no polling: ``Prefer: wait`` has a fast search answered with its result
    (200); a slower one is followed by long polls of its job (``?wait=N``)."""
    deadline = time.monotonic() + timeout_s
    with image.open("rb") as handle:
        response = client.post(
            "/v1/searches",
            files={"file": (image.name, handle)},
            data={"top_k": str(top_k)},
            headers={"Prefer": f"wait={_wait_s(deadline)}"},
        )
    if response.status_code == 200:
        done: dict[str, Any] = response.json()
        return done
    if response.status_code != 202:
        raise click.ClickException(f"{image}: {api_error(response)}")
    created = response.json()
    while (wait_s := _wait_s(deadline)) > 0:
        job = client.get(f"/v1/jobs/{created['job_id']}", params={"wait": wait_s})
        if job.status_code != 200:
            raise click.ClickException(f"job {created['job_id']}: {api_error(job)}")
        if job.json()["status"] in FINISHED:
            result: dict[str, Any] = client.get(created["search_url"]).json()
            return result
    raise click.ClickException(f"no result after {timeout_s:.0f} s (job {created['job_id']})")


def print_table(result: dict[str, Any]) -> None:
    if result["status"] != "succeeded":
        raise click.ClickException(f"the search failed: {result['error']}")
    for number, face in enumerate(result["faces"], start=1):
        box = face["box"]
        click.echo(
            f"face {number} at x={box['x']} y={box['y']} {box['width']}x{box['height']} "
            f"(confidence {face['confidence']:.3f})"
        )
        click.echo(f"  {'rank':>4}  {'score':>6}  {'image':>7}  label")
        for match in face["matches"]:
            click.echo(
                f"  {match['rank']:>4}  {match['score']:6.3f}  {match['image_id']!s:>7}  "
                f"{match['label'] or '-'}"
            )
        if not face["matches"]:
            click.echo("  (no match in the gallery)")


KEY_HELP = "An API key (or FACESEARCH_KEY): `facesearch keys create` makes one."


@click.command()
@click.argument("image", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--url",
    envvar="FACESEARCH_URL",
    default=DEFAULT_URL,
    show_default=True,
    help="The server (or FACESEARCH_URL).",
)
@click.option("--top-k", default=10, show_default=True, type=click.IntRange(1, 100))
@click.option("--json", "as_json", is_flag=True, help="Print the search resource as JSON.")
@click.option(
    "--timeout",
    "timeout_s",
    default=300.0,
    show_default=True,
    help="Seconds to wait for the result.",
)
@click.option("--key", envvar="FACESEARCH_KEY", default=None, help=KEY_HELP)
def search(
    *, image: Path, url: str, top_k: int, as_json: bool, timeout_s: float, key: str | None
) -> None:
    """Search the gallery with IMAGE and print each face's matches."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        # The read timeout outlasts the longest wait the server may take.
        with httpx.Client(base_url=url, timeout=WAIT_S + 30, headers=headers) as client:
            result = run_search(client, image, top_k, timeout_s)
    except httpx.TransportError as exc:
        raise click.ClickException(f"cannot reach {url}: {exc}") from exc
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        print_table(result)
