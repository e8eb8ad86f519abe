from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.error_out import ErrorOut
from ...models.job_out import JobOut
from ...types import UNSET, Response, Unset


def _get_kwargs(
    job_id: str,
    *,
    wait: int | Unset = UNSET,
    facesearch_gallery: str | Unset = UNSET,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    if not isinstance(facesearch_gallery, Unset):
        headers["Facesearch-Gallery"] = facesearch_gallery

    params: dict[str, Any] = {}

    params["wait"] = wait

    params = {k: v for k, v in params.items() if v is not UNSET and v is not None}

    _kwargs: dict[str, Any] = {
        "method": "get",
        "url": "/v1/jobs/{job_id}".format(
            job_id=quote(str(job_id), safe=""),
        ),
        "params": params,
    }

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> ErrorOut | JobOut | None:
    if response.status_code == 200:
        response_200 = JobOut.from_dict(response.json())

        return response_200

    if response.status_code == 401:
        response_401 = ErrorOut.from_dict(response.json())

        return response_401

    if response.status_code == 403:
        response_403 = ErrorOut.from_dict(response.json())

        return response_403

    if response.status_code == 404:
        response_404 = ErrorOut.from_dict(response.json())

        return response_404

    if response.status_code == 422:
        response_422 = ErrorOut.from_dict(response.json())

        return response_422

    if response.status_code == 429:
        response_429 = ErrorOut.from_dict(response.json())

        return response_429

    if response.status_code == 503:
        response_503 = ErrorOut.from_dict(response.json())

        return response_503

    if client.raise_on_unexpected_status:
        raise errors.UnexpectedStatus(response.status_code, response.content)
    else:
        return None


def _build_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> Response[ErrorOut | JobOut]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    job_id: str,
    *,
    client: AuthenticatedClient,
    wait: int | Unset = UNSET,
    facesearch_gallery: str | Unset = UNSET,
) -> Response[ErrorOut | JobOut]:
    """A job's status, progress and result

     With `wait=N`: a long poll. The answer comes as soon as the job has ended, or after N seconds with
    its state then; instead of polling every second.

    Needs an API key with the `search` scope (or higher).

    Args:
        job_id (str):
        wait (int | Unset):
        facesearch_gallery (str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorOut | JobOut]
    """

    kwargs = _get_kwargs(
        job_id=job_id,
        wait=wait,
        facesearch_gallery=facesearch_gallery,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    job_id: str,
    *,
    client: AuthenticatedClient,
    wait: int | Unset = UNSET,
    facesearch_gallery: str | Unset = UNSET,
) -> ErrorOut | JobOut | None:
    """A job's status, progress and result

     With `wait=N`: a long poll. The answer comes as soon as the job has ended, or after N seconds with
    its state then; instead of polling every second.

    Needs an API key with the `search` scope (or higher).

    Args:
        job_id (str):
        wait (int | Unset):
        facesearch_gallery (str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorOut | JobOut
    """

    return sync_detailed(
        job_id=job_id,
        client=client,
        wait=wait,
        facesearch_gallery=facesearch_gallery,
    ).parsed


async def asyncio_detailed(
    job_id: str,
    *,
    client: AuthenticatedClient,
    wait: int | Unset = UNSET,
    facesearch_gallery: str | Unset = UNSET,
) -> Response[ErrorOut | JobOut]:
    """A job's status, progress and result

     With `wait=N`: a long poll. The answer comes as soon as the job has ended, or after N seconds with
    its state then; instead of polling every second.

    Needs an API key with the `search` scope (or higher).

    Args:
        job_id (str):
        wait (int | Unset):
        facesearch_gallery (str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorOut | JobOut]
    """

    kwargs = _get_kwargs(
        job_id=job_id,
        wait=wait,
        facesearch_gallery=facesearch_gallery,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    job_id: str,
    *,
    client: AuthenticatedClient,
    wait: int | Unset = UNSET,
    facesearch_gallery: str | Unset = UNSET,
) -> ErrorOut | JobOut | None:
    """A job's status, progress and result

     With `wait=N`: a long poll. The answer comes as soon as the job has ended, or after N seconds with
    its state then; instead of polling every second.

    Needs an API key with the `search` scope (or higher).

    Args:
        job_id (str):
        wait (int | Unset):
        facesearch_gallery (str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorOut | JobOut
    """

    return (
        await asyncio_detailed(
            job_id=job_id,
            client=client,
            wait=wait,
            facesearch_gallery=facesearch_gallery,
        )
    ).parsed
