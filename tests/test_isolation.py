"""Gallery isolation: a search sees only its own gallery's faces, and a gallery with at least
``top_k`` faces always gets ``top_k`` matches, however close another gallery's faces are.

Index level on every backend the suite uses (embedded milvus-lite, a ``milvus-lite server``
over HTTP, and a real Milvus server in the namespaced run of tests/test_index.py; HNSW and
FLAT), and search level through ``workers.search.run_search``
with real faces.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
from PIL import Image as PILImage
from PIL import ImageEnhance, ImageOps
from sqlalchemy.orm import Session, sessionmaker

import core.index
from cli.lfw import LfwImage
from core.index import VectorIndex
from core.settings import Settings
from services.galleries import create_gallery
from tests.conftest import make_client, make_key
from tests.test_tasks import Harness

DIM = 32
TOP_K = 12
BIG = 2  # 5,000 vectors packed around the query
# Small galleries far from the query. milvus-lite hashes partition-key values into 16
# buckets (md5 of the value): 4 lands in the same bucket, hence the same segments, as 2 (the
# case where a filtered HNSW walk finds none of its rows); 1 lands in a bucket of its own.
SMALL_SHARED, SMALL_ALONE = 4, 1
TINY = 3  # fewer faces than top_k
BIG_ROWS, SMALL_ROWS, TINY_ROWS = 5000, 20, 5


def _unit(matrix: np.ndarray) -> np.ndarray:
    return (matrix / np.linalg.norm(matrix, axis=1, keepdims=True)).astype(np.float32)


class Galleries:
    """Face ids 1..N; each gallery's ids and vectors, and the two queries."""

    def __init__(self) -> None:
        rng = np.random.default_rng(7)
        self.query = _unit(rng.standard_normal((1, DIM)))[0]
        # A second query, near nothing in particular: two queries in one call.
        self.queries = np.stack([self.query, _unit(rng.standard_normal((1, DIM)))[0]])
        sizes = {BIG: BIG_ROWS, SMALL_SHARED: SMALL_ROWS, SMALL_ALONE: SMALL_ROWS, TINY: TINY_ROWS}
        self.ids: dict[int, np.ndarray] = {}
        self.vectors: dict[int, np.ndarray] = {}
        next_id = 1
        for gallery, rows in sizes.items():
            if gallery == BIG:  # every one of them closer to the query than any small one
                raw = self.query + 0.05 * rng.standard_normal((rows, DIM))
            else:
                raw = -self.query + 0.4 * rng.standard_normal((rows, DIM))
            self.vectors[gallery] = _unit(raw)
            self.ids[gallery] = np.arange(next_id, next_id + rows)
            next_id += rows

    def fill(self, index: VectorIndex, model: str) -> None:
        galleries = list(self.ids)
        index.upsert(
            model,
            face_ids=np.concatenate([self.ids[g] for g in galleries]).tolist(),
            vectors=np.concatenate([self.vectors[g] for g in galleries]),
            image_ids=np.concatenate([self.ids[g] + 100_000 for g in galleries]).tolist(),
            gallery_ids=[g for g in galleries for _ in self.ids[g]],
        )

    def exact(self, gallery: int, query: np.ndarray, top_k: int) -> list[int]:
        scores = self.vectors[gallery] @ query
        order = np.lexsort((self.ids[gallery], -scores))[:top_k]
        return self.ids[gallery][order].tolist()


def _build_ann_indexes(index: VectorIndex, model: str) -> None:
    """Have every segment's ANN index built before searching.

    milvus-lite builds the index of freshly flushed segments in a background thread and until
    then answers by brute force (exact, also under a filter); describe_index already says
    "Finished" meanwhile. Releasing and loading the collection builds them at once.
    """
    client = index._connect()
    name = index.collection_name(model)
    client.release_collection(name)
    client.load_collection(name)


def _check_isolation(index: VectorIndex, model: str, data: Galleries) -> None:
    for gallery in (SMALL_SHARED, SMALL_ALONE):
        results = index.search(model, data.queries, top_k=TOP_K, gallery_id=gallery)
        assert len(results) == 2
        own = set(data.ids[gallery].tolist())
        for hits in results:
            assert len(hits) == TOP_K, (gallery, hits)
            assert own.issuperset(h.face_id for h in hits)
            assert all(h.image_id == h.face_id + 100_000 for h in hits)
            scores = [h.score for h in hits]
            assert scores == sorted(scores, reverse=True)
        # For the query inside the big gallery's cluster, the right ones too: the gallery's
        # exact nearest (what answers where the approximate search found too few).
        assert [h.face_id for h in results[0]] == data.exact(gallery, data.query, TOP_K)
        assert results[0][0].score == pytest.approx(
            float((data.vectors[gallery] @ data.query).max()), abs=1e-5
        )

    big = index.search(model, data.queries, top_k=TOP_K, gallery_id=BIG)
    others = set(np.concatenate([data.ids[g] for g in data.ids if g != BIG]).tolist())
    for hits in big:
        assert len(hits) == TOP_K
        assert others.isdisjoint(h.face_id for h in hits)
        assert set(data.ids[BIG].tolist()).issuperset(h.face_id for h in hits)

    tiny = index.search(model, data.query, top_k=TOP_K, gallery_id=TINY)[0]
    assert sorted(h.face_id for h in tiny) == data.ids[TINY].tolist()  # all 5, nothing else
    assert index.search(model, data.query, top_k=TOP_K, gallery_id=99) == [[]]


