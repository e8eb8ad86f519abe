from http import HTTPStatus
from typing import Any

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.error_out import ErrorOut
from ...models.job_created_out import JobCreatedOut
from ...models.post_v1_archives_files_body import PostV1ArchivesFilesBody
from ...models.post_v1_archives_json_body import PostV1ArchivesJsonBody
from ...models.post_v1_archives_label_from import PostV1ArchivesLabelFrom
from ...types import UNSET, File, Response, Unset


def _get_kwargs(
    *,
    body: PostV1ArchivesJsonBody | File | PostV1ArchivesFilesBody | Unset = UNSET,
    label_from: PostV1ArchivesLabelFrom | Unset = PostV1ArchivesLabelFrom.FOLDER,
    filename: str | Unset = UNSET,
    idempotency_key: str | Unset = UNSET,
    facesearch_gallery: str | Unset = UNSET,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    if not isinstance(idempotency_key, Unset):
        headers["Idempotency-Key"] = idempotency_key

    if not isinstance(facesearch_gallery, Unset):
        headers["Facesearch-Gallery"] = facesearch_gallery

    params: dict[str, Any] = {}

    json_label_from: str | Unset = UNSET
    if not isinstance(label_from, Unset):
        json_label_from = label_from.value

    params["label_from"] = json_label_from

    params["filename"] = filename

    params = {k: v for k, v in params.items() if v is not UNSET and v is not None}

    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/v1/archives",
        "params": params,
    }

    if isinstance(body, PostV1ArchivesJsonBody):
        _kwargs["json"] = body.to_dict()

        headers["Content-Type"] = "application/json"
    if isinstance(body, File):
        _kwargs["content"] = body.payload
        headers["Content-Type"] = "application/octet-stream"
    if isinstance(body, PostV1ArchivesFilesBody):
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
    body: PostV1ArchivesJsonBody | File | PostV1ArchivesFilesBody | Unset = UNSET,
    label_from: PostV1ArchivesLabelFrom | Unset = PostV1ArchivesLabelFrom.FOLDER,
    filename: str | Unset = UNSET,
    idempotency_key: str | Unset = UNSET,
    facesearch_gallery: str | Unset = UNSET,
) -> Response[ErrorOut | JobCreatedOut]:
    """Add the images of an archive to the gallery

     Send a `.tar`, `.tar.gz`/`.tgz`, `.tar.bz2`, `.tar.xz` or `.zip` as the raw request body (`Content-
    Type: application/octet-stream`, options in the query string), as a multipart part named `file`
    (options as form fields), or send JSON `{"object_key": "imports/<gallery name>/...", "label_from":
    "folder"}` naming an archive already in the object store: only under the gallery's own prefix
    `imports/<gallery name>/` (any other key is refused, 403). `label_from`: `folder` (default; LFW's
    `Name/Name_0001.jpg` gives `Name`), `filename` (`Name_0001.jpg` gives `Name`) or `none`. The archive
    is streamed to the store, never held in memory, and an `archive` job reads it member by member:
    unsafe or unusable members are failed items with a reason, repeated images are skipped items. Poll
    the job at the `Location` header; list failures at `/v1/jobs/{id}/items?status=failed`.

    Needs an API key with the `write` scope (or higher).

    Args:
        label_from (PostV1ArchivesLabelFrom | Unset): where a member's label comes from: `folder`
            (LFW's `Name/Name_0001.jpg` gives `Name`), `filename` (`Name_0001.jpg` gives `Name`) or
            `none` Default: PostV1ArchivesLabelFrom.FOLDER.
        filename (str | Unset):
        idempotency_key (str | Unset):
        facesearch_gallery (str | Unset):
        body (PostV1ArchivesJsonBody):
        body (File):
        body (PostV1ArchivesFilesBody):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorOut | JobCreatedOut]
    """

    kwargs = _get_kwargs(
        body=body,
        label_from=label_from,
        filename=filename,
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
    body: PostV1ArchivesJsonBody | File | PostV1ArchivesFilesBody | Unset = UNSET,
    label_from: PostV1ArchivesLabelFrom | Unset = PostV1ArchivesLabelFrom.FOLDER,
    filename: str | Unset = UNSET,
    idempotency_key: str | Unset = UNSET,
    facesearch_gallery: str | Unset = UNSET,
) -> ErrorOut | JobCreatedOut | None:
    """Add the images of an archive to the gallery

     Send a `.tar`, `.tar.gz`/`.tgz`, `.tar.bz2`, `.tar.xz` or `.zip` as the raw request body (`Content-
    Type: application/octet-stream`, options in the query string), as a multipart part named `file`
    (options as form fields), or send JSON `{"object_key": "imports/<gallery name>/...", "label_from":
    "folder"}` naming an archive already in the object store: only under the gallery's own prefix
    `imports/<gallery name>/` (any other key is refused, 403). `label_from`: `folder` (default; LFW's
    `Name/Name_0001.jpg` gives `Name`), `filename` (`Name_0001.jpg` gives `Name`) or `none`. The archive
    is streamed to the store, never held in memory, and an `archive` job reads it member by member:
    unsafe or unusable members are failed items with a reason, repeated images are skipped items. Poll
    the job at the `Location` header; list failures at `/v1/jobs/{id}/items?status=failed`.

    Needs an API key with the `write` scope (or higher).

    Args:
        label_from (PostV1ArchivesLabelFrom | Unset): where a member's label comes from: `folder`
            (LFW's `Name/Name_0001.jpg` gives `Name`), `filename` (`Name_0001.jpg` gives `Name`) or
            `none` Default: PostV1ArchivesLabelFrom.FOLDER.
        filename (str | Unset):
        idempotency_key (str | Unset):
        facesearch_gallery (str | Unset):
        body (PostV1ArchivesJsonBody):
        body (File):
        body (PostV1ArchivesFilesBody):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorOut | JobCreatedOut
    """

    return sync_detailed(
        client=client,
        body=body,
        label_from=label_from,
        filename=filename,
        idempotency_key=idempotency_key,
        facesearch_gallery=facesearch_gallery,
    ).parsed


