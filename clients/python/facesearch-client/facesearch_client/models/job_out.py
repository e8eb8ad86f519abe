from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.job_item_out import JobItemOut
    from ..models.job_out_result import JobOutResult
    from ..models.progress import Progress


T = TypeVar("T", bound="JobOut")


@_attrs_define
class JobOut:
    """
    Attributes:
        created_at (datetime.datetime | Unset):
        error (None | str | Unset):
        finished_at (datetime.datetime | None | Unset):
        id (str | Unset):
        items (list[JobItemOut] | Unset): per-file outcome: the first 100 items; GET /v1/jobs/{id}/items pages through
            all
        job_url (str | Unset):
        kind (str | Unset): ingest, search or reindex
        progress (Progress | Unset):
        result (JobOutResult | Unset):
        started_at (datetime.datetime | None | Unset):
        status (str | Unset): queued, running, succeeded, partial, failed or cancelled
    """

    created_at: datetime.datetime | Unset = UNSET
    error: None | str | Unset = UNSET
    finished_at: datetime.datetime | None | Unset = UNSET
    id: str | Unset = UNSET
    items: list[JobItemOut] | Unset = UNSET
    job_url: str | Unset = UNSET
    kind: str | Unset = UNSET
    progress: Progress | Unset = UNSET
    result: JobOutResult | Unset = UNSET
    started_at: datetime.datetime | None | Unset = UNSET
    status: str | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        created_at: str | Unset = UNSET
        if not isinstance(self.created_at, Unset):
            created_at = self.created_at.isoformat()

        error: None | str | Unset
        if isinstance(self.error, Unset):
            error = UNSET
        else:
            error = self.error

        finished_at: None | str | Unset
        if isinstance(self.finished_at, Unset):
            finished_at = UNSET
        elif isinstance(self.finished_at, datetime.datetime):
            finished_at = self.finished_at.isoformat()
        else:
            finished_at = self.finished_at

        id = self.id

        items: list[dict[str, Any]] | Unset = UNSET
        if not isinstance(self.items, Unset):
            items = []
            for items_item_data in self.items:
                items_item = items_item_data.to_dict()
                items.append(items_item)

        job_url = self.job_url

        kind = self.kind

        progress: dict[str, Any] | Unset = UNSET
        if not isinstance(self.progress, Unset):
            progress = self.progress.to_dict()

        result: dict[str, Any] | Unset = UNSET
        if not isinstance(self.result, Unset):
            result = self.result.to_dict()

        started_at: None | str | Unset
        if isinstance(self.started_at, Unset):
            started_at = UNSET
        elif isinstance(self.started_at, datetime.datetime):
            started_at = self.started_at.isoformat()
        else:
            started_at = self.started_at

        status = self.status

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if created_at is not UNSET:
            field_dict["created_at"] = created_at
        if error is not UNSET:
            field_dict["error"] = error
        if finished_at is not UNSET:
            field_dict["finished_at"] = finished_at
        if id is not UNSET:
            field_dict["id"] = id
        if items is not UNSET:
            field_dict["items"] = items
        if job_url is not UNSET:
            field_dict["job_url"] = job_url
        if kind is not UNSET:
            field_dict["kind"] = kind
        if progress is not UNSET:
            field_dict["progress"] = progress
        if result is not UNSET:
            field_dict["result"] = result
        if started_at is not UNSET:
            field_dict["started_at"] = started_at
        if status is not UNSET:
            field_dict["status"] = status

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.job_item_out import JobItemOut  # noqa: PLC0415
        from ..models.job_out_result import JobOutResult  # noqa: PLC0415
        from ..models.progress import Progress  # noqa: PLC0415

        d = dict(src_dict)
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

        _items = d.pop("items", UNSET)
        items: list[JobItemOut] | Unset = UNSET
        if _items is not UNSET:
            items = []
            for items_item_data in _items:
                items_item = JobItemOut.from_dict(items_item_data)

                items.append(items_item)

        job_url = d.pop("job_url", UNSET)

        kind = d.pop("kind", UNSET)

        _progress = d.pop("progress", UNSET)
        progress: Progress | Unset
        if isinstance(_progress, Unset):
            progress = UNSET
        else:
            progress = Progress.from_dict(_progress)

        _result = d.pop("result", UNSET)
        result: JobOutResult | Unset
        if isinstance(_result, Unset):
            result = UNSET
        else:
            result = JobOutResult.from_dict(_result)

        def _parse_started_at(data: object) -> datetime.datetime | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                started_at_type_0 = datetime.datetime.fromisoformat(data)

                return started_at_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(datetime.datetime | None | Unset, data)

        started_at = _parse_started_at(d.pop("started_at", UNSET))

        status = d.pop("status", UNSET)

        job_out = cls(
            created_at=created_at,
            error=error,
            finished_at=finished_at,
            id=id,
            items=items,
            job_url=job_url,
            kind=kind,
            progress=progress,
            result=result,
            started_at=started_at,
            status=status,
        )

        return job_out
