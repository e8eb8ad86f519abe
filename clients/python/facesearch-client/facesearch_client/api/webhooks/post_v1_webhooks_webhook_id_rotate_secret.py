from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.error_out import ErrorOut
from ...models.rotate_secret_in import RotateSecretIn
from ...models.webhook_out import WebhookOut
from ...types import UNSET, Response, Unset


def _get_kwargs(
    webhook_id: str,
    *,
    body: RotateSecretIn | Unset = UNSET,
    facesearch_gallery: str | Unset = UNSET,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    if not isinstance(facesearch_gallery, Unset):
        headers["Facesearch-Gallery"] = facesearch_gallery

    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/v1/webhooks/{webhook_id}/rotate-secret".format(
            webhook_id=quote(str(webhook_id), safe=""),
        ),
    }

    if not isinstance(body, Unset):
        _kwargs["json"] = body.to_dict()

    headers["Content-Type"] = "application/json"

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> ErrorOut | WebhookOut | None:
    if response.status_code == 200:
        response_200 = WebhookOut.from_dict(response.json())

        return response_200

    if response.status_code == 400:
        response_400 = ErrorOut.from_dict(response.json())

        return response_400

    if response.status_code == 401:
        response_401 = ErrorOut.from_dict(response.json())

        return response_401

    if response.status_code == 403:
        response_403 = ErrorOut.from_dict(response.json())

        return response_403

    if response.status_code == 404:
        response_404 = ErrorOut.from_dict(response.json())

        return response_404

    if response.status_code == 413:
        response_413 = ErrorOut.from_dict(response.json())

        return response_413

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
) -> Response[ErrorOut | WebhookOut]:
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
    body: RotateSecretIn | Unset = UNSET,
    facesearch_gallery: str | Unset = UNSET,
) -> Response[ErrorOut | WebhookOut]:
    """Replace the signing secret

     Answers with the new `secret`, shown this once. Every delivery from now on, retries of earlier
    events included, is signed with it. With `previous_valid_s`, deliveries carry a signature by the old
    secret too until then (a second `v1,...` in `webhook-signature`), so the receiver can switch without
    missing anything; otherwise the old one stops at once.

    Needs an API key with the `admin` scope (or higher).

    Args:
        webhook_id (str):
        facesearch_gallery (str | Unset):
        body (RotateSecretIn | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorOut | WebhookOut]
    """

    kwargs = _get_kwargs(
        webhook_id=webhook_id,
        body=body,
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
    body: RotateSecretIn | Unset = UNSET,
    facesearch_gallery: str | Unset = UNSET,
) -> ErrorOut | WebhookOut | None:
    """Replace the signing secret

     Answers with the new `secret`, shown this once. Every delivery from now on, retries of earlier
    events included, is signed with it. With `previous_valid_s`, deliveries carry a signature by the old
    secret too until then (a second `v1,...` in `webhook-signature`), so the receiver can switch without
    missing anything; otherwise the old one stops at once.

    Needs an API key with the `admin` scope (or higher).

    Args:
        webhook_id (str):
        facesearch_gallery (str | Unset):
        body (RotateSecretIn | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorOut | WebhookOut
    """

    return sync_detailed(
        webhook_id=webhook_id,
        client=client,
        body=body,
        facesearch_gallery=facesearch_gallery,
    ).parsed


async def asyncio_detailed(
    webhook_id: str,
    *,
    client: AuthenticatedClient,
    body: RotateSecretIn | Unset = UNSET,
    facesearch_gallery: str | Unset = UNSET,
) -> Response[ErrorOut | WebhookOut]:
    """Replace the signing secret

     Answers with the new `secret`, shown this once. Every delivery from now on, retries of earlier
    events included, is signed with it. With `previous_valid_s`, deliveries carry a signature by the old
    secret too until then (a second `v1,...` in `webhook-signature`), so the receiver can switch without
    missing anything; otherwise the old one stops at once.

    Needs an API key with the `admin` scope (or higher).

    Args:
        webhook_id (str):
        facesearch_gallery (str | Unset):
        body (RotateSecretIn | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorOut | WebhookOut]
    """

    kwargs = _get_kwargs(
        webhook_id=webhook_id,
        body=body,
        facesearch_gallery=facesearch_gallery,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    webhook_id: str,
    *,
    client: AuthenticatedClient,
    body: RotateSecretIn | Unset = UNSET,
    facesearch_gallery: str | Unset = UNSET,
) -> ErrorOut | WebhookOut | None:
    """Replace the signing secret

     Answers with the new `secret`, shown this once. Every delivery from now on, retries of earlier
    events included, is signed with it. With `previous_valid_s`, deliveries carry a signature by the old
    secret too until then (a second `v1,...` in `webhook-signature`), so the receiver can switch without
    missing anything; otherwise the old one stops at once.

    Needs an API key with the `admin` scope (or higher).

    Args:
        webhook_id (str):
        facesearch_gallery (str | Unset):
        body (RotateSecretIn | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorOut | WebhookOut
    """

    return (
        await asyncio_detailed(
            webhook_id=webhook_id,
            client=client,
            body=body,
            facesearch_gallery=facesearch_gallery,
        )
    ).parsed
