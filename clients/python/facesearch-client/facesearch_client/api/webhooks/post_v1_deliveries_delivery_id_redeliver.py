from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.delivery_out import DeliveryOut
from ...models.error_out import ErrorOut
from ...types import UNSET, Response, Unset


def _get_kwargs(
    delivery_id: str,
    *,
    facesearch_gallery: str | Unset = UNSET,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    if not isinstance(facesearch_gallery, Unset):
        headers["Facesearch-Gallery"] = facesearch_gallery

    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/v1/deliveries/{delivery_id}/redeliver".format(
            delivery_id=quote(str(delivery_id), safe=""),
        ),
    }

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> DeliveryOut | ErrorOut | None:
    if response.status_code == 202:
        response_202 = DeliveryOut.from_dict(response.json())

        return response_202

    if response.status_code == 401:
        response_401 = ErrorOut.from_dict(response.json())

        return response_401

    if response.status_code == 403:
        response_403 = ErrorOut.from_dict(response.json())

        return response_403

    if response.status_code == 404:
        response_404 = ErrorOut.from_dict(response.json())

        return response_404

    if response.status_code == 409:
        response_409 = ErrorOut.from_dict(response.json())

        return response_409

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
) -> Response[DeliveryOut | ErrorOut]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    delivery_id: str,
    *,
    client: AuthenticatedClient,
    facesearch_gallery: str | Unset = UNSET,
) -> Response[DeliveryOut | ErrorOut]:
    """Deliver an event again now

     Queues one more attempt at once, whatever the delivery's status; the event (its id and body) is the
    same, so a receiver that already has it can ignore it. If the delivery was still retrying, its
    schedule goes on from this attempt. A delivery may have at most `WEBHOOK_MAX_ATTEMPTS` +
    `WEBHOOK_MAX_REDELIVERIES` attempts.

    Needs an API key with the `admin` scope (or higher).

    Args:
        delivery_id (str):
        facesearch_gallery (str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[DeliveryOut | ErrorOut]
    """

    kwargs = _get_kwargs(
        delivery_id=delivery_id,
        facesearch_gallery=facesearch_gallery,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    delivery_id: str,
    *,
    client: AuthenticatedClient,
    facesearch_gallery: str | Unset = UNSET,
) -> DeliveryOut | ErrorOut | None:
    """Deliver an event again now

     Queues one more attempt at once, whatever the delivery's status; the event (its id and body) is the
    same, so a receiver that already has it can ignore it. If the delivery was still retrying, its
    schedule goes on from this attempt. A delivery may have at most `WEBHOOK_MAX_ATTEMPTS` +
    `WEBHOOK_MAX_REDELIVERIES` attempts.

    Needs an API key with the `admin` scope (or higher).

    Args:
        delivery_id (str):
        facesearch_gallery (str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        DeliveryOut | ErrorOut
    """

    return sync_detailed(
        delivery_id=delivery_id,
        client=client,
        facesearch_gallery=facesearch_gallery,
    ).parsed


async def asyncio_detailed(
    delivery_id: str,
    *,
    client: AuthenticatedClient,
    facesearch_gallery: str | Unset = UNSET,
) -> Response[DeliveryOut | ErrorOut]:
    """Deliver an event again now

     Queues one more attempt at once, whatever the delivery's status; the event (its id and body) is the
    same, so a receiver that already has it can ignore it. If the delivery was still retrying, its
    schedule goes on from this attempt. A delivery may have at most `WEBHOOK_MAX_ATTEMPTS` +
    `WEBHOOK_MAX_REDELIVERIES` attempts.

    Needs an API key with the `admin` scope (or higher).

    Args:
        delivery_id (str):
        facesearch_gallery (str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[DeliveryOut | ErrorOut]
    """

    kwargs = _get_kwargs(
        delivery_id=delivery_id,
        facesearch_gallery=facesearch_gallery,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    delivery_id: str,
    *,
    client: AuthenticatedClient,
    facesearch_gallery: str | Unset = UNSET,
) -> DeliveryOut | ErrorOut | None:
    """Deliver an event again now

     Queues one more attempt at once, whatever the delivery's status; the event (its id and body) is the
    same, so a receiver that already has it can ignore it. If the delivery was still retrying, its
    schedule goes on from this attempt. A delivery may have at most `WEBHOOK_MAX_ATTEMPTS` +
    `WEBHOOK_MAX_REDELIVERIES` attempts.

    Needs an API key with the `admin` scope (or higher).

    Args:
        delivery_id (str):
        facesearch_gallery (str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        DeliveryOut | ErrorOut
    """

    return (
        await asyncio_detailed(
            delivery_id=delivery_id,
            client=client,
            facesearch_gallery=facesearch_gallery,
        )
    ).parsed
