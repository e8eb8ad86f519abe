"""The million-face benchmark: the index writer, reindex and index-call searches at scale.

A gallery of N faces (default 1,000,000) is made of LFW's real embeddings (every face the
product's pipeline finds in LFW; cached under ~/.cache/facesearch/scale/) and synthetic faces
drawn to match their distribution (``scale_vectors``: identities from a Gaussian fitted to
LFW's identity means, faces around them from the pooled within-identity covariance; the
nearest-neighbour and random-pair cosines of real and synthetic sets are compared and
printed). A second gallery of ``--small-gallery`` faces shares the collection: a small tenant
in a big index.

Postgres: a scratch database (``facesearch_scale_<pid>``, made by the migrations, dropped at
the end) gets an ``images`` and a ``faces`` row per face by COPY, and a history of finished
searches. Then, per backend, in a process of its own (so its memory is its own):

- writer: the product's index writer (``workers.indexing.index_pending``, which reads the
  faces not yet indexed from Postgres, upserts them through ``VectorIndex`` and marks them),
  with the batch size and index settings from the product's settings; faces/s;
- settle: what it takes until every row is served by the index (milvus-lite builds segment
  indexes in the background and at load; a Milvus server after sealing);
- search: single queries through ``VectorIndex.search`` with the gallery filter, top_k 10 and
  100: p50 / p99 / mean, and recall@k against exact search (numpy, over the same vectors);
  the queries are new faces of people in the gallery (another photo of a known person);
- reindex: the product's reindex path (``workers.indexing.run_reindex``), wall time;
- memory: peak and final RSS of the benchmark process and of the Milvus server process;
- Postgres: on the first backend, a real search (the product's pipeline on an LFW photo,
  ``workers.search.run_search``) and the reading of its result (``render_search``, what
  ``GET /v1/searches/{id}`` does) are recorded statement by statement, and each statement's
  ``EXPLAIN (ANALYZE, BUFFERS)`` at full size is reported; so is the writer's SQL time.

Backends: ``lite`` (milvus-lite embedded, in-process), ``lite-server`` (``milvus-lite server``
on loopback), ``milvus`` (the real Milvus standalone server, PyPI ``milvus==2.3.5``, run in a
network namespace of its own by ``tests.milvus_server``; the backend's process runs inside
that namespace and reaches Postgres by its unix socket).

    .venv/bin/python scripts/bench_index_scale.py --faces 50000 --backends lite
    .venv/bin/python scripts/bench_index_scale.py --out docs/scale.json --report docs/scale.md

Needs Postgres on its unix socket (/var/run/postgresql, trust auth), the FaceNet weights in
MODEL_DIR and the LFW archive (LFW_ARCHIVE); root for the ``milvus`` backend. The 1M run takes
a long time on two cores: run it in the background with its output to a file.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import psutil

SCRIPTS = Path(__file__).resolve().parent
PROJECT_ROOT = SCRIPTS.parent
for folder in (PROJECT_ROOT, SCRIPTS):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

import scale_db  # noqa: E402
import scale_vectors  # noqa: E402

BACKENDS = ("lite", "lite-server", "milvus")
GOALS = {
    "writer_faces_per_s": 5000,
    "reindex_s_at_1m": 600,
    "p99_ms": 50,
    "recall_at_10": 0.99,
}
TOP_KS = (10, 100)
MIB = 2**20


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# ====================================================================== the gallery


def build_galleries(
    real: scale_vectors.RealFaces,
    model: scale_vectors.FaceModel,
    faces: int,
    small: int,
    rng: np.random.Generator,
) -> tuple[list[scale_db.GalleryRows], list[np.ndarray]]:
    """Gallery 1 (real faces first, then synthetic ones) and gallery 2 (synthetic), and for
    each the centre of every face's identity (to draw queries of known people)."""
    n_real = min(len(real), faces)
    fitted = np.unique(real.label[real.central])
    centre_index = np.searchsorted(fitted, real.label[:n_real])
    known = (centre_index < fitted.size) & (
        fitted[np.minimum(centre_index, fitted.size - 1)] == real.label[:n_real]
    )
    real_centres = np.where(
        known[:, None],
        model.centres[np.minimum(centre_index, fitted.size - 1)].astype(np.float32),
        real.vectors[:n_real],
    )
    galleries, centres = [], []
    for gallery_id, count, first_real in ((1, faces, n_real), (2, small, 0)):
        if count == 0:
            continue
        vectors = [real.vectors[:first_real]]
        labels = [f"lfw_{int(lab)}" for lab in real.label[:first_real]]
        image_of = [real.image[:first_real] - (real.image[0] if first_real else 0)]
        face_index = _face_index(real.image[:first_real])
        boxes = [real.boxes[:first_real]]
        conf = [real.confidence[:first_real]]
        cents = [real_centres[:first_real]] if first_real else []
        next_image = int(image_of[0].max()) + 1 if first_real else 0
        made = 0
        for chunk, sizes, chunk_centres in scale_vectors.synthesize(model, count - first_real, rng):
            n = chunk.shape[0]
            identity = np.repeat(np.arange(len(sizes)), sizes)
            labels.extend(f"syn{gallery_id}_{made + int(i)}" for i in identity)
            made += len(sizes)
            vectors.append(chunk)
            image_of.append(np.arange(next_image, next_image + n))
            next_image += n
            face_index = np.concatenate([face_index, np.zeros(n, np.int64)])
            boxes.append(np.tile(np.asarray([[70, 70, 110, 110]], np.int32), (n, 1)))
            conf.append(np.full(n, 0.999, np.float32))
            cents.append(chunk_centres[identity])
        galleries.append(
            scale_db.GalleryRows(
                gallery_id=gallery_id,
                vectors=np.concatenate(vectors).astype(np.float32),
                labels=labels,
                image_of=np.concatenate(image_of),
                boxes=np.concatenate(boxes),
                confidence=np.concatenate(conf),
                face_index=face_index,
            )
        )
        centres.append(np.concatenate(cents).astype(np.float32))
    return galleries, centres


