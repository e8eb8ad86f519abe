"""Tests for core.index on every backend: embedded milvus-lite in a temporary folder, a
``milvus-lite server`` on loopback, and (in a run of their own, inside a network namespace)
a real Milvus standalone server: ``test_index_tests_on_a_real_milvus_server``."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from core.index import Hit, VectorIndex, VectorIndexError
from tests.conftest import REAL_MILVUS_ENV

REPO = Path(__file__).resolve().parents[1]
MODEL = "facenet-20170512-110547"
DIM = 32


def _unit(rows: int, dim: int = DIM, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    m = rng.standard_normal((rows, dim)).astype(np.float32)
    return m / np.linalg.norm(m, axis=1, keepdims=True)


@pytest.fixture(params=["HNSW", "FLAT"])
def index(request: pytest.FixtureRequest, milvus_uri: str) -> Iterator[VectorIndex]:
    ix = VectorIndex(milvus_uri, index_type=request.param)
    try:
        yield ix
    finally:
        ix.close()


def _fill(ix: VectorIndex, rows: int = 300, seed: int = 0) -> np.ndarray:
    vectors = _unit(rows, seed=seed)
    ix.upsert(
        MODEL,
        face_ids=list(range(1, rows + 1)),
        vectors=vectors,
        image_ids=[1000 + i // 3 for i in range(rows)],
        gallery_ids=[1] * rows,
    )
    return vectors


def test_collection_name() -> None:
    assert VectorIndex.collection_name("facenet_512") == "faces_facenet_512_live"
    assert VectorIndex.building_name("facenet_512") == "faces_facenet_512_next"
    name = VectorIndex.collection_name("facenet-20170512-110547")
    assert name.startswith("faces_facenet_20170512_110547_")
    assert all(c.isalnum() or c == "_" for c in name)
    # Names that sanitise alike stay apart, so two models never share a collection.
    assert VectorIndex.collection_name("a-b") != VectorIndex.collection_name("a.b")
    assert VectorIndex.collection_name("a-b") != VectorIndex.collection_name("a_b")
    assert len(VectorIndex.collection_name("m" * 400)) <= 255
    with pytest.raises(ValueError, match="empty"):
        VectorIndex.collection_name("")


def test_ensure_collection_is_idempotent_and_checks_dim(index: VectorIndex) -> None:
    index.ensure_collection(MODEL, DIM)
    index.ensure_collection(MODEL, DIM)
    assert index.count(MODEL) == 0
    with pytest.raises(VectorIndexError, match="32-d vectors, not 64-d"):
        index.ensure_collection(MODEL, 64)
    # Also refused from a fresh client that has nothing cached.
    index.close()
    with pytest.raises(VectorIndexError, match="not 64-d"):
        index.ensure_collection(MODEL, 64)
    with pytest.raises(VectorIndexError, match="not 64-d"):
        index.upsert(MODEL, face_ids=[1], vectors=_unit(1, dim=64), image_ids=[1], gallery_ids=[1])


def test_upsert_then_search_finds_the_nearest(index: VectorIndex) -> None:
    vectors = _fill(index)
    assert index.count(MODEL) == 300
    rng = np.random.default_rng(1)
    queries = vectors[[0, 41, 299]] + 0.01 * rng.standard_normal((3, DIM)).astype(np.float32)
    results = index.search(MODEL, queries, top_k=5, gallery_id=1)
    assert len(results) == 3
    for hits, expected_id in zip(results, [1, 42, 300], strict=True):
        assert len(hits) == 5
        assert hits[0].face_id == expected_id
        assert hits[0].image_id == 1000 + (expected_id - 1) // 3
        assert hits[0].score == pytest.approx(1.0, abs=0.01)
        scores = [h.score for h in hits]
        assert scores == sorted(scores, reverse=True)
        assert all(isinstance(h, Hit) for h in hits)
    exact = index.search(MODEL, vectors[7], top_k=1, gallery_id=1)  # a 1-D vector is one query
    assert exact[0][0].face_id == 8
    assert exact[0][0].score == pytest.approx(1.0, abs=1e-5)


def test_scores_are_cosine_even_for_unnormalised_input(index: VectorIndex) -> None:
    a = np.array([[3.0, 4.0] + [0.0] * (DIM - 2)], dtype=np.float32)  # norm 5
    index.upsert(MODEL, face_ids=[1], vectors=a, image_ids=[1], gallery_ids=[1])
    q = np.array([[4.0, 3.0] + [0.0] * (DIM - 2)], dtype=np.float32)
    hit = index.search(MODEL, q * 10, top_k=1, gallery_id=1)[0][0]
    assert hit.score == pytest.approx(24 / 25, abs=1e-5)


def test_upsert_twice_keeps_count_and_replaces(index: VectorIndex) -> None:
    vectors = _fill(index, rows=50)
    _fill(index, rows=50)
    assert index.count(MODEL) == 50
    # Re-upserting face 1 with face 2's vector moves it; duplicates in one call: last wins.
    index.upsert(
        MODEL,
        face_ids=[1, 1],
        vectors=np.stack([vectors[3], vectors[1]]),
        image_ids=[7, 9],
        gallery_ids=[1, 1],
    )
    assert index.count(MODEL) == 50
    hits = index.search(MODEL, vectors[1], top_k=2, gallery_id=1)[0]
    assert {h.face_id for h in hits} == {1, 2}
    assert {h.image_id for h in hits if h.face_id == 1} == {9}


def test_delete(index: VectorIndex) -> None:
    vectors = _fill(index, rows=20)
    index.delete(MODEL, [1, 2, 999_999])  # a missing id is fine
    assert index.count(MODEL) == 18
    hits = index.search(MODEL, vectors[0], top_k=20, gallery_id=1)[0]
    assert len(hits) == 18
    assert {1, 2}.isdisjoint(h.face_id for h in hits)
    index.delete(MODEL, [])
    index.delete("never-indexed", [1, 2])  # a missing collection is fine


def test_missing_or_empty_collection_searches_empty(index: VectorIndex) -> None:
    q = _unit(2)
    assert index.search("never-indexed", q, top_k=5, gallery_id=1) == [[], []]
    assert index.count("never-indexed") == 0
    index.ensure_collection(MODEL, DIM)
    assert index.search(MODEL, q, top_k=5, gallery_id=1) == [[], []]
    assert index.search(MODEL, np.zeros((0, DIM), dtype=np.float32), top_k=5, gallery_id=1) == []


def test_top_k_bigger_than_collection(index: VectorIndex) -> None:
    _fill(index, rows=7)
    results = index.search(MODEL, _unit(2, seed=5), top_k=100, gallery_id=1)
    assert [len(hits) for hits in results] == [7, 7]
    assert len({h.face_id for h in results[0]}) == 7


def test_models_never_share_a_collection(index: VectorIndex) -> None:
    _fill(index, rows=10)
    other = _unit(3, dim=16, seed=9)
    index.upsert(
        "other-model", face_ids=[1, 2, 3], vectors=other, image_ids=[1] * 3, gallery_ids=[1] * 3
    )
    assert index.count(MODEL) == 10
    assert index.count("other-model") == 3
    index.drop("other-model")
    assert index.count("other-model") == 0
    assert index.count(MODEL) == 10
    index.drop("other-model")  # dropping a missing collection is fine


def test_bad_input_is_refused(index: VectorIndex) -> None:
    with pytest.raises(ValueError, match="same length"):
        index.upsert(MODEL, face_ids=[1, 2], vectors=_unit(2), image_ids=[1], gallery_ids=[1, 1])
    with pytest.raises(ValueError, match="3 vectors for 2 ids"):
        index.upsert(MODEL, face_ids=[1, 2], vectors=_unit(3), image_ids=[1, 1], gallery_ids=[1, 1])
    with pytest.raises(ValueError, match="zero vector"):
        index.upsert(
            MODEL, face_ids=[1], vectors=np.zeros((1, DIM)), image_ids=[1], gallery_ids=[1]
        )
    with pytest.raises(ValueError, match="NaN"):
        index.search(MODEL, np.full((1, DIM), np.nan), top_k=3, gallery_id=1)
    with pytest.raises(ValueError, match="top_k"):
        index.search(MODEL, _unit(1), top_k=0, gallery_id=1)
    # The gallery goes into a filter expression: only an integer is ever accepted.
    for bad in ("1 or id > 0", 1.0, True, None):
        with pytest.raises(TypeError, match="gallery_id must be an int"):
            index.search(MODEL, _unit(1), top_k=3, gallery_id=bad)  # type: ignore[arg-type]
    _fill(index, rows=5)
    with pytest.raises(VectorIndexError, match="16-d but collection"):
        index.search(MODEL, _unit(1, dim=16), top_k=3, gallery_id=1)
    with pytest.raises(VectorIndexError, match="not supported"):
        VectorIndex("x.db", index_type="DISKANN")


def test_close_and_reopen_keeps_data(tmp_path: Path) -> None:
    path = str(tmp_path / "milvus.db")
    first = VectorIndex(path)
    vectors = _fill(first, rows=40)
    first.close()
    first.close()  # twice is fine
    second = VectorIndex(path)
    try:
        assert second.count(MODEL) == 40
        assert second.search(MODEL, vectors[10], top_k=1, gallery_id=1)[0][0].face_id == 11
    finally:
        second.close()
    # A closed index reopens by itself on next use.
    assert first.count(MODEL) == 40
    first.close()


def test_two_clients_in_one_process_share_the_path(tmp_path: Path) -> None:
    path = str(tmp_path / "milvus.db")
    a, b = VectorIndex(path), VectorIndex(path)
    try:
        _fill(a, rows=10)
        assert b.count(MODEL) == 10
        a.close()  # b still holds the embedded server
        assert b.search(MODEL, _unit(1), top_k=3, gallery_id=1)[0]
    finally:
        a.close()
        b.close()


_CHILD = textwrap.dedent(
    """
    import sys
    from core.index import VectorIndex, VectorIndexError
    try:
        VectorIndex(sys.argv[1]).check()
    except VectorIndexError as exc:
        print("LOCKED:", exc)
        sys.exit(3)
    print("OPENED")
    """
)


def _open_in_child(path: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-c", _CHILD, path],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=60,
        check=False,
    )


def test_second_process_gets_a_clear_error(tmp_path: Path) -> None:
    path = str(tmp_path / "milvus.db")
    holder = VectorIndex(path)
    try:
        holder.check()
        child = _open_in_child(path)
        assert child.returncode == 3, child.stdout + child.stderr
        assert "another process" in child.stdout
        assert "milvus-lite server" in child.stdout  # it says what to do instead
        assert "Traceback" not in child.stderr  # no milvus-lite noise on the way
    finally:
        holder.close()
    # Once closed, the lock is released and another process may open it.
    child = _open_in_child(path)
    assert child.returncode == 0, child.stdout + child.stderr
    assert "OPENED" in child.stdout


def test_unreachable_server_is_readable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ix = VectorIndex(f"http://someone:hunter2@127.0.0.1:{port}", connect_timeout=1)
    with pytest.raises(VectorIndexError) as info:
        ix.check()
    assert f"127.0.0.1:{port}" in str(info.value)
    assert "hunter2" not in str(info.value)
    assert "hunter2" not in repr(ix)


def test_existing_index_type_wins_over_configuration(tmp_path: Path) -> None:
    path = str(tmp_path / "milvus.db")
    with VectorIndex(path, index_type="HNSW") as hnsw:
        vectors = _fill(hnsw, rows=150)
    # Opened later with another configured type: searches follow the index it really has
    # (HNSW needs ef >= top_k), and a warning says how to change it.
    with VectorIndex(path, index_type="FLAT") as flat:
        hits = flat.search(MODEL, vectors[3], top_k=150, gallery_id=1)[0]
        assert hits[0].face_id == 4
        assert len(hits) >= 140


# --- a real Milvus server ------------------------------------------------------------------

REAL_SERVER_MODULES = ["tests/test_index.py", "tests/test_isolation.py", "tests/test_reindex.py"]


def test_index_tests_on_a_real_milvus_server(tmp_path: Path) -> None:
    """The index tests (this module, isolation, the no-downtime rebuild) run again on a real
    Milvus standalone server (PyPI ``milvus==2.3.5``), started once for all of them inside a
    network namespace of its own; the tests run in a pytest inside it too (the server
    listens on every interface, so nothing outside the namespace may reach it)."""
    pytest.importorskip("milvus", reason="the real server is PyPI milvus==2.3.5 (dev extra)")
    from tests.milvus_server import POSTGRES_SOCKET_ENV, MilvusNetns, NetnsUnavailable

    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(MilvusNetns(tmp_path / "milvus"))
        except NetnsUnavailable as exc:
            pytest.skip(f"no network namespace for the real Milvus server here: {exc}")
        env = {**os.environ, **POSTGRES_SOCKET_ENV, REAL_MILVUS_ENV: server.uri}
        env["PYTHONPATH"] = str(REPO)
        run = server.run(
            [
                *(sys.executable, "-m", "pytest", *REAL_SERVER_MODULES, "-k", "realserver"),
                *("-m", "not slow", "-q", "-p", "no:cacheprovider"),
            ],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-6000:]
    assert " passed" in output, output[-2000:]  # tests ran (none collected is exit code 5)
