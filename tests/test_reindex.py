"""A rebuild of the index with no downtime: searches between every continuation run of a
reindex job get full, correct answers, while faces are added and erased meanwhile; then the
alias moves to the new collection and the old one is gone.

On each backend of ``milvus_uri`` (embedded milvus-lite, a ``milvus-lite server``, and the
real Milvus server of tests/test_index.py's namespaced run), with real Postgres rows.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from core.index import VectorIndex
from core.queue import REINDEX_TASK
from models import DEFAULT_GALLERY_ID, Face, Image, Job, JobKind, JobStatus, utcnow
from services.galleries import create_gallery
from tests.conftest import face_row, image_row
from workers.indexing import delete_vectors, index_pending, run_reindex
from workers.reconcile import reconcile

MODEL = "reindex-model"
DIM = 32
TOP_K = 10
BATCH = 25


@pytest.fixture
def index(milvus_uri: str) -> Iterator[VectorIndex]:
    with VectorIndex(milvus_uri, index_type="FLAT") as ix:  # exact: answers can be compared
        yield ix


class Gallery:
    """Faces in Postgres (the record), added and erased as the product does."""

    def __init__(self, sessions: sessionmaker[Session], seed: int = 0) -> None:
        self.sessions = sessions
        self.rng = np.random.default_rng(seed)
        with sessions() as session:
            self.ids = [
                DEFAULT_GALLERY_ID,
                create_gallery(session, "second").id,
                create_gallery(session, "third").id,
            ]
            session.commit()

    def add(self, gallery_id: int, faces: int) -> list[int]:
        """An image with ``faces`` new faces in ``gallery_id``; their ids."""
        vectors = self.rng.standard_normal((faces, DIM)).astype("<f4")
        with self.sessions() as session:
            image = image_row(
                sha256=uuid.uuid4().hex * 2,
                object_key=f"objects/{uuid.uuid4().hex}",
                gallery_id=gallery_id,
            )
            session.add(image)
            session.flush()
            rows = [
                face_row(
                    image_id=image.id, face_index=i, model_name=MODEL, embedding=vector.tobytes()
                )
                for i, vector in enumerate(vectors)
            ]
            session.add_all(rows)
            session.commit()
            return [row.id for row in rows]

    def add_with_ids(self, gallery_id: int, face_ids: list[int]) -> list[int]:
        """New faces with the given (free) ids, in one new image: an ingest that took its ids
        before others and commits after them."""
        image_id = self.add(gallery_id, 1)
        with self.sessions() as session:
            image = session.get_one(Face, image_id[0]).image_id
            session.execute(delete(Face).where(Face.id == image_id[0]))
            vectors = self.rng.standard_normal((len(face_ids), DIM)).astype("<f4")
            session.add_all(
                Face(
                    id=face_id,
                    image_id=image,
                    face_index=i,
                    model_name=MODEL,
                    dim=DIM,
                    embedding=vector.tobytes(),
                    box_x=0,
                    box_y=0,
                    box_w=1,
                    box_h=1,
                    confidence=0.99,
                    landmarks={},
                )
                for i, (face_id, vector) in enumerate(zip(face_ids, vectors, strict=True))
            )
            session.commit()
        return face_ids

    def vector(self, face_id: int) -> np.ndarray:
        with self.sessions() as session:
            return np.frombuffer(session.get_one(Face, face_id).embedding, dtype="<f4")

    def erase(self, index: VectorIndex, face_ids: list[int]) -> None:
        """Rows first, then the vectors (what an erasure and the writer's task do)."""
        with self.sessions() as session:
            session.execute(delete(Face).where(Face.id.in_(face_ids)))
            session.commit()
        delete_vectors(MODEL, face_ids, index=index, sessions=self.sessions)

    def faces(self, gallery_id: int) -> tuple[np.ndarray, np.ndarray]:
        """The gallery's face ids and unit vectors, from Postgres."""
        with self.sessions() as session:
            rows = session.execute(
                select(Face.id, Face.embedding)
                .join(Image, Face.image_id == Image.id)
                .where(Image.gallery_id == gallery_id, Face.model_name == MODEL)
                .order_by(Face.id)
            ).all()
        ids = np.array([row.id for row in rows], dtype=np.int64)
        vectors = np.array(
            [np.frombuffer(row.embedding, dtype="<f4") for row in rows], dtype=np.float32
        ).reshape(-1, DIM)
        return ids, vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    def total(self) -> int:
        with self.sessions() as session:
            return len(session.scalars(select(Face.id).where(Face.model_name == MODEL)).all())


def check_searches(index: VectorIndex, gallery: Gallery) -> None:
    """Every gallery's answers are full and exactly right: what Postgres holds now."""
    queries = gallery.rng.standard_normal((3, DIM)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    for gallery_id in gallery.ids:
        ids, vectors = gallery.faces(gallery_id)
        results = index.search(MODEL, queries, TOP_K, gallery_id=gallery_id)
        for query, hits in zip(queries, results, strict=True):
            scores = vectors @ query
            expected = ids[np.lexsort((ids, -scores))[:TOP_K]].tolist()
            assert [h.face_id for h in hits] == expected, gallery_id


def new_job(sessions: sessionmaker[Session]) -> str:
    with sessions() as session:
        job = Job(kind=JobKind.REINDEX)
        session.add(job)
        session.commit()
        return job.id


def job_of(sessions: sessionmaker[Session], job_id: str) -> Job:
    with sessions() as session:
        return session.get_one(Job, job_id)


def test_searches_stay_full_and_correct_through_a_rebuild(
    sessions: sessionmaker[Session], index: VectorIndex
) -> None:
    gallery = Gallery(sessions)
    for gallery_id, images in zip(gallery.ids, (12, 8, 3), strict=True):
        for _ in range(images):
            gallery.add(gallery_id, 5)
    index_pending(MODEL, sessions=sessions, index=index, batch_size=100)
    old = index.live_collection(MODEL)
    assert old is not None
    check_searches(index, gallery)

    job_id = new_job(sessions)
    continuations: list[str] = []
    runs = 0
    while job_of(sessions, job_id).status != JobStatus.SUCCEEDED:
        runs += 1
        assert runs < 50, "the rebuild does not end"
        # budget 0: each run copies one page, then sends its continuation.
        run_reindex(
            job_id,
            sessions=sessions,
            index=index,
            batch_size=BATCH,
            budget_s=0.0,
            continue_later=lambda: continuations.append(job_id),
        )
        check_searches(index, gallery)  # from the old collection until the switch, then the new
        if runs == 2:  # meanwhile: new faces (indexed into both), and erasures (from both)
            added = gallery.add(gallery.ids[1], 4)
            index_pending(MODEL, sessions=sessions, index=index, batch_size=100)
            gallery.erase(index, [*added[:1], *gallery.faces(gallery.ids[0])[0][:3].tolist()])
            building = index.building_name(MODEL)
            assert index._connect().has_collection(building)  # a rebuild is filling it
            check_searches(index, gallery)
        if runs == 4:
            gallery.erase(index, gallery.faces(gallery.ids[2])[0][-2:].tolist())
            check_searches(index, gallery)

    assert len(continuations) == runs - 1  # every run but the last sent one
    job = job_of(sessions, job_id)
    assert job.result == {"faces_indexed": {MODEL: gallery.total()}}
    assert job.done == job.total == gallery.total()
    new = index.live_collection(MODEL)
    assert new is not None
    assert new != old
    client = index._connect()
    assert old not in client.list_collections()  # the old collection is dropped
    assert not client.has_collection(index.building_name(MODEL))
    assert index.count(MODEL) == gallery.total()
    check_searches(index, gallery)

    # The writer still writes the live collection (only) after the switch.
    gallery.add(gallery.ids[2], 3)
    index_pending(MODEL, sessions=sessions, index=index, batch_size=100)
    assert index.count(MODEL) == gallery.total()
    check_searches(index, gallery)


def test_a_collection_made_before_aliases_is_rebuilt_behind_one(
    sessions: sessionmaker[Session], index: VectorIndex
) -> None:
    """A deployment whose index is a plain ``faces_<model>`` collection: searches read it
    until the rebuild's switch, then the new collection; the old one is dropped."""
    from pymilvus import DataType

    gallery = Gallery(sessions, seed=1)
    for gallery_id in gallery.ids:
        gallery.add(gallery_id, 6)
    client = index._connect()
    legacy = VectorIndex.collection_name(MODEL).removesuffix("_live")  # faces_<model>
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("embedding", DataType.FLOAT_VECTOR, dim=DIM)
    schema.add_field("image_id", DataType.INT64)
    schema.add_field("gallery_id", DataType.INT64)
    params = client.prepare_index_params()
    params.add_index(field_name="embedding", index_type="FLAT", metric_type="IP")
    client.create_collection(legacy, schema=schema, index_params=params)
    rows: list[dict[str, Any]] = []
    for gallery_id in gallery.ids:
        ids, vectors = gallery.faces(gallery_id)
        rows += [
            {"id": int(i), "embedding": v, "image_id": 0, "gallery_id": gallery_id}
            for i, v in zip(ids, vectors, strict=True)
        ]
    client.insert(legacy, rows)
    client.flush(legacy)
    with sessions() as session:
        session.execute(update(Face).values(indexed_at=utcnow()))
        session.commit()

    check_searches(index, gallery)  # read through the alias, which now names it
    assert index.live_collection(MODEL) == legacy
    job_id = new_job(sessions)
    run_reindex(job_id, sessions=sessions, index=index, batch_size=BATCH)  # to the end
    assert job_of(sessions, job_id).status == JobStatus.SUCCEEDED
    assert index.live_collection(MODEL) == f"{legacy}_v1"
    assert legacy not in client.list_collections()
    fields = client.describe_collection(index.collection_name(MODEL))["fields"]
    assert [f["name"] for f in fields if f.get("is_partition_key")] == ["gallery_id"]
    check_searches(index, gallery)


def test_a_face_erased_while_its_page_is_copied_stays_erased(
    sessions: sessionmaker[Session], index: VectorIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rebuild reads a page, the face is erased (rows, then vectors from both
    collections), then the page is written: the rebuild asks Postgres again and removes it."""
    gallery = Gallery(sessions, seed=2)
    victims = gallery.add(gallery.ids[0], 8)
    index_pending(MODEL, sessions=sessions, index=index, batch_size=100)
    real_upsert_into = index.upsert_into

    def erase_then_write(collection: str, **rows: Any) -> None:
        if victims[0] in rows["face_ids"]:
            gallery.erase(index, victims[:2])
        real_upsert_into(collection, **rows)

    monkeypatch.setattr(index, "upsert_into", erase_then_write)
    job_id = new_job(sessions)
    run_reindex(job_id, sessions=sessions, index=index, batch_size=BATCH)
    assert index.count(MODEL) == gallery.total() == 6
    hits = index.search(MODEL, gallery.faces(gallery.ids[0])[1], TOP_K, gallery_id=gallery.ids[0])
    assert set(victims[:2]).isdisjoint(h.face_id for found in hits for h in found)
    check_searches(index, gallery)


def test_a_stranded_rebuild_is_sent_again_and_resumes(
    sessions: sessionmaker[Session], index: VectorIndex
) -> None:
    """A reindex job whose continuation was lost: the reconciler sends its task again by
    kind, and the run resumes from the cursor in the job's params."""
    gallery = Gallery(sessions, seed=3)
    for gallery_id in gallery.ids:
        gallery.add(gallery_id, 20)
    index_pending(MODEL, sessions=sessions, index=index, batch_size=100)
    job_id = new_job(sessions)
    run_reindex(
        job_id,
        sessions=sessions,
        index=index,
        batch_size=BATCH,
        budget_s=0.0,
        continue_later=lambda: None,  # the message is lost
    )
    cursor = job_of(sessions, job_id).params["rebuild"][MODEL]
    assert cursor["after"] > 0
    assert cursor["written"] == BATCH
    with sessions() as session:
        session.execute(
            update(Job).where(Job.id == job_id).values(updated_at=utcnow() - timedelta(hours=2))
        )
        session.commit()

    sent: list[tuple[str, list[Any], dict[str, Any]]] = []
    reconcile(
        sessions=sessions,
        send_task=lambda name, args, kwargs: sent.append((name, args, kwargs)),
        send_deliveries=lambda ids: None,
        stale_s=3600,
        max_requeues=3,
        batch=10,
    )
    assert (REINDEX_TASK, [], {"job_id": job_id}) in sent
    check_searches(index, gallery)
    run_reindex(job_id, sessions=sessions, index=index, batch_size=BATCH)  # the re-sent task
    job = job_of(sessions, job_id)
    assert job.status == JobStatus.SUCCEEDED
    assert job.result == {"faces_indexed": {MODEL: 60}}
    assert index.count(MODEL) == 60
    check_searches(index, gallery)


def test_the_writer_indexes_a_face_committed_behind_its_cursor(
    sessions: sessionmaker[Session], milvus_uri: str
) -> None:
    """The writer reads batches after the last id it wrote; a face whose ingest took an id
    earlier but committed while the writer was past it is still indexed in the same run."""
    gallery = Gallery(sessions)
    freed = gallery.add(gallery.ids[0], 3)  # ids taken, then freed: "an ingest in flight"
    with sessions() as session:
        session.execute(delete(Face).where(Face.id.in_(freed)))
        session.commit()
    for _ in range(6):
        gallery.add(gallery.ids[0], 5)
    late: list[int] = []

    class CommitsBehindTheCursor(VectorIndex):
        def upsert(self, model_name: str, **kwargs: Any) -> None:
            super().upsert(model_name, **kwargs)
            if not late:  # after the first batch: the cursor is past every freed id
                late.extend(gallery.add_with_ids(gallery.ids[0], freed[:2]))

    with CommitsBehindTheCursor(milvus_uri, index_type="FLAT") as index:
        written = index_pending(MODEL, sessions=sessions, index=index, batch_size=4)
        assert late == freed[:2]
        assert written == 6 * 5 + 2
        assert index.count(MODEL) == gallery.total() == 32
        with sessions() as session:
            unindexed = session.scalars(
                select(Face.id).where(Face.model_name == MODEL, Face.indexed_at.is_(None))
            ).all()
        assert unindexed == []
        hits = index.search(MODEL, gallery.vector(late[0]), 1, gallery_id=gallery.ids[0])[0]
        assert [hit.face_id for hit in hits] == [late[0]]
