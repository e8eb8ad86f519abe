from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.delivery_list_out import DeliveryListOut
from ...models.error_out import ErrorOut
from ...types import UNSET, Response, Unset


def _get_kwargs(
    webhook_id: str,
    *,
    limit: int | None | Unset = UNSET,
    facesearch_gallery: str | Unset = UNSET,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    if not isinstance(facesearch_gallery, Unset):
        headers["Facesearch-Gallery"] = facesearch_gallery

    params: dict[str, Any] = {}

    json_limit: int | None | Unset
    if isinstance(limit, Unset):
        json_limit = UNSET
    else:
        json_limit = limit
    params["limit"] = json_limit

    params = {k: v for k, v in params.items() if v is not UNSET and v is not None}

    _kwargs: dict[str, Any] = {
        "method": "get",
        "url": "/v1/webhooks/{webhook_id}/deliveries".format(
            webhook_id=quote(str(webhook_id), safe=""),
        ),
        "params": params,
    }

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> DeliveryListOut | ErrorOut | None:
    if response.status_code == 200:
        response_200 = DeliveryListOut.from_dict(response.json())

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
) -> Response[DeliveryListOut | ErrorOut]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    webhook_id: str,
    *,
    client: AuthenticatedClient,
    limit: int | None | Unset = UNSET,
    facesearch_gallery: str | Unset = UNSET,
) -> Response[DeliveryListOut | ErrorOut]:
    """A webhook's deliveries, newest first, with every attempt

     Needs an API key with the `admin` scope (or higher).

    Args:
        webhook_id (str):
        limit (int | None | Unset):
        facesearch_gallery (str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[DeliveryListOut | ErrorOut]
    """

    kwargs = _get_kwargs(
        webhook_id=webhook_id,
        limit=limit,
        facesearch_gallery=facesearch_gallery,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    webhook_id: str,
    *,
    client: AuthenticatedClient,
    limit: int | None | Unset = UNSET,
    facesearch_gallery: str | Unset = UNSET,
) -> DeliveryListOut | ErrorOut | None:
    """A webhook's deliveries, newest first, with every attempt

     Needs an API key with the `admin` scope (or higher).

    Args:
        webhook_id (str):
        limit (int | None | Unset):
        facesearch_gallery (str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        DeliveryListOut | ErrorOut
    """

    return sync_detailed(
        webhook_id=webhook_id,
        client=client,
        limit=limit,
        facesearch_gallery=facesearch_gallery,
    ).parsed


async def asyncio_detailed(
    webhook_id: str,
    *,
    client: AuthenticatedClient,
    limit: int | None | Unset = UNSET,
    facesearch_gallery: str | Unset = UNSET,
) -> Response[DeliveryListOut | ErrorOut]:
    """A webhook's deliveries, newest first, with every attempt

     Needs an API key with the `admin` scope (or higher).

    Args:
        webhook_id (str):
        limit (int | None | Unset):
        facesearch_gallery (str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[DeliveryListOut | ErrorOut]
    """

    kwargs = _get_kwargs(
        webhook_id=webhook_id,
        limit=limit,
        facesearch_gallery=facesearch_gallery,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    webhook_id: str,
    *,
    client: AuthenticatedClient,
    limit: int | None | Unset = UNSET,
    facesearch_gallery: str | Unset = UNSET,
) -> DeliveryListOut | ErrorOut | None:
    """A webhook's deliveries, newest first, with every attempt

     Needs an API key with the `admin` scope (or higher).

    Args:
        webhook_id (str):
        limit (int | None | Unset):
        facesearch_gallery (str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        DeliveryListOut | ErrorOut
    """

    return (
        await asyncio_detailed(
            webhook_id=webhook_id,
            client=client,
            limit=limit,
            facesearch_gallery=facesearch_gallery,
        )
    ).parsed
