"""Benchmark what checking an API key costs each request.

Builds the real app on a fresh Postgres database (migrated), makes a key, adds two empty
routes (one public, one needing a key) and times requests to each through the WSGI stack
with Flask's test client, so the difference is the key check alone: parse the header, look
the key up by its prefix, compare hashes, check its gallery, and (at most once a minute)
record when it was last used. Also times the check on its own.

    .venv/bin/python scripts/bench_auth.py                  # 5,000 requests of each kind
    .venv/bin/python scripts/bench_auth.py -n 20000 --pg postgresql://postgres@127.0.0.1/postgres
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from api import create_app  # noqa: E402
from api.auth import public, requires  # noqa: E402
from api.context import EXTENSION  # noqa: E402
from cli.main import run_migrations  # noqa: E402
from core.settings import Settings  # noqa: E402
from models import DEFAULT_GALLERY_ID, Gallery, Scope  # noqa: E402
from models.db import make_engine, make_session_factory, session_scope  # noqa: E402
from services.keys import authenticate, create_key  # noqa: E402


def percentiles(samples_s: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples_s)
    p50 = statistics.median(ms)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    return f"p50 {p50:.3f} ms  p99 {p99:.3f} ms  mean {statistics.fmean(ms):.3f} ms"


def timed(call: Callable[[], object], n: int) -> list[float]:
    for _ in range(min(200, n)):  # warm up: connection pool, caches, code paths
        call()
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=5000, help="requests of each kind")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()

    name = f"facesearch_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.pg, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
    url = args.pg.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + "/" + name
    try:
        run_migrations(url)
        engine = make_engine(url)
        sessions = make_session_factory(engine)
        with session_scope(sessions) as session:
            _, key = create_key(
                session, scope=Scope.SEARCH, gallery=session.get(Gallery, DEFAULT_GALLERY_ID)
            )

        with tempfile.TemporaryDirectory() as data_dir:
            settings = Settings(
                app_env="test", data_dir=Path(data_dir), database_url=url, log_level="WARNING"
            )
            app = create_app(settings)

            @app.get("/bench/public")
            @public
            def bench_public() -> dict[str, bool]:
                return {"ok": True}

            @app.get("/bench/protected")
            @requires(Scope.SEARCH)
            def bench_protected() -> dict[str, bool]:
                return {"ok": True}

            client = app.test_client()
            headers = {"Authorization": f"Bearer {key}"}
            assert client.get("/bench/protected").status_code == 401
            assert client.get("/bench/protected", headers=headers).status_code == 200

            open_route = timed(lambda: client.get("/bench/public"), args.n)
            keyed_route = timed(lambda: client.get("/bench/protected", headers=headers), args.n)

            def check_alone() -> None:
                with session_scope(sessions) as session:
                    assert authenticate(session, key) is not None

            check = timed(check_alone, args.n)
            app.extensions[EXTENSION].close()
        engine.dispose()
    finally:
        with psycopg.connect(args.pg, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]

    print(f"{args.n} requests of each kind, Postgres on loopback, Flask test client")
    print(f"  public route (no key)     {percentiles(open_route)}")
    print(f"  route needing a key       {percentiles(keyed_route)}")
    print(f"  the key check on its own  {percentiles(check)}")
    added = statistics.median(keyed_route) - statistics.median(open_route)
    print(f"  added by the key check (p50 difference): {added * 1000:.3f} ms")


if __name__ == "__main__":
    main()
