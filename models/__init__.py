"""The persistence layer: SQLAlchemy 2 typed models and the queries on them.

Importing this package registers every table on ``Base.metadata`` (Alembic reads it).
"""

from models.base import Base, utcnow
from models.face import Face, vector_to_bytes
from models.gallery import DEFAULT_GALLERY_ID, DEFAULT_GALLERY_NAME, Gallery
from models.image import Image, ImageStatus
from models.job import (
    FINISHED_STATUSES,
    ItemStatus,
    Job,
    JobItem,
    JobKind,
    JobStatus,
    refresh_progress,
)
from models.search import Search, SearchFace, SearchMatch

__all__ = [
    "DEFAULT_GALLERY_ID",
    "DEFAULT_GALLERY_NAME",
    "FINISHED_STATUSES",
    "Base",
    "Face",
    "Gallery",
    "Image",
    "ImageStatus",
    "ItemStatus",
    "Job",
    "JobItem",
    "JobKind",
    "JobStatus",
    "Search",
    "SearchFace",
    "SearchMatch",
    "refresh_progress",
    "utcnow",
    "vector_to_bytes",
]
