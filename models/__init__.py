"""The persistence layer: SQLAlchemy 2 typed models and the queries on them.

Importing this package registers every table on ``Base.metadata`` (Alembic reads it).
"""

from models.api_key import ApiKey, Scope
from models.base import Base, utcnow
from models.embedding import ServedVersion, served_version, version_name
from models.face import Face, vector_to_bytes
from models.gallery import DEFAULT_GALLERY_ID, DEFAULT_GALLERY_NAME, Gallery
from models.image import MAX_LABEL, Image, ImageStatus
from models.job import (
    FINISHED_STATUSES,
    ItemStatus,
    Job,
    JobItem,
    JobKind,
    JobStatus,
    refresh_progress,
    skip_pending_items,
)
from models.search import Search, SearchFace, SearchMatch
from models.vector_deletion import VectorDeletion
from models.webhook import (
    DeliveryAttempt,
    DeliveryStatus,
    EventType,
    SearchCallback,
    WebhookDelivery,
    WebhookEvent,
    WebhookSubscription,
)

__all__ = [
    "DEFAULT_GALLERY_ID",
    "DEFAULT_GALLERY_NAME",
    "FINISHED_STATUSES",
    "MAX_LABEL",
    "ApiKey",
    "Base",
    "DeliveryAttempt",
    "DeliveryStatus",
    "EventType",
    "Face",
    "Gallery",
    "Image",
    "ImageStatus",
    "ItemStatus",
    "Job",
    "JobItem",
    "JobKind",
    "JobStatus",
    "Scope",
    "Search",
    "SearchCallback",
    "SearchFace",
    "SearchMatch",
    "ServedVersion",
    "VectorDeletion",
    "WebhookDelivery",
    "WebhookEvent",
    "WebhookSubscription",
    "refresh_progress",
    "served_version",
    "skip_pending_items",
    "utcnow",
    "vector_to_bytes",
    "version_name",
]
