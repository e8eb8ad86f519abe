"""The worker side of the Celery app: the tasks, and the per-process model loading.

Run a worker with ``facesearch worker`` or
``celery -A workers.celery_app:celery_app worker -Q search`` (one role per process, README).
Each task is a thin wrapper that hands its ids to a plain function (tested directly).
"""

from __future__ import annotations

import os
import time
from typing import Any

from celery.signals import task_postrun, task_prerun, worker_init, worker_process_init

from core.logging import bind_context, clear_context, configure_logging, get_logger
from core.metrics import MODEL_LOAD_SECONDS, TASK_DURATION, start_metrics_server
from core.queue import (
    ARCHIVE_TASK,
    DELETE_VECTORS_TASK,
    DELIVER_WEBHOOK_TASK,
    DROP_VERSIONS_TASK,
    ERASE_GALLERY_TASK,
    INDEX_TASK,
    INGEST_TASK,
    PURGE_SEARCHES_TASK,
    RECONCILE_TASK,
    REEMBED_TASK,
    REINDEX_TASK,
    SEARCH_TASK,
    make_celery,
    queue_deliveries,
)
from core.settings import get_settings
from workers import runtime
from workers.base import TRANSIENT_ERRORS, JobTask
from workers.roles import PIPELINE_QUEUES
from workers.webhooks import (
    DeliveryPolicy,
    attempt_delivery,
    max_countdown_s,
)

log = get_logger(__name__)

celery_app = make_celery()
# Celery beat (`facesearch beat`) sends these; exactly one beat may run.
celery_app.conf.beat_schedule = {
    "purge-expired-searches": {
        "task": PURGE_SEARCHES_TASK,
        "schedule": float(get_settings().retention_purge_interval_s),
    },
    "reconcile": {
        "task": RECONCILE_TASK,
        "schedule": float(get_settings().reconcile_interval_s),
    },
}


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


@celery_app.task(name=ARCHIVE_TASK, base=JobTask)
def ingest_archive(*, job_id: str) -> None:
    from workers.archive_reader import reader_config  # noqa: PLC0415
    from workers.archives import run_archive  # noqa: PLC0415

    settings = get_settings()
    run_archive(
        job_id,
        sessions=runtime.get_session_factory(),
        store=runtime.get_store(),
        pipeline=runtime.get_pipeline(),
        request_index=request_index,
        # Bounded runs: the rest of a long archive is a new message, not a long task.
        continue_later=lambda: celery_app.send_task(ARCHIVE_TASK, kwargs={"job_id": job_id}),
        batch_size=settings.pipeline_batch_size,
        max_pixels=settings.max_image_pixels,
        max_member_bytes=settings.max_upload_bytes,
        scan_batch=settings.archive_scan_batch,
        budget_s=settings.archive_task_budget_s,
        parallel_tasks=settings.archive_parallel_tasks,
        send_deliveries=lambda ids: queue_deliveries(celery_app, ids),
        reader=reader_config(settings) if settings.archive_reader == "process" else None,
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
        send_deliveries=lambda ids: queue_deliveries(celery_app, ids),
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
        send_deliveries=lambda ids: queue_deliveries(celery_app, ids),
        min_interval_s=_index_write_interval_s(),
    )


def _index_write_interval_s() -> float:
    from workers.indexing import write_interval  # noqa: PLC0415

    return write_interval(
        os.environ.get("FACESEARCH_WORKER_QUEUES"),
        index=runtime.get_index,
        interval_s=get_settings().index_write_interval_s,
    )


@celery_app.task(name=DELETE_VECTORS_TASK, base=JobTask)
def delete_vectors(model_name: str, face_ids: list[int]) -> None:
    from workers.indexing import delete_vectors as delete  # noqa: PLC0415

    delete(model_name, face_ids, index=runtime.get_index(), sessions=runtime.get_session_factory())


