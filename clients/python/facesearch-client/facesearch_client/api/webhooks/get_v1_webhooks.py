from http import HTTPStatus
from typing import Any

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.error_out import ErrorOut
from ...models.webhook_list_out import WebhookListOut
from ...types import UNSET, Response, Unset


def _get_kwargs(
    *,
    facesearch_gallery: str | Unset = UNSET,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    if not isinstance(facesearch_gallery, Unset):
        headers["Facesearch-Gallery"] = facesearch_gallery

    _kwargs: dict[str, Any] = {
        "method": "get",
        "url": "/v1/webhooks",
    }

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> ErrorOut | WebhookListOut | None:
    if response.status_code == 200:
        response_200 = WebhookListOut.from_dict(response.json())

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
) -> Response[ErrorOut | WebhookListOut]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    *,
    client: AuthenticatedClient,
    facesearch_gallery: str | Unset = UNSET,
) -> Response[ErrorOut | WebhookListOut]:
    """Every webhook subscription (without secrets)

     Needs an API key with the `admin` scope (or higher).

    Args:
        facesearch_gallery (str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorOut | WebhookListOut]
    """

    kwargs = _get_kwargs(
        facesearch_gallery=facesearch_gallery,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    *,
    client: AuthenticatedClient,
    facesearch_gallery: str | Unset = UNSET,
) -> ErrorOut | WebhookListOut | None:
    """Every webhook subscription (without secrets)

     Needs an API key with the `admin` scope (or higher).

    Args:
        facesearch_gallery (str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorOut | WebhookListOut
    """

    return sync_detailed(
        client=client,
        facesearch_gallery=facesearch_gallery,
    ).parsed


async def asyncio_detailed(
    *,
    client: AuthenticatedClient,
    facesearch_gallery: str | Unset = UNSET,
) -> Response[ErrorOut | WebhookListOut]:
    """Every webhook subscription (without secrets)

     Needs an API key with the `admin` scope (or higher).

    Args:
        facesearch_gallery (str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorOut | WebhookListOut]
    """

    kwargs = _get_kwargs(
        facesearch_gallery=facesearch_gallery,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    *,
    client: AuthenticatedClient,
    facesearch_gallery: str | Unset = UNSET,
) -> ErrorOut | WebhookListOut | None:
    """Every webhook subscription (without secrets)

     Needs an API key with the `admin` scope (or higher).

    Args:
        facesearch_gallery (str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorOut | WebhookListOut
    """

    return (
        await asyncio_detailed(
            client=client,
            facesearch_gallery=facesearch_gallery,
        )
    ).parsed
