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

# Two queues: the pipeline (detection, embedding, search: any number of workers, GPU or CPU)
# and the index writer (exactly one consumer, because Milvus lost rows under concurrent
# writers in our measurements, FACTS.md).
PIPELINE_QUEUE = "pipeline"
INDEX_QUEUE = "index"

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
# Webhook deliveries share the pipeline queue: they are short (bounded by timeouts) and
# need no model, so any worker can send them.
DELIVER_WEBHOOK_TASK = "facesearch.deliver_webhook"

ROUTES = {
    INGEST_TASK: {"queue": PIPELINE_QUEUE, "routing_key": PIPELINE_QUEUE},
    SEARCH_TASK: {"queue": PIPELINE_QUEUE, "routing_key": PIPELINE_QUEUE},
    INDEX_TASK: {"queue": INDEX_QUEUE, "routing_key": INDEX_QUEUE},
    DELETE_VECTORS_TASK: {"queue": INDEX_QUEUE, "routing_key": INDEX_QUEUE},
    REINDEX_TASK: {"queue": INDEX_QUEUE, "routing_key": INDEX_QUEUE},
    ARCHIVE_TASK: {"queue": PIPELINE_QUEUE, "routing_key": PIPELINE_QUEUE},
    DELIVER_WEBHOOK_TASK: {"queue": PIPELINE_QUEUE, "routing_key": PIPELINE_QUEUE},
    ERASE_GALLERY_TASK: {"queue": PIPELINE_QUEUE, "routing_key": PIPELINE_QUEUE},
    PURGE_SEARCHES_TASK: {"queue": PIPELINE_QUEUE, "routing_key": PIPELINE_QUEUE},
}


def broker_options(settings: Settings) -> tuple[str, dict[str, Any]]:
    """The broker URL Celery sees and its transport options."""
    if settings.filesystem_broker:
        folder = settings.broker_folder
        (folder / "queue").mkdir(parents=True, exist_ok=True)
        (folder / "processed").mkdir(parents=True, exist_ok=True)
        return "filesystem://", {
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
        # Each queue with its own exchange and key: left implicit, both bind to the default
        # exchange and key, and an index task would reach the pipeline queue too.
        task_queues=[
            Queue(name, Exchange(name, type="direct"), routing_key=name)
            for name in (PIPELINE_QUEUE, INDEX_QUEUE)
        ],
        task_default_queue=PIPELINE_QUEUE,
        task_default_exchange=PIPELINE_QUEUE,
        task_default_routing_key=PIPELINE_QUEUE,
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
