"""``facesearch search IMAGE``: search a running server with a photo and print the matches.

It speaks to the API through the client generated from the OpenAPI document
(``clients/python``), so this command exercises the document as any integrator would. The
client is imported when the command runs: the other commands (the images' entry points among
them) do not need it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import httpx

if TYPE_CHECKING:
    from facesearch_client import AuthenticatedClient
    from facesearch_client.types import Response

DEFAULT_URL = "http://127.0.0.1:8000"
# The server answers as soon as the search ends, or after this many seconds (its most).
WAIT_S = 30
FINISHED = {"succeeded", "partial", "failed", "cancelled"}


def api_error(response: Response[Any]) -> str:
    """The message of an error answer (the API's error body), or its status."""
    from facesearch_client.models import ErrorOut  # noqa: PLC0415 (see the module's docstring)

    if isinstance(response.parsed, ErrorOut):
        return response.parsed.error.message
    return f"HTTP {int(response.status_code)}"


def client_for(url: str, key: str | None, timeout: httpx.Timeout | float) -> AuthenticatedClient:
    """The generated client for ``url``, sending ``key`` (without one, the API answers 401)."""
    from facesearch_client import AuthenticatedClient  # noqa: PLC0415

    return AuthenticatedClient(base_url=url, token=key or "", timeout=httpx.Timeout(timeout))


def _wait_s(deadline: float) -> int:
    return max(0, min(WAIT_S, int(deadline - time.monotonic())))


def run_search(
    client: AuthenticatedClient,
    image: Path,
    top_k: int,
    timeout_s: float,
    min_probability: float | None = None,
) -> dict[str, Any]:
    """Search, with no polling: ``Prefer: wait`` has a fast search answered with its result
    (200); a slower one is followed by long polls of its job (``?wait=N``)."""
    from facesearch_client.api.jobs import get_v1_jobs_job_id  # noqa: PLC0415
    from facesearch_client.api.searches import (  # noqa: PLC0415
        get_v1_searches_search_id,
        post_v1_searches,
    )
    from facesearch_client.models import (  # noqa: PLC0415
        JobOut,
        SearchCreatedOut,
        SearchIn,
        SearchOut,
        SearchWaitedOut,
    )
    from facesearch_client.types import UNSET, File  # noqa: PLC0415

    deadline = time.monotonic() + timeout_s
    with image.open("rb") as handle:
        answer = post_v1_searches.sync_detailed(
            client=client,
            body=SearchIn(
                file=File(payload=handle, file_name=image.name),
                top_k=top_k,
                min_probability=UNSET if min_probability is None else min_probability,
            ),
            prefer=f"wait={_wait_s(deadline)}",
        )
    if isinstance(answer.parsed, SearchWaitedOut):
        return answer.parsed.to_dict()
    if not isinstance(answer.parsed, SearchCreatedOut):
        raise click.ClickException(f"{image}: {api_error(answer)}")
    created = answer.parsed
    while (wait_s := _wait_s(deadline)) > 0:
        job = get_v1_jobs_job_id.sync_detailed(created.job_id, client=client, wait=wait_s)
        if not isinstance(job.parsed, JobOut):
            raise click.ClickException(f"job {created.job_id}: {api_error(job)}")
        if job.parsed.status in FINISHED:
            search = get_v1_searches_search_id.sync_detailed(created.search_id, client=client)
            if not isinstance(search.parsed, SearchOut):
                raise click.ClickException(f"search {created.search_id}: {api_error(search)}")
            return search.parsed.to_dict()
    raise click.ClickException(f"no result after {timeout_s:.0f} s (job {created.job_id})")


def print_table(result: dict[str, Any]) -> None:
    if result["status"] != "succeeded":
        raise click.ClickException(f"the search failed: {result['error']}")
    for number, face in enumerate(result["faces"], start=1):
        box = face["box"]
        click.echo(
            f"face {number} at x={box['x']} y={box['y']} {box['width']}x{box['height']} "
            f"(confidence {face['confidence']:.3f})"
        )
        if face["matches"]:
            click.echo(f"  {'rank':>4}  {'score':>6}  {'same person?':<18}  {'image':>7}  label")
        for match in face["matches"]:
            click.echo(
                f"  {match['rank']:>4}  {match['score']:6.3f}  {verdict_text(match):<18}  "
                f"{match['image_id']!s:>7}  {match['label'] or '-'}"
            )
        if face.get("message"):  # "No one in the gallery...", under the nearest faces if any
            click.echo(f"  {face['message']}")


def verdict_text(match: dict[str, Any]) -> str:
    """``same (99.97%)``; ``-`` for a model without a calibration."""
    same_person = match.get("same_person") or {}
    verdict, probability = same_person.get("verdict"), same_person.get("probability")
    if verdict is None or probability is None:
        return "-"
    return f"{verdict} ({100 * probability:.2f}%)"


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
@click.option(
    "--min-probability",
    type=click.FloatRange(0, 1),
    default=None,
    help="Keep only matches at least this likely the same person (0.99: the `same` verdict).",
)
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
    *,
    image: Path,
    url: str,
    top_k: int,
    min_probability: float | None,
    as_json: bool,
    timeout_s: float,
    key: str | None,
) -> None:
    """Search the gallery with IMAGE and print each face's matches."""
    try:
        # The read timeout outlasts the longest wait the server may take.
        with client_for(url, key, WAIT_S + 30) as client:
            result = run_search(client, image, top_k, timeout_s, min_probability)
    except httpx.TransportError as exc:
        raise click.ClickException(f"cannot reach {url}: {exc}") from exc
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        print_table(result)
