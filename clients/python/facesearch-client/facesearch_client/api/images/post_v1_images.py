from http import HTTPStatus
from typing import Any

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.error_out import ErrorOut
from ...models.image_upload_in import ImageUploadIn
from ...models.job_created_out import JobCreatedOut
from ...types import UNSET, Response, Unset


def _get_kwargs(
    *,
    body: ImageUploadIn,
    idempotency_key: str | Unset = UNSET,
    facesearch_gallery: str | Unset = UNSET,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    if not isinstance(idempotency_key, Unset):
        headers["Idempotency-Key"] = idempotency_key

    if not isinstance(facesearch_gallery, Unset):
        headers["Facesearch-Gallery"] = facesearch_gallery

    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/v1/images",
    }

    _kwargs["files"] = body.to_multipart()

    headers["Content-Type"] = "multipart/form-data; boundary=+++"

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> ErrorOut | JobCreatedOut | None:
    if response.status_code == 202:
        response_202 = JobCreatedOut.from_dict(response.json())

        return response_202

    if response.status_code == 401:
        response_401 = ErrorOut.from_dict(response.json())

        return response_401

    if response.status_code == 403:
        response_403 = ErrorOut.from_dict(response.json())

        return response_403

    if response.status_code == 409:
        response_409 = ErrorOut.from_dict(response.json())

        return response_409

    if response.status_code == 413:
        response_413 = ErrorOut.from_dict(response.json())

        return response_413

    if response.status_code == 415:
        response_415 = ErrorOut.from_dict(response.json())

        return response_415

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
) -> Response[ErrorOut | JobCreatedOut]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    *,
    client: AuthenticatedClient,
    body: ImageUploadIn,
    idempotency_key: str | Unset = UNSET,
    facesearch_gallery: str | Unset = UNSET,
) -> Response[ErrorOut | JobCreatedOut]:
    """Add images to the gallery

     Stores each file and queues an ingest job that detects, embeds and indexes its faces. Poll the job
    at the `Location` header. A file that is not a usable image is recorded as a failed item; if no file
    is usable the request is refused.

    Needs an API key with the `write` scope (or higher).

    Args:
        idempotency_key (str | Unset):
        facesearch_gallery (str | Unset):
        body (ImageUploadIn):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorOut | JobCreatedOut]
    """

    kwargs = _get_kwargs(
        body=body,
        idempotency_key=idempotency_key,
        facesearch_gallery=facesearch_gallery,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    *,
    client: AuthenticatedClient,
    body: ImageUploadIn,
    idempotency_key: str | Unset = UNSET,
    facesearch_gallery: str | Unset = UNSET,
) -> ErrorOut | JobCreatedOut | None:
    """Add images to the gallery

     Stores each file and queues an ingest job that detects, embeds and indexes its faces. Poll the job
    at the `Location` header. A file that is not a usable image is recorded as a failed item; if no file
    is usable the request is refused.

    Needs an API key with the `write` scope (or higher).

    Args:
        idempotency_key (str | Unset):
        facesearch_gallery (str | Unset):
        body (ImageUploadIn):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorOut | JobCreatedOut
    """

    return sync_detailed(
        client=client,
        body=body,
        idempotency_key=idempotency_key,
        facesearch_gallery=facesearch_gallery,
    ).parsed


async def asyncio_detailed(
    *,
    client: AuthenticatedClient,
    body: ImageUploadIn,
    idempotency_key: str | Unset = UNSET,
    facesearch_gallery: str | Unset = UNSET,
) -> Response[ErrorOut | JobCreatedOut]:
    """Add images to the gallery

     Stores each file and queues an ingest job that detects, embeds and indexes its faces. Poll the job
    at the `Location` header. A file that is not a usable image is recorded as a failed item; if no file
    is usable the request is refused.

    Needs an API key with the `write` scope (or higher).

    Args:
        idempotency_key (str | Unset):
        facesearch_gallery (str | Unset):
        body (ImageUploadIn):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorOut | JobCreatedOut]
    """

    kwargs = _get_kwargs(
        body=body,
        idempotency_key=idempotency_key,
        facesearch_gallery=facesearch_gallery,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    *,
    client: AuthenticatedClient,
    body: ImageUploadIn,
    idempotency_key: str | Unset = UNSET,
    facesearch_gallery: str | Unset = UNSET,
) -> ErrorOut | JobCreatedOut | None:
    """Add images to the gallery

     Stores each file and queues an ingest job that detects, embeds and indexes its faces. Poll the job
    at the `Location` header. A file that is not a usable image is recorded as a failed item; if no file
    is usable the request is refused.

    Needs an API key with the `write` scope (or higher).

    Args:
        idempotency_key (str | Unset):
        facesearch_gallery (str | Unset):
        body (ImageUploadIn):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorOut | JobCreatedOut
    """

    return (
        await asyncio_detailed(
            client=client,
            body=body,
            idempotency_key=idempotency_key,
            facesearch_gallery=facesearch_gallery,
        )
    ).parsed
