"""The index writer's figures: upserts (faces/s, 512-d, batches of 2,000), a delete batch,
and a no-downtime reindex from Postgres, through ``core.index.VectorIndex``.

Per backend: embedded milvus-lite (flushed after each write) and a real Milvus standalone
server (PyPI ``milvus==2.3.5``, no flush), the latter started in a network namespace of its
own by ``tests.milvus_server``, with this script run again inside it. Postgres is a scratch
database (made by the migrations, dropped at the end).

    .venv/bin/python scripts/bench_index_writer.py [--faces 20000] [--reindex-faces 50000]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DIM = 512
BATCH = 2000
MODEL = "bench-writer"


def unit(rows: int, seed: int) -> np.ndarray:
    m = np.random.default_rng(seed).standard_normal((rows, DIM)).astype(np.float32)
    return m / np.linalg.norm(m, axis=1, keepdims=True)


def writer(uri: str, faces: int) -> dict[str, Any]:
    from core.index import VectorIndex  # noqa: PLC0415

    vectors = unit(faces, 0)
    with VectorIndex(uri, index_type="HNSW") as index:
        index.drop(MODEL)
        index.ensure_collection(MODEL, DIM)
        started = time.perf_counter()
        for start in range(0, faces, BATCH):
            ids = list(range(start + 1, min(start + BATCH, faces) + 1))
            index.upsert(
                MODEL,
                face_ids=ids,
                vectors=vectors[start : start + len(ids)],
                image_ids=ids,
                gallery_ids=[1 + i % 5 for i in ids],
            )
        upsert_s = time.perf_counter() - started
        started = time.perf_counter()
        index.delete(MODEL, list(range(1, BATCH + 1)))
        delete_s = time.perf_counter() - started
        count = index.count(MODEL)
        index.drop(MODEL)
    return {
        "faces": faces,
        "upsert_faces_per_s": round(faces / upsert_s),
        "delete_2000_s": round(delete_s, 3),
        "count_after_delete": count,
    }


def reindex(uri: str, faces: int) -> dict[str, Any]:
    """``faces`` faces in a scratch database, indexed, then rebuilt by run_reindex."""
    from sqlalchemy import insert  # noqa: PLC0415

    from core.index import VectorIndex  # noqa: PLC0415
    from models import DEFAULT_GALLERY_ID, Face, Image, Job, JobKind  # noqa: PLC0415
    from models.db import make_engine, make_session_factory, session_scope  # noqa: PLC0415
    from tests.conftest import create_database, drop_database, migrate  # noqa: PLC0415
    from workers.indexing import index_pending, run_reindex  # noqa: PLC0415

    url = create_database()
    engine = make_engine(url)
    try:
        migrate(url)
        sessions = make_session_factory(engine)
        vectors = unit(faces, 1)
        per_image = 10
        with engine.begin() as conn:
            images = conn.execute(
                insert(Image).returning(Image.id),
                [
                    {
                        "gallery_id": DEFAULT_GALLERY_ID,
                        "sha256": uuid.uuid4().hex * 2,
                        "object_key": f"objects/{i}",
                        "content_type": "image/jpeg",
                        "size_bytes": 1,
                        "width": 1,
                        "height": 1,
                        "filename": "a.jpg",
                    }
                    for i in range(faces // per_image)
                ],
            ).scalars()
            image_ids = list(images)
            conn.execute(
                insert(Face),
                [
                    {
                        "image_id": image_ids[i // per_image],
                        "face_index": i % per_image,
                        "model_name": MODEL,
                        "dim": DIM,
                        "embedding": vectors[i].astype("<f4").tobytes(),
                        "box_x": 0,
                        "box_y": 0,
                        "box_w": 1,
                        "box_h": 1,
                        "confidence": 0.99,
                        "landmarks": {},
                    }
                    for i in range(faces)
                ],
            )
        with VectorIndex(uri, index_type="HNSW") as index:
            index.drop(MODEL)
            index_pending(MODEL, sessions=sessions, index=index, batch_size=BATCH)
            with session_scope(sessions) as session:
                job = Job(kind=JobKind.REINDEX)
                session.add(job)
                session.flush()
                job_id = job.id
            runs = 0

            def again() -> None:
                nonlocal runs
                runs += 1

            started = time.perf_counter()
            before = runs - 1
            while runs != before:  # each run's budget, then its continuation (as the task)
                before = runs
                run_reindex(
                    job_id,
                    sessions=sessions,
                    index=index,
                    batch_size=BATCH,
                    budget_s=30.0,
                    continue_later=again,
                )
            seconds = time.perf_counter() - started
            count = index.count(MODEL)
            index.drop(MODEL)
        return {
            "faces": faces,
            "reindex_s": round(seconds, 1),
            "runs": runs + 1,
            "count": count,
        }
    finally:
        engine.dispose()
        drop_database(url)


def measure(uri: str, faces: int, reindex_faces: int) -> dict[str, Any]:
    return {"writer": writer(uri, faces), "reindex": reindex(uri, reindex_faces)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faces", type=int, default=20000)
    parser.add_argument("--reindex-faces", type=int, default=50000)
    parser.add_argument("--uri", help=argparse.SUPPRESS)  # the run inside the namespace
    args = parser.parse_args()
    if args.uri:
        print(json.dumps(measure(args.uri, args.faces, args.reindex_faces)))
        return
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        results["milvus-lite (embedded)"] = measure(
            str(Path(tmp) / "milvus.db"), args.faces, args.reindex_faces
        )
        from tests.milvus_server import (  # noqa: PLC0415  (only the outer run needs it)
            POSTGRES_SOCKET_ENV,
            MilvusNetns,
            NetnsUnavailable,
        )

        try:
            with MilvusNetns(Path(tmp) / "server") as milvus:
                run = milvus.run(
                    [
                        *(sys.executable, __file__, "--uri", milvus.uri),
                        *("--faces", str(args.faces), "--reindex-faces", str(args.reindex_faces)),
                    ],
                    env={**os.environ, **POSTGRES_SOCKET_ENV},
                    capture_output=True,
                    text=True,
                )
            if run.returncode != 0:
                raise SystemExit(run.stdout[-3000:] + run.stderr[-3000:])
            results["Milvus 2.3.5 server"] = json.loads(run.stdout.strip().splitlines()[-1])
        except NetnsUnavailable as exc:
            results["Milvus 2.3.5 server"] = {"skipped": str(exc)}
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