@celery_app.task(name=REINDEX_TASK, base=JobTask)
def reindex(*, job_id: str) -> None:
    from workers.indexing import REINDEX_BUDGET_S, run_reindex  # noqa: PLC0415

    run_reindex(
        job_id,
        sessions=runtime.get_session_factory(),
        index=runtime.get_index(),
        batch_size=get_settings().index_batch_size,
        # Bounded runs: the rest of the rebuild is a new message (same kwargs, so the
        # reconciler's re-send of a stranded job is the same continuation).
        budget_s=REINDEX_BUDGET_S,
        continue_later=lambda: celery_app.send_task(REINDEX_TASK, kwargs={"job_id": job_id}),
        send_deliveries=lambda ids: queue_deliveries(celery_app, ids),
    )


@celery_app.task(name=REEMBED_TASK, base=JobTask)
def reembed(*, job_id: str) -> None:
    """A run of `facesearch reembed` (bulk queue: it runs the face pipeline)."""
    from workers.reembed import REEMBED_BUDGET_S, run_reembed  # noqa: PLC0415

    settings = get_settings()
    run_reembed(
        job_id,
        sessions=runtime.get_session_factory(),
        store=runtime.get_store(),
        pipeline=runtime.get_pipeline(),
        request_index=request_index,
        drop_collections=lambda versions: celery_app.send_task(DROP_VERSIONS_TASK, args=[versions]),
        batch_size=settings.pipeline_batch_size,
        max_pixels=settings.max_image_pixels,
        budget_s=REEMBED_BUDGET_S,
        # Same kwargs: the reconciler's re-send of a stranded job is the same continuation.
        continue_later=lambda delay: celery_app.send_task(
            REEMBED_TASK, kwargs={"job_id": job_id}, countdown=delay or None
        ),
        send_deliveries=lambda ids: queue_deliveries(celery_app, ids),
    )


@celery_app.task(name=DROP_VERSIONS_TASK, base=JobTask)
def drop_embedding_versions(versions: list[str]) -> None:
    """Drop the collections of embedding versions no longer served (after a re-embed), on
    the index queue: the single writer is the one process that may change the index."""
    index = runtime.get_index()
    for version in versions:
        index.drop(version)
        log.info("index: dropped the collection of an old embedding version", version=version)


@celery_app.task(name=ERASE_GALLERY_TASK, base=JobTask)
def erase_gallery(*, job_id: str) -> None:
    from workers.erasure import run_gallery_erasure  # noqa: PLC0415

    settings = get_settings()
    run_gallery_erasure(
        job_id,
        sessions=runtime.get_session_factory(),
        store=runtime.get_store(),
        send_vector_deletion=lambda model_name, face_ids: celery_app.send_task(
            DELETE_VECTORS_TASK, args=[model_name, face_ids]
        ),
        # Bounded runs: the rest of a large gallery is a new message, not a long task.
        continue_later=lambda: celery_app.send_task(ERASE_GALLERY_TASK, kwargs={"job_id": job_id}),
        batch_size=settings.erasure_batch_size,
        budget_s=settings.erasure_task_budget_s,
    )


@celery_app.task(name=PURGE_SEARCHES_TASK, base=JobTask)
def purge_expired_searches() -> dict[str, int]:
    """Searches past SEARCH_RETENTION_DAYS: rows, query bytes, webhook events (beat)."""
    from workers.erasure import run_search_purge  # noqa: PLC0415

    settings = get_settings()
    return run_search_purge(
        sessions=runtime.get_session_factory(),
        store=runtime.get_store(),
        retention_days=settings.search_retention_days,
        batch_size=settings.erasure_batch_size,
    )


def send_task(name: str, args: list[Any], kwargs: dict[str, Any]) -> None:
    celery_app.send_task(name, args=args, kwargs=kwargs)


@celery_app.task(name=RECONCILE_TASK, base=JobTask)
def reconcile_stranded() -> dict[str, int]:
    """Re-queue or fail stranded jobs, fail images no job will process, index faces left
    unindexed (beat, every RECONCILE_INTERVAL_S; ``workers.reconcile``)."""
    from workers.reconcile import reconcile  # noqa: PLC0415

    settings = get_settings()
    return reconcile(
        sessions=runtime.get_session_factory(),
        send_task=send_task,
        send_deliveries=lambda ids: queue_deliveries(celery_app, ids),
        stale_s=settings.stale_after_s,
        max_requeues=settings.reconcile_max_requeues,
        batch=settings.reconcile_batch,
    )


