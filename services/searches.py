"""Searches: a query photo becomes a search job of one gallery."""

from __future__ import annotations

from sqlalchemy.orm import Session

from core.storage import ObjectStore, content_key
from core.webhook_signing import new_secret
from models import Job, JobKind, Search, SearchCallback
from services.content import lock_objects
from services.images import UploadedFile, store_file


def create_search(
    session: Session,
    *,
    gallery_id: int,
    store: ObjectStore,
    query: UploadedFile,
    top_k: int,
    callback_url: str | None,
    idempotency_key: str | None,
    min_probability: float | None = None,
) -> tuple[Search, SearchCallback | None]:
    """A queued search of ``gallery_id`` with its job, and its callback (with the secret that
    signs the callback's delivery) if a URL was given. The query's bytes are stored
    content-addressed; the query never joins the gallery. ``min_probability`` (matches below
    it are dropped) is kept in the job's params, where the worker and every rendering read it.
    Flushed, not committed."""
    assert query.info is not None
    # Stored and recorded under the object's lock: an erasure deleting the same bytes now
    # either finishes first (and they are stored again) or sees this search's row.
    lock_objects(session, [content_key(query.sha256)])
    job = Job(
        kind=JobKind.SEARCH,
        gallery_id=gallery_id,
        idempotency_key=idempotency_key,
        total=1,
        params={"min_probability": min_probability} if min_probability is not None else {},
    )
    search = Search(
        job=job,
        gallery_id=gallery_id,
        top_k=top_k,
        query_sha256=query.sha256,
        query_object_key=store_file(store, query),
        query_content_type=query.info.content_type,
        query_width=query.info.width,
        query_height=query.info.height,
        query_size_bytes=len(query.data),
    )
    session.add_all([job, search])
    session.flush()
    callback = None
    if callback_url:
        callback = SearchCallback(search_id=search.id, url=callback_url, secret=new_secret())
        session.add(callback)
        session.flush()
    return search, callback
