from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.error_out import ErrorOut
from ...models.face_label_in import FaceLabelIn
from ...models.gallery_face_out import GalleryFaceOut
from ...types import UNSET, Response, Unset


def _get_kwargs(
    face_id: int,
    *,
    body: FaceLabelIn | Unset = UNSET,
    facesearch_gallery: str | Unset = UNSET,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    if not isinstance(facesearch_gallery, Unset):
        headers["Facesearch-Gallery"] = facesearch_gallery

    _kwargs: dict[str, Any] = {
        "method": "put",
        "url": "/v1/faces/{face_id}/label".format(
            face_id=quote(str(face_id), safe=""),
        ),
    }

    if not isinstance(body, Unset):
        _kwargs["json"] = body.to_dict()

    headers["Content-Type"] = "application/json"

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> ErrorOut | GalleryFaceOut | None:
    if response.status_code == 200:
        response_200 = GalleryFaceOut.from_dict(response.json())

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
) -> Response[ErrorOut | GalleryFaceOut]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    face_id: int,
    *,
    client: AuthenticatedClient,
    body: FaceLabelIn | Unset = UNSET,
    facesearch_gallery: str | Unset = UNSET,
) -> Response[ErrorOut | GalleryFaceOut]:
    """Label a face, or relabel it

     Says who this face is. Only this face changes: the image's other faces and the label the image was
    uploaded with stay as they were. Searches answer the new label from now on.

    Needs an API key with the `write` scope (or higher).

    Args:
        face_id (int):
        facesearch_gallery (str | Unset):
        body (FaceLabelIn | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorOut | GalleryFaceOut]
    """

    kwargs = _get_kwargs(
        face_id=face_id,
        body=body,
        facesearch_gallery=facesearch_gallery,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    face_id: int,
    *,
    client: AuthenticatedClient,
    body: FaceLabelIn | Unset = UNSET,
    facesearch_gallery: str | Unset = UNSET,
) -> ErrorOut | GalleryFaceOut | None:
    """Label a face, or relabel it

     Says who this face is. Only this face changes: the image's other faces and the label the image was
    uploaded with stay as they were. Searches answer the new label from now on.

    Needs an API key with the `write` scope (or higher).

    Args:
        face_id (int):
        facesearch_gallery (str | Unset):
        body (FaceLabelIn | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorOut | GalleryFaceOut
    """

    return sync_detailed(
        face_id=face_id,
        client=client,
        body=body,
        facesearch_gallery=facesearch_gallery,
    ).parsed


async def asyncio_detailed(
    face_id: int,
    *,
    client: AuthenticatedClient,
    body: FaceLabelIn | Unset = UNSET,
    facesearch_gallery: str | Unset = UNSET,
) -> Response[ErrorOut | GalleryFaceOut]:
    """Label a face, or relabel it

     Says who this face is. Only this face changes: the image's other faces and the label the image was
    uploaded with stay as they were. Searches answer the new label from now on.

    Needs an API key with the `write` scope (or higher).

    Args:
        face_id (int):
        facesearch_gallery (str | Unset):
        body (FaceLabelIn | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorOut | GalleryFaceOut]
    """

    kwargs = _get_kwargs(
        face_id=face_id,
        body=body,
        facesearch_gallery=facesearch_gallery,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    face_id: int,
    *,
    client: AuthenticatedClient,
    body: FaceLabelIn | Unset = UNSET,
    facesearch_gallery: str | Unset = UNSET,
) -> ErrorOut | GalleryFaceOut | None:
    """Label a face, or relabel it

     Says who this face is. Only this face changes: the image's other faces and the label the image was
    uploaded with stay as they were. Searches answer the new label from now on.

    Needs an API key with the `write` scope (or higher).

    Args:
        face_id (int):
        facesearch_gallery (str | Unset):
        body (FaceLabelIn | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorOut | GalleryFaceOut
    """

    return (
        await asyncio_detailed(
            face_id=face_id,
            client=client,
            body=body,
            facesearch_gallery=facesearch_gallery,
        )
    ).parsed