def _face_index(images: np.ndarray) -> np.ndarray:
    """0, 1, ... within each run of equal image positions."""
    if images.size == 0:
        return np.zeros(0, np.int64)
    starts = np.r_[0, np.nonzero(np.diff(images))[0] + 1]
    run = np.zeros(images.size, np.int64)
    run[starts] = 1
    first = np.maximum.accumulate(np.where(run == 1, np.arange(images.size), 0))
    return np.arange(images.size) - first


def exact_top(vectors: np.ndarray, queries: np.ndarray, k: int, first_id: int) -> np.ndarray:
    """Face ids of the exact top-k by cosine (inner product of unit vectors), best first."""
    out = np.empty((queries.shape[0], k), np.int64)
    for start in range(0, queries.shape[0], 25):
        scores = queries[start : start + 25] @ vectors.T
        part = np.argpartition(-scores, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1)
        out[start : start + 25] = np.take_along_axis(part, order, axis=1) + first_id
    return out


# ====================================================================== memory


class RssSampler:
    """Peak RSS of this process and of the index server, sampled every 0.25 s."""

    def __init__(self, server_pid: int | None) -> None:
        self.me = psutil.Process()
        self.server = psutil.Process(server_pid) if server_pid else None
        self.peak = {"process": 0, "server": 0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def now(self) -> dict[str, float]:
        out = {"process_mib": round(self._rss(self.me) / MIB, 1)}
        if self.server is not None:
            out["server_mib"] = round(self._rss(self.server) / MIB, 1)
        return out

    @staticmethod
    def _rss(proc: psutil.Process) -> int:
        try:
            total = proc.memory_info().rss
            for child in proc.children(recursive=True):  # a server's helper processes
                total += child.memory_info().rss
            return int(total)
        except psutil.Error:
            return 0

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            self.peak["process"] = max(self.peak["process"], self._rss(self.me))
            if self.server is not None:
                self.peak["server"] = max(self.peak["server"], self._rss(self.server))

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def peaks(self) -> dict[str, float]:
        out = {"process_peak_mib": round(self.peak["process"] / MIB, 1)}
        if self.server is not None:
            out["server_peak_mib"] = round(self.peak["server"] / MIB, 1)
        return out


# ====================================================================== one backend


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def lite_server(data_dir: Path) -> Iterator[tuple[str, int]]:
    """``milvus-lite server`` on a loopback port: its URI and process id."""
    port = free_port()
    exe = Path(sys.executable).with_name("milvus-lite")
    log = (data_dir.parent / "lite-server.log").open("wb")
    proc = subprocess.Popen(
        [
            str(exe),
            "server",
            "--data-dir",
            str(data_dir),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"milvus-lite server did not start (see {log.name})")
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}", proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def percentiles(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms)
    return {
        "p50_ms": round(float(np.percentile(a, 50)), 2),
        "p99_ms": round(float(np.percentile(a, 99)), 2),
        "mean_ms": round(float(a.mean()), 2),
        "max_ms": round(float(a.max()), 2),
        "queries": int(a.size),
    }


def timed_searches(
    index: Any, model_name: str, queries: np.ndarray, top_k: int, gallery_id: int
) -> tuple[list[float], np.ndarray]:
    """Each query alone through ``VectorIndex.search``: milliseconds, and the hit ids."""
    times: list[float] = []
    ids = np.full((queries.shape[0], top_k), -1, np.int64)
    for i, q in enumerate(queries):
        started = time.perf_counter()
        hits = index.search(model_name, q, top_k, gallery_id=gallery_id)[0]
        times.append(1000 * (time.perf_counter() - started))
        ids[i, : len(hits)] = [h.face_id for h in hits]
    return times, ids


def recall(found: np.ndarray, truth: np.ndarray, k: int) -> float:
    hits = [len(set(f[:k]) & set(t[:k])) for f, t in zip(found, truth, strict=True)]
    return float(np.sum(hits)) / (k * found.shape[0])


def settle(index: Any, model_name: str, *, lite: bool) -> dict[str, Any]:
    """Wait until every row is served by the index, not by a brute-force scan.

    milvus-lite says every index is finished (it has no build progress to report) while it
    builds segment indexes in a background thread; releasing and loading the collection
    builds whatever is missing, synchronously. A Milvus server builds an index once a segment
    is sealed: flush once, then wait for ``pending_index_rows`` to reach 0; its query node then
    swaps each segment for its indexed version in the background (seconds to minutes later;
    until then that segment is brute-forced: exact, and slower), so the collection is released
    and loaded again, which loads every segment with its index, synchronously.
    The index client has no call for either (the product never needs one), so this uses its
    pymilvus client directly.
    """
    client = index._connect()  # the benchmark's only look behind the index's interface
    name = index.live_collection(model_name)  # the collection behind the model's alias
    started = time.perf_counter()
    out: dict[str, Any] = {}
    if lite:
        client.release_collection(name)
        client.load_collection(name)
    else:
        t0 = time.perf_counter()
        client.flush(name)
        out["flush_s"] = round(time.perf_counter() - t0, 2)
        deadline = time.monotonic() + 3600
        info: dict[str, Any] = {}
        while time.monotonic() < deadline:
            indexes = client.list_indexes(name)
            info = client.describe_index(name, index_name=indexes[0]) if indexes else {}
            if int(info.get("pending_index_rows", 0)) == 0 and int(
                info.get("indexed_rows", 0)
            ) >= int(info.get("total_rows", 0)):
                break
            time.sleep(1)
        out["index"] = {
            k: info.get(k) for k in ("indexed_rows", "total_rows", "pending_index_rows")
        }
        client.release_collection(name)
        client.load_collection(name)
    out["settle_s"] = round(time.perf_counter() - started, 2)
    return out


def run_backend(state: dict[str, Any], backend: str, server_pid: int | None) -> dict[str, Any]:
    """One backend, in a process of its own: writer, settle, searches, reindex, memory."""
    work = Path(state["work_dir"])
    os.environ["DATABASE_URL"] = scale_db.database_url(state["database"])
    os.environ.setdefault("PGHOST", scale_db.SOCKET_DIR)
    os.environ["STORAGE_URL"] = f"file://{work / 'objects'}"
    os.environ["DATA_DIR"] = str(work / "var")
    stack: list[Any] = []
    if backend == "lite":
        os.environ["MILVUS_URI"] = str(work / f"{backend}.db")
    elif backend == "lite-server":
        server = lite_server(work / f"{backend}.db")
        uri, server_pid = server.__enter__()
        stack.append(server)
        os.environ["MILVUS_URI"] = uri
    else:
        os.environ["MILVUS_URI"] = state["milvus_uri"]
    try:
        return _measure(state, backend, server_pid)
    finally:
        for ctx in stack:
            ctx.__exit__(None, None, None)


@dataclass
class Bench:
    """What one backend's measurements share."""

    backend: str
    model_name: str
    index: Any
    sessions: Any
    batch: int
    queries: dict[int, np.ndarray]
    truth: dict[int, np.ndarray]
    gallery_ids: dict[int, np.ndarray]
    statements: scale_db.StatementLog


def _measure(state: dict[str, Any], backend: str, server_pid: int | None) -> dict[str, Any]:
    from core.settings import get_settings  # noqa: PLC0415
    from workers import runtime  # noqa: PLC0415

    index = runtime.get_index()
    galleries = {int(g): int(n) for g, n in state["galleries"].items()}
    bench = Bench(
        backend=backend,
        model_name=state["model_name"],
        index=index,
        sessions=runtime.get_session_factory(),
        batch=get_settings().index_batch_size,
        queries={g: np.load(state["queries"][str(g)]) for g in galleries},
        truth={g: np.load(state["truth"][str(g)]) for g in galleries},
        gallery_ids={
            g: np.arange(state["first_face_id"][str(g)], state["first_face_id"][str(g)] + n)
            for g, n in galleries.items()
        },
        statements=scale_db.StatementLog(),
    )
    bench.statements.attach(runtime.get_engine())
    result: dict[str, Any] = {
        "backend": backend,
        "uri": "milvus-lite (embedded)" if index.embedded else index.display_uri,
        "settings": {
            "index_type": index.index_type,
            "hnsw_m": index.hnsw_m,
            "hnsw_ef_construction": index.hnsw_ef_construction,
            "search_ef": index.search_ef,
            "index_batch_size": bench.batch,
        },
    }
    with RssSampler(server_pid) as sampler:
        index.drop(bench.model_name)
        result["rss_start"] = sampler.now()
        result["writer"] = measure_writer(bench, sum(galleries.values()))
        result["rss_after_writer"] = sampler.now()
        if state.get("writer_only"):
            result["rss_peak"] = sampler.peaks()
            index.close()
            return result
        # What a search sees right after the writer, before the index has caught up.
        times, _ = timed_searches(index, bench.model_name, bench.queries[1][:50], 10, 1)
        result["search_right_after_writer_top10"] = percentiles(times)
        result["settle"] = settle(index, bench.model_name, lite=index.lite)
        say(f"{backend}: settled in {result['settle']['settle_s']} s")
        result["rss_settled"] = sampler.now()
        result["search"] = measure_searches(bench)
        # The same searches with other HNSW ef values: recall bought with latency.
        default_ef = index.search_ef
        for ef in state.get("more_ef") or []:
            index.search_ef = ef
            result.setdefault("search_by_ef", {})[str(ef)] = measure_searches(bench)
        index.search_ef = default_ef
        result["count"] = index.count(bench.model_name)
        result["rss_after_search"] = sampler.now()
        result["reindex"] = measure_reindex(bench)
        result["rss_end"] = sampler.now()
    result["rss_peak"] = sampler.peaks()
    if state.get("explain"):
        result["postgres"] = explain_search(state, index, bench.statements)
    index.close()
    return result


def measure_writer(bench: Bench, total_faces: int) -> dict[str, Any]:
    """The product's index writer over every face not yet indexed."""
    from workers.indexing import index_pending  # noqa: PLC0415

    say(f"{bench.backend}: writer (index_pending, batch {bench.batch}), {total_faces:,} faces")
    started = time.perf_counter()
    with bench.statements.record("writer"):
        written = index_pending(
            bench.model_name, sessions=bench.sessions, index=bench.index, batch_size=bench.batch
        )
    seconds = time.perf_counter() - started
    sql = bench.statements.of("writer")
    sql_s = sum(s.seconds for s in sql)
    say(
        f"{bench.backend}: writer {written:,} faces in {seconds:.0f} s = "
        f"{written / seconds:,.0f}/s (Postgres {sql_s:.0f} s of it)"
    )
    return {
        "faces": written,
        "seconds": round(seconds, 1),
        "faces_per_s": round(written / seconds, 1),
        "postgres_s": round(sql_s, 1),
        "statements": [
            {"sql": " ".join(s.sql.split())[:200], "calls": s.calls, "s": round(s.seconds, 2)}
            for s in sql
        ],
    }


def measure_searches(bench: Bench) -> dict[str, Any]:
    """Single queries at each top_k (after a warm-up), and a small gallery's at top_k 10."""
    out: dict[str, Any] = {}
    # Warm-up: the first calls pay for connections, caches and lazy loads.
    timed_searches(bench.index, bench.model_name, bench.queries[1][:20], 10, 1)
    for top_k in TOP_KS:
        times, ids = timed_searches(bench.index, bench.model_name, bench.queries[1], top_k, 1)
        entry = percentiles(times)
        entry[f"recall_at_{top_k}"] = round(recall(ids, bench.truth[1], top_k), 4)
        entry["recall_at_10"] = round(recall(ids, bench.truth[1], 10), 4)
        out[f"top{top_k}"] = entry
        say(f"{bench.backend}: top_k {top_k}: {entry}")
    if 2 in bench.queries:
        times, ids = timed_searches(bench.index, bench.model_name, bench.queries[2], 10, 2)
        entry = percentiles(times)
        entry["recall_at_10"] = round(recall(ids, bench.truth[2], 10), 4)
        found = ids[ids > 0]
        entry["hits_outside_gallery"] = int(found.size - np.isin(found, bench.gallery_ids[2]).sum())
        out["small_gallery_top10"] = entry
        say(f"{bench.backend}: small gallery, top_k 10: {entry}")
    return out


def measure_reindex(bench: Bench) -> dict[str, Any]:
    """The product's reindex path, then the index checked again."""
    from models import Job, JobKind  # noqa: PLC0415
    from models.db import session_scope  # noqa: PLC0415
    from workers.indexing import run_reindex  # noqa: PLC0415

    say(f"{bench.backend}: reindex (run_reindex)")
    with session_scope(bench.sessions) as session:
        job = Job(kind=JobKind.REINDEX, total=0)
        session.add(job)
        session.flush()
        job_id = job.id
    started = time.perf_counter()
    run_reindex(job_id, sessions=bench.sessions, index=bench.index, batch_size=bench.batch)
    out: dict[str, Any] = {"seconds": round(time.perf_counter() - started, 1)}
    out["settle"] = settle(bench.index, bench.model_name, lite=bench.index.lite)
    times, ids = timed_searches(bench.index, bench.model_name, bench.queries[1][:100], 10, 1)
    out["after_top10"] = percentiles(times) | {
        "recall_at_10": round(recall(ids, bench.truth[1][:100], 10), 4)
    }
    out["count"] = bench.index.count(bench.model_name)
    say(f"{bench.backend}: reindex {out}")
    return out


def explain_search(state: dict[str, Any], index: Any, statements: scale_db.StatementLog) -> dict:
    """A real search of gallery 1 and the reading of its result, statement by statement,
    each with its plan at full size."""
    from cli.lfw import default_archive, iter_images  # noqa: PLC0415
    from core.images import inspect_image  # noqa: PLC0415
    from core.settings import get_settings  # noqa: PLC0415
    from core.storage import content_key  # noqa: PLC0415
    from models import Job, JobKind, Search  # noqa: PLC0415
    from models.db import session_scope  # noqa: PLC0415
    from services.render import render_search  # noqa: PLC0415
    from workers import runtime  # noqa: PLC0415
    from workers.search import run_search  # noqa: PLC0415

    settings = get_settings()
    sessions = runtime.get_session_factory()
    store = runtime.get_store()
    photo = next(iter_images(default_archive()))
    sha = hashlib.sha256(photo.data).hexdigest()
    key = content_key(sha)
    store.put(key, photo.data, content_type="image/jpeg")
    info = inspect_image(photo.data, max_pixels=settings.max_image_pixels)
    with session_scope(sessions) as session:
        job = Job(kind=JobKind.SEARCH, gallery_id=1, total=1)
        search = Search(
            job=job,
            gallery_id=1,
            top_k=10,
            query_sha256=sha,
            query_object_key=key,
            query_content_type="image/jpeg",
            query_width=info.width,
            query_height=info.height,
            query_size_bytes=len(photo.data),
        )
        session.add_all([job, search])
        session.flush()
        search_id = search.id
    say("postgres: a real search (pipeline, index, Postgres), recorded")
    pipeline = runtime.get_pipeline()
    with statements.record("search task"):
        run_search(
            search_id,
            sessions=sessions,
            store=store,
            pipeline=pipeline,
            index=index,
            max_pixels=settings.max_image_pixels,
        )
    with statements.record("GET /v1/searches/{id}"), session_scope(sessions) as session:
        body = render_search(session.get_one(Search, search_id))
    matches = sum(len(f["matches"]) for f in body["faces"])
    plans = []
    for where in ("search task", "GET /v1/searches/{id}"):
        for statement in statements.of(where):
            verb = statement.sql.lstrip().split(None, 1)[0].upper()
            if verb not in ("SELECT", "UPDATE", "INSERT", "DELETE"):
                continue
            plans.append(scale_db.explain(state["database"], statement))
    return {
        "search_status": body["status"],
        "query_faces": len(body["faces"]),
        "matches": matches,
        "statements": plans,
    }


# ====================================================================== orchestration


def phase_main(args: argparse.Namespace) -> int:
    state = json.loads(Path(args.state).read_text())
    result = run_backend(state, args.phase, args.server_pid)
    Path(args.result).write_text(json.dumps(result, indent=2, default=str))
    return 0


def run_phase_process(
    state_path: Path,
    backend: str,
    *,
    result_path: Path,
    prefix: list[str],
    env: dict[str, str],
    server_pid: int | None = None,
) -> dict[str, Any]:
    command = [
        *prefix,
        sys.executable,
        str(Path(__file__).resolve()),
        "--phase",
        backend,
        "--state",
        str(state_path),
        "--result",
        str(result_path),
    ]
    if server_pid:
        command += ["--server-pid", str(server_pid)]
    done = subprocess.run(command, env=env, check=False)
    if done.returncode != 0 or not result_path.is_file():
        return {"backend": backend, "error": f"the {backend} phase exited {done.returncode}"}
    return dict(json.loads(result_path.read_text()))


def orchestrate(args: argparse.Namespace) -> int:  # noqa: PLR0915  (one linear story)
    from cli.lfw import default_archive  # noqa: PLC0415
    from cli.main import run_migrations  # noqa: PLC0415
    from workers.pipeline import get_spec  # noqa: PLC0415

    os.environ.setdefault("PGHOST", scale_db.SOCKET_DIR)
    rng = np.random.default_rng(args.seed)
    report: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "python": platform.python_version(),
            "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
        },
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "goals": GOALS,
    }
    spec = get_spec(args.model)
    real, cache = scale_vectors.embed_lfw(
        args.archive or default_archive(),
        args.model_dir,
        spec.name,
        limit=args.real_limit,
        refresh=args.refresh_cache,
        say=say,
    )
    say(
        f"real faces: {len(real):,} faces of {real.images:,} LFW images "
        f"({real.seconds:.0f} s of pipeline time when computed)"
    )
    model = scale_vectors.fit(real)
    started = time.perf_counter()
    synthetic = next(
        scale_vectors.synthesize(
            model, len(real), np.random.default_rng(args.seed + 1), chunk=len(real)
        )
    )[0]
    check = scale_vectors.compare(real.vectors, synthetic, rng, probes=args.check_probes)
    say(f"real vs synthetic ({time.perf_counter() - started:.0f} s): {json.dumps(check)}")
    report["vectors"] = {
        "dim": model.dim,
        "model": spec.name,
        "real_faces": len(real),
        "real_images": real.images,
        "real_identities_fitted": int(model.sizes.size),
        "cache": str(cache),
        "drawn_as": "identity centre ~ N(mean, S_between) from LFW's identity means, faces "
        "~ centre + N(0, S_within) (pooled within-identity covariance), normalised; faces per "
        "identity drawn from LFW's",
        "real_vs_synthetic": check,
    }
    galleries, centres = build_galleries(real, model, args.faces, args.small_gallery, rng)
    del synthetic

    name = f"facesearch_scale_{os.getpid()}"
    work = Path(tempfile.mkdtemp(prefix="facesearch-scale-", dir=args.work_dir))
    say(f"scratch database {name}, work folder {work}")
    scale_db.create_database(name)
    try:
        run_migrations(scale_db.database_url(name))
        started = time.perf_counter()
        timings = scale_db.fill(name, galleries, spec.name)
        say(f"postgres: filled in {time.perf_counter() - started:.0f} s: {timings}")
        history = scale_db.add_search_history(
            name, args.search_history, 10, np.arange(1, args.faces + 1)
        )
        report["postgres"] = {
            "fill": {k: round(v, 1) for k, v in timings.items()},
            "search_history_s": round(history, 1),
            "tables": scale_db.table_sizes(name),
        }

        state: dict[str, Any] = {
            "database": name,
            "model_name": spec.name,
            "work_dir": str(work),
            "galleries": {},
            "first_face_id": {},
            "queries": {},
            "truth": {},
            "explain": not args.no_explain,
            "more_ef": args.more_ef,
            "writer_only": args.writer_only,
        }
        started = time.perf_counter()
        for g, cents in zip(galleries, centres, strict=True):
            count = args.queries if g.gallery_id == 1 else min(args.queries, 100)
            pick = rng.integers(0, cents.shape[0], count)
            q = scale_vectors.queries_near(model, cents[pick], rng)
            truth = exact_top(g.vectors, q, max(TOP_KS), g.first_face_id)
            for what, array in (("queries", q), ("truth", truth)):
                path = work / f"{what}-{g.gallery_id}.npy"
                np.save(path, array)
                state[what][str(g.gallery_id)] = str(path)
            state["galleries"][g.gallery_id] = int(g.vectors.shape[0])
            state["first_face_id"][str(g.gallery_id)] = g.first_face_id
        say(f"exact top-{max(TOP_KS)} of the queries in {time.perf_counter() - started:.0f} s")
        report["gallery"] = {
            "faces": args.faces,
            "small_gallery_faces": args.small_gallery,
            "queries": args.queries,
            "queries_are": "a new face of a person in the gallery (their identity's centre "
            "plus within-identity noise), not a stored vector",
        }
        del galleries, centres

        report["backends"] = {}
        first = True
        for backend in args.backends:
            if not first:
                took = scale_db.unindex_all(name)
                say(f"postgres: faces marked unindexed again in {took:.0f} s")
            state["explain"] = first and not args.no_explain
            state_path = work / "state.json"
            result_path = work / f"result-{backend}.json"
            env = dict(os.environ)
            say(f"=== {backend}")
            if backend == "milvus":
                result = run_in_namespace(state, state_path, result_path, work, env)
            else:
                state_path.write_text(json.dumps(state))
                result = run_phase_process(
                    state_path, backend, result_path=result_path, prefix=[], env=env
                )
            report["backends"][backend] = result
            first = False
            shutil.rmtree(work / f"{backend}.db", ignore_errors=True)
            write_outputs(report, args)  # partial results survive a later failure
    finally:
        if not args.keep_db:
            scale_db.drop_database(name)
        shutil.rmtree(work, ignore_errors=True)
    report["machine"]["load_avg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    write_outputs(report, args)
    print_table(report)
    return 0


def run_in_namespace(
    state: dict[str, Any], state_path: Path, result_path: Path, work: Path, env: dict[str, str]
) -> dict[str, Any]:
    """The real Milvus server in a network namespace; the backend's process inside it."""
    from tests.milvus_server import POSTGRES_SOCKET_ENV, MilvusNetns, NetnsUnavailable  # noqa: PLC0415

    try:
        with MilvusNetns(work / "milvus") as milvus:
            state["milvus_uri"] = milvus.uri
            state_path.write_text(json.dumps(state))
            pid = int((milvus.base_dir / "ready").read_text())
            return run_phase_process(
                state_path,
                "milvus",
                result_path=result_path,
                prefix=milvus.exec_prefix,
                env={**env, **POSTGRES_SOCKET_ENV},
                server_pid=pid,
            )
    except NetnsUnavailable as exc:
        return {"backend": "milvus", "error": f"skipped: {exc}"}


# ====================================================================== output


def _cell(value: Any, fmt: str = "{:,.0f}") -> str:
    return "-" if value is None else fmt.format(value)


def rows(report: dict[str, Any]) -> list[list[str]]:
    out = []
    for backend, r in report.get("backends", {}).items():
        if "error" in r:
            out.append([backend, r["error"]] + [""] * (len(HEADER) - 2))
            continue
        mem = r["rss_peak"]
        if "search" not in r:  # --writer-only
            writer = [backend, _cell(r["writer"]["faces_per_s"])]
            peaks = [_cell(mem.get("process_peak_mib")), _cell(mem.get("server_peak_mib"))]
            out.append(writer + ["-"] * (len(HEADER) - 4) + peaks)
            continue
        s10, s100 = r["search"]["top10"], r["search"]["top100"]
        out.append(
            [
                backend,
                _cell(r["writer"]["faces_per_s"]),
                _cell(r["settle"]["settle_s"], "{:,.1f}"),
                _cell(r["reindex"]["seconds"], "{:,.0f}"),
                f"{s10['p50_ms']:.1f} / {s10['p99_ms']:.1f}",
                f"{s100['p50_ms']:.1f} / {s100['p99_ms']:.1f}",
                f"{s10['recall_at_10']:.4f}",
                _cell(mem.get("process_peak_mib")),
                _cell(mem.get("server_peak_mib")),
            ]
        )
    return out


HEADER = [
    "backend",
    "writer faces/s",
    "settle s",
    "reindex s",
    "top10 p50/p99 ms",
    "top100 p50/p99 ms",
    "recall@10",
    "process peak MiB",
    "server peak MiB",
]


def print_table(report: dict[str, Any]) -> None:
    table = [HEADER, *rows(report)]
    widths = [max(len(r[i]) for r in table) for i in range(len(HEADER))]
    print(f"\n{report['gallery']['faces']:,} faces ({report['vectors']['dim']}-d)")
    for r in table:
        print("  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)))


def markdown_table(report: dict[str, Any]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(r) + " |" for r in rows(report)]
    return "\n".join(lines)


def write_outputs(report: dict[str, Any], args: argparse.Namespace) -> None:
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2, default=str) + "\n")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--faces", type=int, default=1_000_000, help="faces in the gallery")
    parser.add_argument(
        "--small-gallery",
        type=int,
        default=1000,
        help="faces of a second gallery in the same collection (0: none)",
    )
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS))
    parser.add_argument(
        "--search-history",
        type=int,
        default=10_000,
        help="finished searches (10 matches each) in the scratch database",
    )
    parser.add_argument(
        "--check-probes",
        type=int,
        default=2000,
        help="faces whose nearest neighbour is compared, real vs synthetic",
    )
    parser.add_argument(
        "--real-limit",
        type=int,
        default=None,
        help="embed only the first N LFW images (default: all)",
    )
    parser.add_argument(
        "--refresh-cache",
        action="store_true",
        help="embed LFW again even if the cache holds its faces",
    )
    parser.add_argument("--model", default=os.environ.get("MODEL_NAME", "facenet-20170512-110547"))
    parser.add_argument(
        "--model-dir",
        type=Path,
        default=Path(os.environ.get("MODEL_DIR", Path.home() / ".cache" / "facesearch" / "models")),
    )
    parser.add_argument("--archive", type=Path, default=None, help="LFW .tgz (LFW_ARCHIVE)")
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--work-dir", type=Path, default=None, help="for the index files")
    parser.add_argument("--out", type=Path, default=None, help="write the report as JSON")
    parser.add_argument(
        "--more-ef",
        type=int,
        nargs="*",
        default=[],
        help="also measure the searches with these HNSW ef values (MILVUS_SEARCH_EF is the first)",
    )
    parser.add_argument(
        "--writer-only",
        action="store_true",
        help="measure the index writer only (no searches, reindex or EXPLAIN)",
    )
    parser.add_argument("--keep-db", action="store_true")
    parser.add_argument("--no-explain", action="store_true")
    parser.add_argument("--phase", choices=BACKENDS, help=argparse.SUPPRESS)
    parser.add_argument("--state", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--server-pid", type=int, default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.phase:
        return phase_main(args)
    return orchestrate(args)


if __name__ == "__main__":
    raise SystemExit(main())
