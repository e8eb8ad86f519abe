from http import HTTPStatus
from typing import Any

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.error_out import ErrorOut
from ...models.search_created_out import SearchCreatedOut
from ...models.search_in import SearchIn
from ...models.search_waited_out import SearchWaitedOut
from ...types import UNSET, Response, Unset


def _get_kwargs(
    *,
    body: SearchIn,
    idempotency_key: str | Unset = UNSET,
    prefer: str | Unset = UNSET,
    facesearch_gallery: str | Unset = UNSET,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    if not isinstance(idempotency_key, Unset):
        headers["Idempotency-Key"] = idempotency_key

    if not isinstance(prefer, Unset):
        headers["Prefer"] = prefer

    if not isinstance(facesearch_gallery, Unset):
        headers["Facesearch-Gallery"] = facesearch_gallery

    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/v1/searches",
    }

    _kwargs["files"] = body.to_multipart()

    headers["Content-Type"] = "multipart/form-data; boundary=+++"

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> ErrorOut | SearchCreatedOut | SearchWaitedOut | None:
    if response.status_code == 200:
        response_200 = SearchWaitedOut.from_dict(response.json())

        return response_200

    if response.status_code == 202:
        response_202 = SearchCreatedOut.from_dict(response.json())

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
) -> Response[ErrorOut | SearchCreatedOut | SearchWaitedOut]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    *,
    client: AuthenticatedClient,
    body: SearchIn,
    idempotency_key: str | Unset = UNSET,
    prefer: str | Unset = UNSET,
    facesearch_gallery: str | Unset = UNSET,
) -> Response[ErrorOut | SearchCreatedOut | SearchWaitedOut]:
    """Search the gallery with a photo

     Queues a search: every face in the photo is matched against the gallery. Poll the job at `Location`,
    then read `search_url`. Or send `Prefer: wait=N` (RFC 7240; N seconds, at most 30): if the search
    ends within N seconds the answer is 200 with the search itself (`Preference-Applied: wait=N`), else
    the usual 202.

    Needs an API key with the `search` scope (or higher).

    Args:
        idempotency_key (str | Unset):
        prefer (str | Unset):
        facesearch_gallery (str | Unset):
        body (SearchIn):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorOut | SearchCreatedOut | SearchWaitedOut]
    """

    kwargs = _get_kwargs(
        body=body,
        idempotency_key=idempotency_key,
        prefer=prefer,
        facesearch_gallery=facesearch_gallery,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    *,
    client: AuthenticatedClient,
    body: SearchIn,
    idempotency_key: str | Unset = UNSET,
    prefer: str | Unset = UNSET,
    facesearch_gallery: str | Unset = UNSET,
) -> ErrorOut | SearchCreatedOut | SearchWaitedOut | None:
    """Search the gallery with a photo

     Queues a search: every face in the photo is matched against the gallery. Poll the job at `Location`,
    then read `search_url`. Or send `Prefer: wait=N` (RFC 7240; N seconds, at most 30): if the search
    ends within N seconds the answer is 200 with the search itself (`Preference-Applied: wait=N`), else
    the usual 202.

    Needs an API key with the `search` scope (or higher).

    Args:
        idempotency_key (str | Unset):
        prefer (str | Unset):
        facesearch_gallery (str | Unset):
        body (SearchIn):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorOut | SearchCreatedOut | SearchWaitedOut
    """

    return sync_detailed(
        client=client,
        body=body,
        idempotency_key=idempotency_key,
        prefer=prefer,
        facesearch_gallery=facesearch_gallery,
    ).parsed


async def asyncio_detailed(
    *,
    client: AuthenticatedClient,
    body: SearchIn,
    idempotency_key: str | Unset = UNSET,
    prefer: str | Unset = UNSET,
    facesearch_gallery: str | Unset = UNSET,
) -> Response[ErrorOut | SearchCreatedOut | SearchWaitedOut]:
    """Search the gallery with a photo

     Queues a search: every face in the photo is matched against the gallery. Poll the job at `Location`,
    then read `search_url`. Or send `Prefer: wait=N` (RFC 7240; N seconds, at most 30): if the search
    ends within N seconds the answer is 200 with the search itself (`Preference-Applied: wait=N`), else
    the usual 202.

    Needs an API key with the `search` scope (or higher).

    Args:
        idempotency_key (str | Unset):
        prefer (str | Unset):
        facesearch_gallery (str | Unset):
        body (SearchIn):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorOut | SearchCreatedOut | SearchWaitedOut]
    """

    kwargs = _get_kwargs(
        body=body,
        idempotency_key=idempotency_key,
        prefer=prefer,
        facesearch_gallery=facesearch_gallery,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    *,
    client: AuthenticatedClient,
    body: SearchIn,
    idempotency_key: str | Unset = UNSET,
    prefer: str | Unset = UNSET,
    facesearch_gallery: str | Unset = UNSET,
) -> ErrorOut | SearchCreatedOut | SearchWaitedOut | None:
    """Search the gallery with a photo

     Queues a search: every face in the photo is matched against the gallery. Poll the job at `Location`,
    then read `search_url`. Or send `Prefer: wait=N` (RFC 7240; N seconds, at most 30): if the search
    ends within N seconds the answer is 200 with the search itself (`Preference-Applied: wait=N`), else
    the usual 202.

    Needs an API key with the `search` scope (or higher).

    Args:
        idempotency_key (str | Unset):
        prefer (str | Unset):
        facesearch_gallery (str | Unset):
        body (SearchIn):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorOut | SearchCreatedOut | SearchWaitedOut
    """

    return (
        await asyncio_detailed(
            client=client,
            body=body,
            idempotency_key=idempotency_key,
            prefer=prefer,
            facesearch_gallery=facesearch_gallery,
        )
    ).parsed
