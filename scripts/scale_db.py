"""Postgres for the scale benchmark: a scratch database filled fast, and the plans of what a
search asks of it.

The database is made by the product's migrations (as everywhere), then filled with COPY: one
``images`` row and one ``faces`` row (with its embedding) per face, and a history of finished
searches so that the search tables are not empty when their queries are planned.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import psycopg

SOCKET_DIR = "/var/run/postgresql"  # reachable from inside a network namespace, unlike TCP
ADMIN_DSN = f"host={SOCKET_DIR} user=postgres dbname=postgres"
STAMP = "2026-01-01 00:00:00+00"  # one creation time for every row (nothing reads it here)


def database_url(name: str) -> str:
    """The SQLAlchemy URL of ``name`` through the unix socket (no host: libpq reads PGHOST)."""
    return f"postgresql+psycopg://postgres@/{name}"


def dsn(name: str) -> str:
    return f"host={SOCKET_DIR} user=postgres dbname={name}"


def create_database(name: str) -> None:
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(name: str) -> None:
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class GalleryRows:
    """What one gallery holds: ``vectors[i]`` is face ``first_face_id + i``."""

    gallery_id: int
    vectors: np.ndarray
    labels: list[str]  # per face: the identity (LFW folder name or a synthetic one)
    image_of: np.ndarray  # per face: its image's position among the gallery's images
    boxes: np.ndarray  # (n, 4)
    confidence: np.ndarray
    face_index: np.ndarray  # per face: its index within its image
    first_face_id: int = 0
    first_image_id: int = 0
    images: int = field(init=False)

    def __post_init__(self) -> None:
        self.images = int(self.image_of.max()) + 1 if self.image_of.size else 0


def fill(name: str, galleries: Sequence[GalleryRows], model_name: str) -> dict[str, float]:
    """COPY images and faces rows for every gallery; returns seconds per step and rows/s."""
    timings: dict[str, float] = {}
    with psycopg.connect(dsn(name)) as conn:
        for g in galleries:
            if g.gallery_id != 1:  # the default gallery comes with the migrations
                conn.execute(
                    "INSERT INTO galleries (id, name) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                    (g.gallery_id, f"scale-{g.gallery_id}"),
                )
        image_id = face_id = 1
        started = time.perf_counter()
        with (
            conn.cursor() as cur,
            cur.copy(
                "COPY images (id, gallery_id, sha256, object_key, content_type, size_bytes, width,"
                " height, filename, label, status, created_at, updated_at) FROM STDIN"
            ) as copy,
        ):
            for g in galleries:
                g.first_image_id = image_id
                first_face = np.zeros(g.images, np.int64)
                first_face[g.image_of[::-1]] = np.arange(len(g.labels))[::-1]
                for i in range(g.images):
                    sha = hashlib.sha256(f"{g.gallery_id}/{i}".encode()).hexdigest()
                    label = g.labels[int(first_face[i])]
                    copy.write_row(
                        (
                            image_id + i,
                            g.gallery_id,
                            sha,
                            f"objects/{sha[:2]}/{sha}",
                            "image/jpeg",
                            14_000,
                            250,
                            250,
                            f"{label}_{i}.jpg",
                            label,
                            "ready",
                            STAMP,
                            STAMP,
                        )
                    )
                image_id += g.images
        timings["images_copy_s"] = time.perf_counter() - started
        started = time.perf_counter()
        rows = 0
        with (
            conn.cursor() as cur,
            cur.copy(
                "COPY faces (id, image_id, face_index, model_name, dim, embedding, box_x, box_y,"
                " box_w, box_h, confidence, landmarks, created_at) FROM STDIN"
            ) as copy,
        ):
            for g in galleries:
                g.first_face_id = face_id
                blobs = np.ascontiguousarray(g.vectors, dtype="<f4")
                dim = int(blobs.shape[1])
                for i in range(blobs.shape[0]):
                    x, y, w, h = (int(v) for v in g.boxes[i])
                    copy.write_row(
                        (
                            face_id + i,
                            g.first_image_id + int(g.image_of[i]),
                            int(g.face_index[i]),
                            model_name,
                            dim,
                            blobs[i].tobytes(),
                            x,
                            y,
                            w,
                            h,
                            float(g.confidence[i]),
                            "{}",
                            STAMP,
                        )
                    )
                face_id += blobs.shape[0]
                rows += blobs.shape[0]
        timings["faces_copy_s"] = time.perf_counter() - started
        timings["faces_copy_rows_per_s"] = rows / max(timings["faces_copy_s"], 1e-9)
        for table in ("images", "faces"):
            conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "  # noqa: S608
                f"(SELECT max(id) FROM {table}))"
            )
        conn.commit()
    started = time.perf_counter()
    with psycopg.connect(dsn(name), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE images")
        conn.execute("VACUUM ANALYZE faces")
    timings["vacuum_analyze_s"] = time.perf_counter() - started
    return timings


def add_search_history(name: str, searches: int, matches: int, face_ids: np.ndarray) -> float:
    """``searches`` finished searches of gallery 1, one query face each with ``matches``
    matches, so the search tables have rows when their queries are planned."""
    rng = np.random.default_rng(7)
    started = time.perf_counter()
    job_ids = [str(uuid.uuid4()) for _ in range(searches)]
    with psycopg.connect(dsn(name)) as conn, conn.cursor() as cur:
        with cur.copy(
            "COPY jobs (id, gallery_id, kind, status, total, done, failed, skipped, params,"
            " result, created_at, started_at, finished_at, updated_at) FROM STDIN"
        ) as copy:
            for job_id in job_ids:
                copy.write_row(
                    (
                        job_id,
                        1,
                        "search",
                        "succeeded",
                        1,
                        1,
                        0,
                        0,
                        "{}",
                        "{}",
                        STAMP,
                        STAMP,
                        STAMP,
                        STAMP,
                    )
                )
        with cur.copy(
            "COPY searches (id, job_id, gallery_id, top_k, query_sha256, query_object_key,"
            " query_content_type, query_width, query_height, query_size_bytes, model_name,"
            " status, created_at, finished_at) FROM STDIN"
        ) as copy:
            for job_id in job_ids:
                sha = hashlib.sha256(job_id.encode()).hexdigest()
                copy.write_row(
                    (
                        job_id,
                        job_id,
                        1,
                        matches,
                        sha,
                        f"objects/{sha[:2]}/{sha}",
                        "image/jpeg",
                        250,
                        250,
                        14_000,
                        None,
                        "succeeded",
                        STAMP,
                        STAMP,
                    )
                )
        with cur.copy(
            "COPY search_faces (id, search_id, face_index, box_x, box_y, box_w, box_h,"
            " confidence, landmarks) FROM STDIN"
        ) as copy:
            for i, job_id in enumerate(job_ids, start=1):
                copy.write_row((i, job_id, 0, 70, 70, 110, 110, 0.99, "{}"))
        with cur.copy(
            "COPY search_matches (search_face_id, rank, score, face_id, image_id, label,"
            " box_x, box_y, box_w, box_h) FROM STDIN"
        ) as copy:
            picks = rng.choice(face_ids, size=(searches, matches))
            for i in range(searches):
                for rank in range(matches):
                    face = int(picks[i, rank])
                    copy.write_row((i + 1, rank + 1, 0.5, face, None, "someone", 1, 1, 9, 9))
        cur.execute(
            "SELECT setval(pg_get_serial_sequence('search_faces', 'id'), "
            "(SELECT max(id) FROM search_faces))"
        )
        conn.commit()
    with psycopg.connect(dsn(name), autocommit=True) as conn:
        for table in ("jobs", "searches", "search_faces", "search_matches"):
            conn.execute(f"VACUUM ANALYZE {table}")
    return time.perf_counter() - started


def unindex_all(name: str) -> float:
    """Every face back to "not in the index" (the writer's starting point)."""
    started = time.perf_counter()
    with psycopg.connect(dsn(name), autocommit=True) as conn:
        conn.execute("UPDATE faces SET indexed_at = NULL WHERE indexed_at IS NOT NULL")
        conn.execute("VACUUM ANALYZE faces")
    return time.perf_counter() - started


def table_sizes(name: str) -> dict[str, dict[str, Any]]:
    with psycopg.connect(dsn(name)) as conn:
        rows = conn.execute(
            "SELECT relname, n_live_tup, pg_total_relation_size(relid) FROM pg_stat_user_tables"
            " WHERE relname IN ('images', 'faces', 'jobs', 'searches', 'search_faces',"
            " 'search_matches') ORDER BY relname"
        ).fetchall()
    return {r[0]: {"rows": int(r[1]), "mib": round(r[2] / 2**20, 1)} for r in rows}


# ---------------------------------------------------------------------- statements and plans


@dataclass
class Statement:
    sql: str
    params: Any
    calls: int = 0
    seconds: float = 0.0
    where: str = ""


class StatementLog:
    """Every statement an SQLAlchemy engine runs while recording, with its time."""

    def __init__(self) -> None:
        self.statements: dict[str, Statement] = {}
        self.recording = ""
        self._started: dict[int, float] = {}

    def attach(self, engine: Any) -> None:
        from sqlalchemy import event  # noqa: PLC0415

        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        self._started[id(cursor)] = time.perf_counter()

    def _after(  # noqa: PLR0917  (SQLAlchemy's event signature)
        self, conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool
    ) -> None:
        took = time.perf_counter() - self._started.pop(id(cursor), time.perf_counter())
        if not self.recording:
            return
        key = f"{self.recording}\0{statement}"
        entry = self.statements.get(key)
        if entry is None:
            # executemany hands a list of parameter sets (one is enough to plan with);
            # SQLAlchemy's insertmanyvalues hands one set for a multi-row statement.
            first = params[0] if many and isinstance(params, list | tuple) and params else params
            entry = self.statements[key] = Statement(statement, first, where=self.recording)
        entry.calls += 1
        entry.seconds += took

    @contextmanager
    def record(self, where: str) -> Iterator[None]:
        self.recording = where
        try:
            yield
        finally:
            self.recording = ""

    def of(self, where: str) -> list[Statement]:
        return [s for s in self.statements.values() if s.where == where]


def explain(name: str, statement: Statement) -> dict[str, Any]:
    """``EXPLAIN (ANALYZE, BUFFERS)`` of one recorded statement with its recorded parameters.

    Statements that write run in a transaction that is rolled back: the plan is real, the
    database unchanged.
    """
    with psycopg.connect(dsn(name)) as conn:
        rows = conn.execute(
            f"EXPLAIN (ANALYZE, BUFFERS) {statement.sql}",
            statement.params,
        ).fetchall()
        conn.rollback()
    plan = [r[0] for r in rows]
    return {
        "where": statement.where,
        "sql": " ".join(statement.sql.split()),
        "calls": statement.calls,
        "ms_in_app": round(1000 * statement.seconds / max(statement.calls, 1), 2),
        "plan": plan,
        # Sequential scans, by table: on a table of many rows this is what to look at.
        "seq_scans": sorted(
            {line.split(" on ", 1)[1].split()[0] for line in plan if "Seq Scan on " in line}
        ),
    }
