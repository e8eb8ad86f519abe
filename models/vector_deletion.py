"""Vectors still to be removed from the index: an outbox, written in the transaction that
deletes their faces, so a deletion survives a broker that is down at that moment.

The index writer's delete task removes the vectors, then these rows; the reconciler sends
the task again for rows left behind. Milvus is a derived index: until then, a search drops
hits whose face row is gone, so a late deletion is never seen by a client.
"""

from __future__ import annotations

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigIntId, created_at, int_pk


class VectorDeletion(Base):
    __tablename__ = "vector_deletions"

    id: Mapped[int_pk]
    model_name: Mapped[str] = mapped_column(String(64))
    face_id: Mapped[int] = mapped_column(BigIntId)
    created_at: Mapped[created_at] = mapped_column(index=True)