def _schedule_delivery(delivery_id: str, attempt: int, not_before: float) -> None:
    countdown = min(max(0.0, not_before - time.time()), max_countdown_s(get_settings()))
    celery_app.send_task(
        DELIVER_WEBHOOK_TASK,
        kwargs={"delivery_id": delivery_id, "attempt": attempt, "not_before": not_before},
        countdown=countdown,
    )


@celery_app.task(
    name=DELIVER_WEBHOOK_TASK,
    acks_late=True,
    autoretry_for=TRANSIENT_ERRORS,
    retry_backoff=2,
    retry_backoff_max=120,
    retry_jitter=True,
    max_retries=5,
)
def deliver_webhook(*, delivery_id: str, attempt: int, not_before: float | None = None) -> None:
    """Attempt ``attempt`` of a delivery once ``not_before`` (unix time) has come, then
    schedule the next attempt if one is due. Long waits are a chain of short countdowns."""
    if not_before is not None and not_before - time.time() > 1:
        _schedule_delivery(delivery_id, attempt, not_before)
        return
    delay = attempt_delivery(
        delivery_id,
        attempt,
        sessions=runtime.get_session_factory(),
        policy=DeliveryPolicy.from_settings(get_settings()),
    )
    if delay is not None:
        _schedule_delivery(delivery_id, attempt + 1, time.time() + delay)


def _consumes_pipeline_queues() -> bool:
    """Whether this process takes tasks that run the face pipeline. `facesearch worker` says
    which queues it consumes; a worker started some other way loads the model to be safe.
    The io role never loads it: TensorFlow costs a GB and seconds it would never use."""
    queues = os.environ.get("FACESEARCH_WORKER_QUEUES")
    if queues is None:
        return True
    return bool(PIPELINE_QUEUES.intersection(queues.split(",")))


def _load_models() -> None:
    if not _consumes_pipeline_queues():
        log.info(
            "worker: no face pipeline in this process",
            queues=os.environ.get("FACESEARCH_WORKER_QUEUES"),
        )
        return
    pipeline = runtime.get_pipeline()
    MODEL_LOAD_SECONDS.labels(pipeline.model_name).set(pipeline.load_seconds or 0.0)
    log.info(
        "worker: face pipeline loaded",
        model=pipeline.model_name,
        seconds=round(pipeline.load_seconds or 0.0, 2),
    )


@worker_init.connect
def _on_worker_init(sender: Any = None, **_: Any) -> None:
    settings = get_settings()
    configure_logging(level=settings.log_level, json=settings.log_json)
    if settings.worker_metrics_port:
        # In this (main) process: with PROMETHEUS_MULTIPROC_DIR set (`facesearch worker` sets
        # it for prefork), it serves every child's task metrics too.
        start_metrics_server(settings.worker_metrics_port, settings.worker_metrics_host)
        log.info(
            "worker: metrics",
            url=f"http://{settings.worker_metrics_host}:{settings.worker_metrics_port}/metrics",
        )
    # A solo or threads pool runs tasks in this process: load the model now, not on the
    # first task. A prefork pool loads in each child instead (TensorFlow is not fork-safe).
    pool = str(getattr(sender, "pool_cls", "")).lower()
    if "solo" in pool or "thread" in pool:
        _load_models()


@worker_process_init.connect
def _on_worker_process_init(**_: Any) -> None:
    runtime.reset()  # connections inherited from the parent must not be shared
    _load_models()


# Task start times by task id, for the duration histogram (tasks of one process only).
_task_started: dict[str, float] = {}


@task_prerun.connect
def _bind_task_context(
    task_id: str | None = None, task: Any = None, kwargs: Any = None, **_: Any
) -> None:
    clear_context()
    if task_id:
        _task_started[task_id] = time.perf_counter()
    bind_context(
        task_id=task_id, task_name=getattr(task, "name", None), job_id=(kwargs or {}).get("job_id")
    )


@task_postrun.connect
def _observe_task(
    task_id: str | None = None, task: Any = None, state: str | None = None, **_: Any
) -> None:
    started = _task_started.pop(task_id or "", None)
    if started is not None:
        TASK_DURATION.labels(
            getattr(task, "name", "unknown"), (state or "unknown").lower()
        ).observe(time.perf_counter() - started)
    clear_context()
