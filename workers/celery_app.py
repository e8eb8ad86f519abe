"""The worker side of the Celery app: the tasks, and the per-process model loading.

Run a worker with ``facesearch worker`` or
``celery -A workers.celery_app:celery_app worker -Q pipeline,index``.
Each task is a thin wrapper that hands its ids to a plain function (tested directly).
"""

from __future__ import annotations

from typing import Any

from celery.signals import task_postrun, task_prerun, worker_init, worker_process_init

from core.logging import bind_context, clear_context, configure_logging, get_logger
from core.queue import (
    DELETE_VECTORS_TASK,
    INDEX_TASK,
    INGEST_TASK,
    REINDEX_TASK,
    SEARCH_TASK,
    make_celery,
)
from core.settings import get_settings
from workers import runtime
from workers.base import JobTask

log = get_logger(__name__)

celery_app = make_celery()


def request_index(model_name: str, job_id: str | None) -> None:
    celery_app.send_task(INDEX_TASK, args=[model_name], kwargs={"job_id": job_id})


@celery_app.task(name=INGEST_TASK, base=JobTask)
def ingest_images(*, job_id: str) -> None:
    from workers.ingest import run_ingest  # noqa: PLC0415 (keeps `celery --help` light)

    settings = get_settings()
    run_ingest(
        job_id,
        sessions=runtime.get_session_factory(),
        store=runtime.get_store(),
        pipeline=runtime.get_pipeline(),
        request_index=request_index,
        batch_size=settings.pipeline_batch_size,
        max_pixels=settings.max_image_pixels,
    )


@celery_app.task(name=SEARCH_TASK, base=JobTask)
def run_search(*, job_id: str, search_id: str) -> None:
    from workers.search import run_search as run  # noqa: PLC0415

    run(
        search_id,
        sessions=runtime.get_session_factory(),
        store=runtime.get_store(),
        pipeline=runtime.get_pipeline(),
        index=runtime.get_index(),
        max_pixels=get_settings().max_image_pixels,
    )


@celery_app.task(name=INDEX_TASK, base=JobTask)
def index_faces(model_name: str, *, job_id: str | None = None) -> None:
    from workers.indexing import run_index  # noqa: PLC0415

    run_index(
        model_name,
        job_id,
        sessions=runtime.get_session_factory(),
        index=runtime.get_index(),
        batch_size=get_settings().index_batch_size,
    )


@celery_app.task(name=DELETE_VECTORS_TASK, base=JobTask)
def delete_vectors(model_name: str, face_ids: list[int]) -> None:
    from workers.indexing import delete_vectors as delete  # noqa: PLC0415

    delete(model_name, face_ids, index=runtime.get_index())


@celery_app.task(name=REINDEX_TASK, base=JobTask)
def reindex(*, job_id: str) -> None:
    from workers.indexing import run_reindex  # noqa: PLC0415

    run_reindex(
        job_id,
        sessions=runtime.get_session_factory(),
        index=runtime.get_index(),
        batch_size=get_settings().index_batch_size,
    )


def _load_models() -> None:
    pipeline = runtime.get_pipeline()
    log.info(
        "worker: face pipeline loaded",
        model=pipeline.model_name,
        seconds=round(pipeline.load_seconds or 0.0, 2),
    )


@worker_init.connect
def _on_worker_init(sender: Any = None, **_: Any) -> None:
    settings = get_settings()
    configure_logging(level=settings.log_level, json=settings.log_json)
    # A solo or threads pool runs tasks in this process: load the model now, not on the
    # first task. A prefork pool loads in each child instead (TensorFlow is not fork-safe).
    pool = str(getattr(sender, "pool_cls", "")).lower()
    if "solo" in pool or "thread" in pool:
        _load_models()


@worker_process_init.connect
def _on_worker_process_init(**_: Any) -> None:
    runtime.reset()  # connections inherited from the parent must not be shared
    _load_models()


@task_prerun.connect
def _bind_task_context(
    task_id: str | None = None, task: Any = None, kwargs: Any = None, **_: Any
) -> None:
    clear_context()
    bind_context(
        task_id=task_id, task_name=getattr(task, "name", None), job_id=(kwargs or {}).get("job_id")
    )


@task_postrun.connect
def _clear_task_context(**_: Any) -> None:
    clear_context()
