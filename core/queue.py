"""The Celery app, built from settings; task names shared by the API and the workers.

The API sends tasks by name so that it never imports the worker modules (and so never the
face pipeline). The workers' module ``workers.celery_app`` adds the task modules.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from celery import Celery
from kombu import Exchange, Queue

from core.logging import get_logger
from core.settings import Settings, get_settings

log = get_logger(__name__)

# Queues by workload, so that no kind of work waits behind another (README, "Workers"):
# - search: interactive searches, consumed by a process of its own, so a search never waits
#   behind an archive run (up to ARCHIVE_TASK_BUDGET_S) or a batch of uploads;
# - ingest: bulk work with the face pipeline (uploads, archives);
# - io: webhook deliveries, erasure, purges and reconciling: no model, so its worker never
#   loads TensorFlow and stays light;
# - index: the index writer, exactly one consumer (Milvus lost rows under concurrent writers in
#   our measurements, FACTS.md; ``workers.writer_lock`` enforces it).
SEARCH_QUEUE = "search"
INGEST_QUEUE = "ingest"
IO_QUEUE = "io"
INDEX_QUEUE = "index"
QUEUES = (SEARCH_QUEUE, INGEST_QUEUE, IO_QUEUE, INDEX_QUEUE)
# Before the split, everything but the index shared this queue; the ingest role still drains
# it, so messages queued before an upgrade are not stranded.
LEGACY_PIPELINE_QUEUE = "pipeline"

INGEST_TASK = "facesearch.ingest_images"
SEARCH_TASK = "facesearch.run_search"
INDEX_TASK = "facesearch.index_faces"
DELETE_VECTORS_TASK = "facesearch.delete_vectors"
REINDEX_TASK = "facesearch.reindex"
ARCHIVE_TASK = "facesearch.ingest_archive"
# Erasing a gallery: its bytes, vectors and rows (services.erasure).
ERASE_GALLERY_TASK = "facesearch.erase_gallery"
# Purging searches past SEARCH_RETENTION_DAYS: run by Celery beat (`facesearch beat`).
PURGE_SEARCHES_TASK = "facesearch.purge_expired_searches"
# Re-queuing or failing stranded jobs (workers.reconcile), by beat.
RECONCILE_TASK = "facesearch.reconcile"
DELIVER_WEBHOOK_TASK = "facesearch.deliver_webhook"
# Re-embedding the gallery with a new face recipe (`facesearch reembed`: workers.reembed), and
# dropping the collections of the versions it replaced (by the index writer).
REEMBED_TASK = "facesearch.reembed"
DROP_VERSIONS_TASK = "facesearch.drop_embedding_versions"

QUEUE_OF_TASK = {
    SEARCH_TASK: SEARCH_QUEUE,
    INGEST_TASK: INGEST_QUEUE,
    ARCHIVE_TASK: INGEST_QUEUE,
    INDEX_TASK: INDEX_QUEUE,
    DELETE_VECTORS_TASK: INDEX_QUEUE,
    REINDEX_TASK: INDEX_QUEUE,
    REEMBED_TASK: INGEST_QUEUE,
    DROP_VERSIONS_TASK: INDEX_QUEUE,
    DELIVER_WEBHOOK_TASK: IO_QUEUE,
    ERASE_GALLERY_TASK: IO_QUEUE,
    PURGE_SEARCHES_TASK: IO_QUEUE,
    RECONCILE_TASK: IO_QUEUE,
}
ROUTES = {task: {"queue": queue, "routing_key": queue} for task, queue in QUEUE_OF_TASK.items()}


def broker_options(settings: Settings) -> tuple[str, dict[str, Any]]:
    """The broker URL Celery sees and its transport options."""
    if settings.filesystem_broker:
        folder = settings.broker_folder
        (folder / "queue").mkdir(parents=True, exist_ok=True)
        (folder / "processed").mkdir(parents=True, exist_ok=True)
        from core import fs_broker  # noqa: PLC0415 (registers the transport's scheme)

        return f"{fs_broker.SCHEME}://", {
            "data_folder_in": str(folder / "queue"),
            "data_folder_out": str(folder / "queue"),
            "processed_folder": str(folder / "processed"),
            # Exchange bindings; kombu's default is "control" under the working directory.
            "control_folder": str(folder / "control"),
            "store_processed": False,
            # The filesystem transport polls; 1 s (its default) would dominate a search.
            "polling_interval": 0.1,
        }
    if settings.broker_url.startswith(("redis://", "rediss://")):
        # An unacked task of a killed worker comes back after this many seconds (FACTS:
        # the default of 3,600 s leaves a job stuck for an hour). Longer than any task.
        return settings.broker_url, {
            "visibility_timeout": settings.broker_visibility_timeout_s
            or settings.task_time_limit_s + 60,
            "unacked_restore_throttle": 1,
        }
    return settings.broker_url, {}


def make_celery(settings: Settings | None = None) -> Celery:
    settings = settings or get_settings()
    url, transport_options = broker_options(settings)
    app = Celery("facesearch", broker=url, set_as_current=False)
    app.conf.update(
        broker_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        # Postgres holds the record of every job; no result backend.
        task_ignore_result=True,
        result_backend=None,
        task_serializer="json",
        accept_content=["json"],
        # A task is acknowledged only once done, and comes back if its worker dies.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_time_limit=settings.task_time_limit_s,
        task_soft_time_limit=settings.task_time_limit_s - 5,
        # Each queue with its own exchange and key: left implicit, all bind to the default
        # exchange and key, and an index task would reach the other queues too.
        task_queues=[
            Queue(name, Exchange(name, type="direct"), routing_key=name)
            for name in (*QUEUES, LEGACY_PIPELINE_QUEUE)
        ],
        # Every task is routed explicitly (ROUTES); anything else goes where a worker with
        # the model will take it.
        task_default_queue=INGEST_QUEUE,
        task_default_exchange=INGEST_QUEUE,
        task_default_routing_key=INGEST_QUEUE,
        task_routes=ROUTES,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
    )
    return app


def queue_deliveries(celery: Celery, delivery_ids: Sequence[str]) -> None:
    """Send the first attempt of each delivery, after the commit that created them. A broker
    that is down leaves them pending for ``resend_due``; it never fails the job, whose result
    is already committed."""
    for delivery_id in delivery_ids:
        try:
            celery.send_task(
                DELIVER_WEBHOOK_TASK, kwargs={"delivery_id": delivery_id, "attempt": 1}
            )
        except Exception:  # kombu raises several types for "broker unreachable"
            log.exception("webhook: could not queue a delivery", delivery_id=delivery_id)
