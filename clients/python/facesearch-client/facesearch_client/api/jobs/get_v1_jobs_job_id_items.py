from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.error_out import ErrorOut
from ...models.get_v1_jobs_job_id_items_status import GetV1JobsJobIdItemsStatus
from ...models.job_items_out import JobItemsOut
from ...types import UNSET, Response, Unset


def _get_kwargs(
    job_id: str,
    *,
    status: GetV1JobsJobIdItemsStatus | Unset = UNSET,
    cursor: int | Unset = UNSET,
    limit: int | Unset = 100,
    facesearch_gallery: str | Unset = UNSET,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    if not isinstance(facesearch_gallery, Unset):
        headers["Facesearch-Gallery"] = facesearch_gallery

    params: dict[str, Any] = {}

    json_status: str | Unset = UNSET
    if not isinstance(status, Unset):
        json_status = status.value

    params["status"] = json_status

    params["cursor"] = cursor

    params["limit"] = limit

    params = {k: v for k, v in params.items() if v is not UNSET and v is not None}

    _kwargs: dict[str, Any] = {
        "method": "get",
        "url": "/v1/jobs/{job_id}/items".format(
            job_id=quote(str(job_id), safe=""),
        ),
        "params": params,
    }

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> ErrorOut | JobItemsOut | None:
    if response.status_code == 200:
        response_200 = JobItemsOut.from_dict(response.json())

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


def _build_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> Response[ErrorOut | JobItemsOut]:
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
    status: GetV1JobsJobIdItemsStatus | Unset = UNSET,
    cursor: int | Unset = UNSET,
    limit: int | Unset = 100,
    facesearch_gallery: str | Unset = UNSET,
) -> Response[ErrorOut | JobItemsOut]:
    """A job's items, in member order, page by page

     Keyset pagination on the item position: pass the answer's `next_cursor` as `cursor` for the next
    page. `status=failed` lists every failure with its reason.

    Needs an API key with the `search` scope (or higher).

    Args:
        job_id (str):
        status (GetV1JobsJobIdItemsStatus | Unset):
        cursor (int | Unset):
        limit (int | Unset):  Default: 100.
        facesearch_gallery (str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorOut | JobItemsOut]
    """

    kwargs = _get_kwargs(
        job_id=job_id,
        status=status,
        cursor=cursor,
        limit=limit,
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
    status: GetV1JobsJobIdItemsStatus | Unset = UNSET,
    cursor: int | Unset = UNSET,
    limit: int | Unset = 100,
    facesearch_gallery: str | Unset = UNSET,
) -> ErrorOut | JobItemsOut | None:
    """A job's items, in member order, page by page

     Keyset pagination on the item position: pass the answer's `next_cursor` as `cursor` for the next
    page. `status=failed` lists every failure with its reason.

    Needs an API key with the `search` scope (or higher).

    Args:
        job_id (str):
        status (GetV1JobsJobIdItemsStatus | Unset):
        cursor (int | Unset):
        limit (int | Unset):  Default: 100.
        facesearch_gallery (str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorOut | JobItemsOut
    """

    return sync_detailed(
        job_id=job_id,
        client=client,
        status=status,
        cursor=cursor,
        limit=limit,
        facesearch_gallery=facesearch_gallery,
    ).parsed


async def asyncio_detailed(
    job_id: str,
    *,
    client: AuthenticatedClient,
    status: GetV1JobsJobIdItemsStatus | Unset = UNSET,
    cursor: int | Unset = UNSET,
    limit: int | Unset = 100,
    facesearch_gallery: str | Unset = UNSET,
) -> Response[ErrorOut | JobItemsOut]:
    """A job's items, in member order, page by page

     Keyset pagination on the item position: pass the answer's `next_cursor` as `cursor` for the next
    page. `status=failed` lists every failure with its reason.

    Needs an API key with the `search` scope (or higher).

    Args:
        job_id (str):
        status (GetV1JobsJobIdItemsStatus | Unset):
        cursor (int | Unset):
        limit (int | Unset):  Default: 100.
        facesearch_gallery (str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorOut | JobItemsOut]
    """

    kwargs = _get_kwargs(
        job_id=job_id,
        status=status,
        cursor=cursor,
        limit=limit,
        facesearch_gallery=facesearch_gallery,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    job_id: str,
    *,
    client: AuthenticatedClient,
    status: GetV1JobsJobIdItemsStatus | Unset = UNSET,
    cursor: int | Unset = UNSET,
    limit: int | Unset = 100,
    facesearch_gallery: str | Unset = UNSET,
) -> ErrorOut | JobItemsOut | None:
    """A job's items, in member order, page by page

     Keyset pagination on the item position: pass the answer's `next_cursor` as `cursor` for the next
    page. `status=failed` lists every failure with its reason.

    Needs an API key with the `search` scope (or higher).

    Args:
        job_id (str):
        status (GetV1JobsJobIdItemsStatus | Unset):
        cursor (int | Unset):
        limit (int | Unset):  Default: 100.
        facesearch_gallery (str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorOut | JobItemsOut
    """

    return (
        await asyncio_detailed(
            job_id=job_id,
            client=client,
            status=status,
            cursor=cursor,
            limit=limit,
            facesearch_gallery=facesearch_gallery,
        )
    ).parsed
