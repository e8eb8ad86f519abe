from http import HTTPStatus
from typing import Any

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.error_out import ErrorOut
from ...models.label_page import LabelPage
from ...types import UNSET, Response, Unset


def _get_kwargs(
    *,
    limit: int | Unset = 50,
    cursor: str | Unset = UNSET,
    prefix: str | Unset = UNSET,
    facesearch_gallery: str | Unset = UNSET,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    if not isinstance(facesearch_gallery, Unset):
        headers["Facesearch-Gallery"] = facesearch_gallery

    params: dict[str, Any] = {}

    params["limit"] = limit

    params["cursor"] = cursor

    params["prefix"] = prefix

    params = {k: v for k, v in params.items() if v is not UNSET and v is not None}

    _kwargs: dict[str, Any] = {
        "method": "get",
        "url": "/v1/labels",
        "params": params,
    }

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> ErrorOut | LabelPage | None:
    if response.status_code == 200:
        response_200 = LabelPage.from_dict(response.json())

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


def _build_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> Response[ErrorOut | LabelPage]:
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
    prefix: str | Unset = UNSET,
    facesearch_gallery: str | Unset = UNSET,
) -> Response[ErrorOut | LabelPage]:
    """The gallery's labels (identities) with their image counts, alphabetically

     A label is counted on the images where a face carries it (an image's label names its most prominent
    face; `PUT /v1/faces/{id}/label` names any other), and on images labelled at upload whose faces are
    not written yet or where none was found.

    Needs an API key with the `search` scope (or higher).

    Args:
        limit (int | Unset):  Default: 50.
        cursor (str | Unset):  Example: WyJBZGFfTG92ZWxhY2UiXQ.
        prefix (str | Unset):
        facesearch_gallery (str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorOut | LabelPage]
    """

    kwargs = _get_kwargs(
        limit=limit,
        cursor=cursor,
        prefix=prefix,
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
    prefix: str | Unset = UNSET,
    facesearch_gallery: str | Unset = UNSET,
) -> ErrorOut | LabelPage | None:
    """The gallery's labels (identities) with their image counts, alphabetically

     A label is counted on the images where a face carries it (an image's label names its most prominent
    face; `PUT /v1/faces/{id}/label` names any other), and on images labelled at upload whose faces are
    not written yet or where none was found.

    Needs an API key with the `search` scope (or higher).

    Args:
        limit (int | Unset):  Default: 50.
        cursor (str | Unset):  Example: WyJBZGFfTG92ZWxhY2UiXQ.
        prefix (str | Unset):
        facesearch_gallery (str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorOut | LabelPage
    """

    return sync_detailed(
        client=client,
        limit=limit,
        cursor=cursor,
        prefix=prefix,
        facesearch_gallery=facesearch_gallery,
    ).parsed


async def asyncio_detailed(
    *,
    client: AuthenticatedClient,
    limit: int | Unset = 50,
    cursor: str | Unset = UNSET,
    prefix: str | Unset = UNSET,
    facesearch_gallery: str | Unset = UNSET,
) -> Response[ErrorOut | LabelPage]:
    """The gallery's labels (identities) with their image counts, alphabetically

     A label is counted on the images where a face carries it (an image's label names its most prominent
    face; `PUT /v1/faces/{id}/label` names any other), and on images labelled at upload whose faces are
    not written yet or where none was found.

    Needs an API key with the `search` scope (or higher).

    Args:
        limit (int | Unset):  Default: 50.
        cursor (str | Unset):  Example: WyJBZGFfTG92ZWxhY2UiXQ.
        prefix (str | Unset):
        facesearch_gallery (str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorOut | LabelPage]
    """

    kwargs = _get_kwargs(
        limit=limit,
        cursor=cursor,
        prefix=prefix,
        facesearch_gallery=facesearch_gallery,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    *,
    client: AuthenticatedClient,
    limit: int | Unset = 50,
    cursor: str | Unset = UNSET,
    prefix: str | Unset = UNSET,
    facesearch_gallery: str | Unset = UNSET,
) -> ErrorOut | LabelPage | None:
    """The gallery's labels (identities) with their image counts, alphabetically

     A label is counted on the images where a face carries it (an image's label names its most prominent
    face; `PUT /v1/faces/{id}/label` names any other), and on images labelled at upload whose faces are
    not written yet or where none was found.

    Needs an API key with the `search` scope (or higher).

    Args:
        limit (int | Unset):  Default: 50.
        cursor (str | Unset):  Example: WyJBZGFfTG92ZWxhY2UiXQ.
        prefix (str | Unset):
        facesearch_gallery (str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorOut | LabelPage
    """

    return (
        await asyncio_detailed(
            client=client,
            limit=limit,
            cursor=cursor,
            prefix=prefix,
            facesearch_gallery=facesearch_gallery,
        )
    ).parsed
