from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.search_face_out import SearchFaceOut
    from ..models.search_waited_out_query import SearchWaitedOutQuery


T = TypeVar("T", bound="SearchWaitedOut")


@_attrs_define
class SearchWaitedOut:
    """
    Attributes:
        calibrated (bool | Unset): whether the model's matches carry same-person verdicts
        callback_secret (str | Unset): with a callback_url: the secret that signs its delivery
        created_at (datetime.datetime | Unset):
        error (None | str | Unset):
        faces (list[SearchFaceOut] | Unset):
        finished_at (datetime.datetime | None | Unset):
        id (str | Unset):
        job_id (str | Unset):
        job_url (str | Unset):
        min_probability (float | None | Unset): the search's min_probability, if it had one
        model (None | str | Unset):
        query (SearchWaitedOutQuery | Unset): width, height and image_url of the query
        search_url (str | Unset):
        status (str | Unset):
        top_k (int | Unset):
    """

    calibrated: bool | Unset = UNSET
    callback_secret: str | Unset = UNSET
    created_at: datetime.datetime | Unset = UNSET
    error: None | str | Unset = UNSET
    faces: list[SearchFaceOut] | Unset = UNSET
    finished_at: datetime.datetime | None | Unset = UNSET
    id: str | Unset = UNSET
    job_id: str | Unset = UNSET
    job_url: str | Unset = UNSET
    min_probability: float | None | Unset = UNSET
    model: None | str | Unset = UNSET
    query: SearchWaitedOutQuery | Unset = UNSET
    search_url: str | Unset = UNSET
    status: str | Unset = UNSET
    top_k: int | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        calibrated = self.calibrated

        callback_secret = self.callback_secret

        created_at: str | Unset = UNSET
        if not isinstance(self.created_at, Unset):
            created_at = self.created_at.isoformat()

        error: None | str | Unset
        if isinstance(self.error, Unset):
            error = UNSET
        else:
            error = self.error

        faces: list[dict[str, Any]] | Unset = UNSET
        if not isinstance(self.faces, Unset):
            faces = []
            for faces_item_data in self.faces:
                faces_item = faces_item_data.to_dict()
                faces.append(faces_item)

        finished_at: None | str | Unset
        if isinstance(self.finished_at, Unset):
            finished_at = UNSET
        elif isinstance(self.finished_at, datetime.datetime):
            finished_at = self.finished_at.isoformat()
        else:
            finished_at = self.finished_at

        id = self.id

        job_id = self.job_id

        job_url = self.job_url

        min_probability: float | None | Unset
        if isinstance(self.min_probability, Unset):
            min_probability = UNSET
        else:
            min_probability = self.min_probability

        model: None | str | Unset
        if isinstance(self.model, Unset):
            model = UNSET
        else:
            model = self.model

        query: dict[str, Any] | Unset = UNSET
        if not isinstance(self.query, Unset):
            query = self.query.to_dict()

        search_url = self.search_url

        status = self.status

        top_k = self.top_k

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if calibrated is not UNSET:
            field_dict["calibrated"] = calibrated
        if callback_secret is not UNSET:
            field_dict["callback_secret"] = callback_secret
        if created_at is not UNSET:
            field_dict["created_at"] = created_at
        if error is not UNSET:
            field_dict["error"] = error
        if faces is not UNSET:
            field_dict["faces"] = faces
        if finished_at is not UNSET:
            field_dict["finished_at"] = finished_at
        if id is not UNSET:
            field_dict["id"] = id
        if job_id is not UNSET:
            field_dict["job_id"] = job_id
        if job_url is not UNSET:
            field_dict["job_url"] = job_url
        if min_probability is not UNSET:
            field_dict["min_probability"] = min_probability
        if model is not UNSET:
            field_dict["model"] = model
        if query is not UNSET:
            field_dict["query"] = query
        if search_url is not UNSET:
            field_dict["search_url"] = search_url
        if status is not UNSET:
            field_dict["status"] = status
        if top_k is not UNSET:
            field_dict["top_k"] = top_k

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.search_face_out import SearchFaceOut  # noqa: PLC0415
        from ..models.search_waited_out_query import SearchWaitedOutQuery  # noqa: PLC0415

        d = dict(src_dict)
        calibrated = d.pop("calibrated", UNSET)

        callback_secret = d.pop("callback_secret", UNSET)

        _created_at = d.pop("created_at", UNSET)
        created_at: datetime.datetime | Unset
        if isinstance(_created_at, Unset):
            created_at = UNSET
        else:
            created_at = datetime.datetime.fromisoformat(_created_at)

        def _parse_error(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        error = _parse_error(d.pop("error", UNSET))

        _faces = d.pop("faces", UNSET)
        faces: list[SearchFaceOut] | Unset = UNSET
        if _faces is not UNSET:
            faces = []
            for faces_item_data in _faces:
                faces_item = SearchFaceOut.from_dict(faces_item_data)

                faces.append(faces_item)

        def _parse_finished_at(data: object) -> datetime.datetime | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                finished_at_type_0 = datetime.datetime.fromisoformat(data)

                return finished_at_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(datetime.datetime | None | Unset, data)

        finished_at = _parse_finished_at(d.pop("finished_at", UNSET))

        id = d.pop("id", UNSET)

        job_id = d.pop("job_id", UNSET)

        job_url = d.pop("job_url", UNSET)

        def _parse_min_probability(data: object) -> float | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(float | None | Unset, data)

        min_probability = _parse_min_probability(d.pop("min_probability", UNSET))

        def _parse_model(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        model = _parse_model(d.pop("model", UNSET))

        _query = d.pop("query", UNSET)
        query: SearchWaitedOutQuery | Unset
        if isinstance(_query, Unset):
            query = UNSET
        else:
            query = SearchWaitedOutQuery.from_dict(_query)

        search_url = d.pop("search_url", UNSET)

        status = d.pop("status", UNSET)

        top_k = d.pop("top_k", UNSET)

        search_waited_out = cls(
            calibrated=calibrated,
            callback_secret=callback_secret,
            created_at=created_at,
            error=error,
            faces=faces,
            finished_at=finished_at,
            id=id,
            job_id=job_id,
            job_url=job_url,
            min_probability=min_probability,
            model=model,
            query=query,
            search_url=search_url,
            status=status,
            top_k=top_k,
        )

        return search_waited_out
