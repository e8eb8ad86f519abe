from http import HTTPStatus
from io import BytesIO
from typing import Any, cast
from urllib.parse import quote

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.error_out import ErrorOut
from ...types import UNSET, File, Response, Unset


def _get_kwargs(
    search_id: str,
    *,
    if_none_match: str | Unset = UNSET,
    facesearch_gallery: str | Unset = UNSET,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    if not isinstance(if_none_match, Unset):
        headers["If-None-Match"] = if_none_match

    if not isinstance(facesearch_gallery, Unset):
        headers["Facesearch-Gallery"] = facesearch_gallery

    _kwargs: dict[str, Any] = {
        "method": "get",
        "url": "/v1/searches/{search_id}/query".format(
            search_id=quote(str(search_id), safe=""),
        ),
    }

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> Any | ErrorOut | File | None:
    if response.status_code == 200:
        response_200 = File(payload=BytesIO(response.content))

        return response_200

    if response.status_code == 304:
        response_304 = cast(Any, None)
        return response_304

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
) -> Response[Any | ErrorOut | File]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    search_id: str,
    *,
    client: AuthenticatedClient,
    if_none_match: str | Unset = UNSET,
    facesearch_gallery: str | Unset = UNSET,
) -> Response[Any | ErrorOut | File]:
    """The query photo's bytes

     Needs an API key with the `search` scope (or higher).

    Args:
        search_id (str):
        if_none_match (str | Unset):
        facesearch_gallery (str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Any | ErrorOut | File]
    """

    kwargs = _get_kwargs(
        search_id=search_id,
        if_none_match=if_none_match,
        facesearch_gallery=facesearch_gallery,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    search_id: str,
    *,
    client: AuthenticatedClient,
    if_none_match: str | Unset = UNSET,
    facesearch_gallery: str | Unset = UNSET,
) -> Any | ErrorOut | File | None:
    """The query photo's bytes

     Needs an API key with the `search` scope (or higher).

    Args:
        search_id (str):
        if_none_match (str | Unset):
        facesearch_gallery (str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Any | ErrorOut | File
    """

    return sync_detailed(
        search_id=search_id,
        client=client,
        if_none_match=if_none_match,
        facesearch_gallery=facesearch_gallery,
    ).parsed


async def asyncio_detailed(
    search_id: str,
    *,
    client: AuthenticatedClient,
    if_none_match: str | Unset = UNSET,
    facesearch_gallery: str | Unset = UNSET,
) -> Response[Any | ErrorOut | File]:
    """The query photo's bytes

     Needs an API key with the `search` scope (or higher).

    Args:
        search_id (str):
        if_none_match (str | Unset):
        facesearch_gallery (str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Any | ErrorOut | File]
    """

    kwargs = _get_kwargs(
        search_id=search_id,
        if_none_match=if_none_match,
        facesearch_gallery=facesearch_gallery,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    search_id: str,
    *,
    client: AuthenticatedClient,
    if_none_match: str | Unset = UNSET,
    facesearch_gallery: str | Unset = UNSET,
) -> Any | ErrorOut | File | None:
    """The query photo's bytes

     Needs an API key with the `search` scope (or higher).

    Args:
        search_id (str):
        if_none_match (str | Unset):
        facesearch_gallery (str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Any | ErrorOut | File
    """

    return (
        await asyncio_detailed(
            search_id=search_id,
            client=client,
            if_none_match=if_none_match,
            facesearch_gallery=facesearch_gallery,
        )
    ).parsed
