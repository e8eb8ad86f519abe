from http import HTTPStatus
from typing import Any

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.error_out import ErrorOut
from ...models.get_v1_jobs_kind import GetV1JobsKind
from ...models.get_v1_jobs_status import GetV1JobsStatus
from ...models.job_page import JobPage
from ...types import UNSET, Response, Unset


def _get_kwargs(
    *,
    limit: int | Unset = 50,
    cursor: str | Unset = UNSET,
    kind: GetV1JobsKind | Unset = UNSET,
    status: GetV1JobsStatus | Unset = UNSET,
    facesearch_gallery: str | Unset = UNSET,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    if not isinstance(facesearch_gallery, Unset):
        headers["Facesearch-Gallery"] = facesearch_gallery

    params: dict[str, Any] = {}

    params["limit"] = limit

    params["cursor"] = cursor

    json_kind: str | Unset = UNSET
    if not isinstance(kind, Unset):
        json_kind = kind.value

    params["kind"] = json_kind

    json_status: str | Unset = UNSET
    if not isinstance(status, Unset):
        json_status = status.value

    params["status"] = json_status

    params = {k: v for k, v in params.items() if v is not UNSET and v is not None}

    _kwargs: dict[str, Any] = {
        "method": "get",
        "url": "/v1/jobs",
        "params": params,
    }

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> ErrorOut | JobPage | None:
    if response.status_code == 200:
        response_200 = JobPage.from_dict(response.json())

        return response_200

    if response.status_code == 401:
        response_401 = ErrorOut.from_dict(response.json())

        return response_401

    if response.status_code == 403:
        response_403 = ErrorOut.from_dict(response.json())

        return response_403

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


def _build_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> Response[ErrorOut | JobPage]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    *,
    client: AuthenticatedClient,
    limit: int | Unset = 50,
    cursor: str | Unset = UNSET,
    kind: GetV1JobsKind | Unset = UNSET,
    status: GetV1JobsStatus | Unset = UNSET,
    facesearch_gallery: str | Unset = UNSET,
) -> Response[ErrorOut | JobPage]:
    """List jobs, newest first, filtered by kind and status

     Needs an API key with the `search` scope (or higher).

    Args:
        limit (int | Unset):  Default: 50.
        cursor (str | Unset):  Example: WyIyMDI0LTA1LTAxVDEyOjAwOjAwKzAwOjAwIiwgIjBiOGU4ZjdlLTNmNW
            EtNGMxZS05ZDJiLTZhN2YxZTJjM2Q0YiJd.
        kind (GetV1JobsKind | Unset):
        status (GetV1JobsStatus | Unset):
        facesearch_gallery (str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorOut | JobPage]
    """

    kwargs = _get_kwargs(
        limit=limit,
        cursor=cursor,
        kind=kind,
        status=status,
        facesearch_gallery=facesearch_gallery,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    *,
    client: AuthenticatedClient,
    limit: int | Unset = 50,
    cursor: str | Unset = UNSET,
    kind: GetV1JobsKind | Unset = UNSET,
    status: GetV1JobsStatus | Unset = UNSET,
    facesearch_gallery: str | Unset = UNSET,
) -> ErrorOut | JobPage | None:
    """List jobs, newest first, filtered by kind and status

     Needs an API key with the `search` scope (or higher).

    Args:
        limit (int | Unset):  Default: 50.
        cursor (str | Unset):  Example: WyIyMDI0LTA1LTAxVDEyOjAwOjAwKzAwOjAwIiwgIjBiOGU4ZjdlLTNmNW
            EtNGMxZS05ZDJiLTZhN2YxZTJjM2Q0YiJd.
        kind (GetV1JobsKind | Unset):
        status (GetV1JobsStatus | Unset):
        facesearch_gallery (str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorOut | JobPage
    """

    return sync_detailed(
        client=client,
        limit=limit,
        cursor=cursor,
        kind=kind,
        status=status,
        facesearch_gallery=facesearch_gallery,
    ).parsed


async def asyncio_detailed(
    *,
    client: AuthenticatedClient,
    limit: int | Unset = 50,
    cursor: str | Unset = UNSET,
    kind: GetV1JobsKind | Unset = UNSET,
    status: GetV1JobsStatus | Unset = UNSET,
    facesearch_gallery: str | Unset = UNSET,
) -> Response[ErrorOut | JobPage]:
    """List jobs, newest first, filtered by kind and status

     Needs an API key with the `search` scope (or higher).

    Args:
        limit (int | Unset):  Default: 50.
        cursor (str | Unset):  Example: WyIyMDI0LTA1LTAxVDEyOjAwOjAwKzAwOjAwIiwgIjBiOGU4ZjdlLTNmNW
            EtNGMxZS05ZDJiLTZhN2YxZTJjM2Q0YiJd.
        kind (GetV1JobsKind | Unset):
        status (GetV1JobsStatus | Unset):
        facesearch_gallery (str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorOut | JobPage]
    """

    kwargs = _get_kwargs(
        limit=limit,
        cursor=cursor,
        kind=kind,
        status=status,
        facesearch_gallery=facesearch_gallery,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    *,
    client: AuthenticatedClient,
    limit: int | Unset = 50,
    cursor: str | Unset = UNSET,
    kind: GetV1JobsKind | Unset = UNSET,
    status: GetV1JobsStatus | Unset = UNSET,
    facesearch_gallery: str | Unset = UNSET,
) -> ErrorOut | JobPage | None:
    """List jobs, newest first, filtered by kind and status

     Needs an API key with the `search` scope (or higher).

    Args:
        limit (int | Unset):  Default: 50.
        cursor (str | Unset):  Example: WyIyMDI0LTA1LTAxVDEyOjAwOjAwKzAwOjAwIiwgIjBiOGU4ZjdlLTNmNW
            EtNGMxZS05ZDJiLTZhN2YxZTJjM2Q0YiJd.
        kind (GetV1JobsKind | Unset):
        status (GetV1JobsStatus | Unset):
        facesearch_gallery (str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorOut | JobPage
    """

    return (
        await asyncio_detailed(
            client=client,
            limit=limit,
            cursor=cursor,
            kind=kind,
            status=status,
            facesearch_gallery=facesearch_gallery,
        )
    ).parsed