@pytest.fixture(scope="module")
def data() -> Galleries:
    return Galleries()


@pytest.mark.parametrize("index_type", ["HNSW", "FLAT"])
def test_search_sees_only_its_gallery(milvus_uri: str, data: Galleries, index_type: str) -> None:
    with VectorIndex(milvus_uri, index_type=index_type) as index:
        data.fill(index, "m")
        _check_isolation(index, "m", data)  # straight after the write
        _build_ann_indexes(index, "m")
        _check_isolation(index, "m", data)  # on the built ANN index


def test_exact_scan_in_pages(
    milvus_uri: str, data: Galleries, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A gallery bigger than one page is scanned a page at a time, the best kept across pages."""
    monkeypatch.setattr(core.index, "_SCAN_PAGE", 7)  # the small galleries' 20 rows: 3 pages
    with VectorIndex(milvus_uri, index_type="HNSW") as index:
        data.fill(index, "m")
        _build_ann_indexes(index, "m")
        _check_isolation(index, "m", data)


def test_collection_without_partition_key_still_isolates(milvus_uri: str, data: Galleries) -> None:
    """A collection made before the partition key and before aliases (same fields, plain
    ``gallery_id``, named ``faces_<model>``): put behind the alias on first use, as it is."""
    from pymilvus import DataType

    with VectorIndex(milvus_uri, index_type="HNSW") as index:
        client = index._connect()
        schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("embedding", DataType.FLOAT_VECTOR, dim=DIM)
        schema.add_field("image_id", DataType.INT64)
        schema.add_field("gallery_id", DataType.INT64)
        client.create_collection("faces_m", schema=schema, consistency_level="Strong")
        data.fill(index, "m")
        assert index.live_collection("m") == "faces_m"
        fields = client.describe_collection(index.collection_name("m"))["fields"]
        assert not any(f.get("is_partition_key") for f in fields)
        _build_ann_indexes(index, "m")
        _check_isolation(index, "m", data)


def test_new_collections_partition_by_gallery(milvus_uri: str) -> None:
    with VectorIndex(milvus_uri) as index:
        index.ensure_collection("m", DIM)
        fields = index._connect().describe_collection(index.collection_name("m"))["fields"]
    assert [f["name"] for f in fields if f.get("is_partition_key")] == ["gallery_id"]


# --- search level: the real face pipeline on LFW faces ------------------------------------


def _variants(image: LfwImage) -> list[tuple[bytes, str]]:
    """The photo and a few edits of it (other bytes, the same face)."""
    original = PILImage.open(io.BytesIO(image.data)).convert("RGB")
    width, height = original.size
    edits = {
        "mirror": ImageOps.mirror(original),
        "crop": original.crop((8, 8, width - 8, height - 8)).resize((width, height)),
        "bright": ImageEnhance.Brightness(original).enhance(1.25),
        "dark": ImageEnhance.Brightness(original).enhance(0.8),
        "tilt": original.rotate(6, fillcolor=(0, 0, 0)),
    }
    out = [(image.data, image.name)]
    for name, edited in edits.items():
        buffer = io.BytesIO()
        edited.save(buffer, format="JPEG", quality=92)
        out.append((buffer.getvalue(), f"{name}-{image.name}"))
    return out


@pytest.mark.slow
def test_small_gallery_search_is_full_next_to_a_closer_big_gallery(
    settings: Settings,
    sessions: sessionmaker[Session],
    face_pipeline: Any,
    lfw_faces: dict[str, list[LfwImage]],
) -> None:
    top_k = 8
    with sessions() as session:
        big, small = create_gallery(session, "big"), create_gallery(session, "small")
        session.commit()
        big_id, small_id = big.id, small.id
    albert = lfw_faces["Albert_Costa"]
    others = [(label, images) for label, images in lfw_faces.items() if label != "Albert_Costa"]

    with VectorIndex(settings.milvus_uri, index_type="FLAT") as index:
        harness = Harness(settings, sessions, face_pipeline, index)
        clients = {
            g: make_client(settings, sessions, key=make_key(sessions, gallery_id=g))
            for g in (big_id, small_id)
        }
        # Big gallery: the query person's other photos, each with a few edits (30 faces, all
        # closer to the query than anyone else's).
        harness.client = clients[big_id]
        big_files = [f for image in albert[1:] for f in _variants(image)]
        big_job = harness.job(harness.ingest(big_files, label="Albert_Costa"))
        assert big_job["status"] == "succeeded", big_job
        # Small gallery: 12 photos of three other people.
        harness.client = clients[small_id]
        small_images: set[int] = set()
        for label, images in others:
            job = harness.job(harness.ingest([(i.data, i.name) for i in images], label=label))
            assert job["status"] == "succeeded", job
            small_images.update(job["result"]["image_ids"])
        assert len(small_images) >= top_k

        result = harness.search(albert[0].data, top_k=top_k)
        assert result["status"] == "succeeded", result
        for face in result["faces"]:
            matches = face["matches"]
            assert len(matches) == top_k, matches
            assert {m["image_id"] for m in matches} <= small_images
            assert "Albert_Costa" not in {m["label"] for m in matches}

        # And the big gallery's own search sees only its faces, the query person first.
        harness.client = clients[big_id]
        result = harness.search(albert[0].data, top_k=top_k)
        face = max(result["faces"], key=lambda f: f["box"]["width"] * f["box"]["height"])
        assert [m["label"] for m in face["matches"]] == ["Albert_Costa"] * top_k
        assert small_images.isdisjoint(m["image_id"] for m in face["matches"])