async def asyncio_detailed(
    *,
    client: AuthenticatedClient,
    body: PostV1ArchivesJsonBody | File | PostV1ArchivesFilesBody | Unset = UNSET,
    label_from: PostV1ArchivesLabelFrom | Unset = PostV1ArchivesLabelFrom.FOLDER,
    filename: str | Unset = UNSET,
    idempotency_key: str | Unset = UNSET,
    facesearch_gallery: str | Unset = UNSET,
) -> Response[ErrorOut | JobCreatedOut]:
    """Add the images of an archive to the gallery

     Send a `.tar`, `.tar.gz`/`.tgz`, `.tar.bz2`, `.tar.xz` or `.zip` as the raw request body (`Content-
    Type: application/octet-stream`, options in the query string), as a multipart part named `file`
    (options as form fields), or send JSON `{"object_key": "imports/<gallery name>/...", "label_from":
    "folder"}` naming an archive already in the object store: only under the gallery's own prefix
    `imports/<gallery name>/` (any other key is refused, 403). `label_from`: `folder` (default; LFW's
    `Name/Name_0001.jpg` gives `Name`), `filename` (`Name_0001.jpg` gives `Name`) or `none`. The archive
    is streamed to the store, never held in memory, and an `archive` job reads it member by member:
    unsafe or unusable members are failed items with a reason, repeated images are skipped items. Poll
    the job at the `Location` header; list failures at `/v1/jobs/{id}/items?status=failed`.

    Needs an API key with the `write` scope (or higher).

    Args:
        label_from (PostV1ArchivesLabelFrom | Unset): where a member's label comes from: `folder`
            (LFW's `Name/Name_0001.jpg` gives `Name`), `filename` (`Name_0001.jpg` gives `Name`) or
            `none` Default: PostV1ArchivesLabelFrom.FOLDER.
        filename (str | Unset):
        idempotency_key (str | Unset):
        facesearch_gallery (str | Unset):
        body (PostV1ArchivesJsonBody):
        body (File):
        body (PostV1ArchivesFilesBody):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorOut | JobCreatedOut]
    """

    kwargs = _get_kwargs(
        body=body,
        label_from=label_from,
        filename=filename,
        idempotency_key=idempotency_key,
        facesearch_gallery=facesearch_gallery,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    *,
    client: AuthenticatedClient,
    body: PostV1ArchivesJsonBody | File | PostV1ArchivesFilesBody | Unset = UNSET,
    label_from: PostV1ArchivesLabelFrom | Unset = PostV1ArchivesLabelFrom.FOLDER,
    filename: str | Unset = UNSET,
    idempotency_key: str | Unset = UNSET,
    facesearch_gallery: str | Unset = UNSET,
) -> ErrorOut | JobCreatedOut | None:
    """Add the images of an archive to the gallery

     Send a `.tar`, `.tar.gz`/`.tgz`, `.tar.bz2`, `.tar.xz` or `.zip` as the raw request body (`Content-
    Type: application/octet-stream`, options in the query string), as a multipart part named `file`
    (options as form fields), or send JSON `{"object_key": "imports/<gallery name>/...", "label_from":
    "folder"}` naming an archive already in the object store: only under the gallery's own prefix
    `imports/<gallery name>/` (any other key is refused, 403). `label_from`: `folder` (default; LFW's
    `Name/Name_0001.jpg` gives `Name`), `filename` (`Name_0001.jpg` gives `Name`) or `none`. The archive
    is streamed to the store, never held in memory, and an `archive` job reads it member by member:
    unsafe or unusable members are failed items with a reason, repeated images are skipped items. Poll
    the job at the `Location` header; list failures at `/v1/jobs/{id}/items?status=failed`.

    Needs an API key with the `write` scope (or higher).

    Args:
        label_from (PostV1ArchivesLabelFrom | Unset): where a member's label comes from: `folder`
            (LFW's `Name/Name_0001.jpg` gives `Name`), `filename` (`Name_0001.jpg` gives `Name`) or
            `none` Default: PostV1ArchivesLabelFrom.FOLDER.
        filename (str | Unset):
        idempotency_key (str | Unset):
        facesearch_gallery (str | Unset):
        body (PostV1ArchivesJsonBody):
        body (File):
        body (PostV1ArchivesFilesBody):

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
            label_from=label_from,
            filename=filename,
            idempotency_key=idempotency_key,
            facesearch_gallery=facesearch_gallery,
        )
    ).parsed
