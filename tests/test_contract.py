"""The OpenAPI document is a contract the API keeps.

- ``test_the_live_api_keeps_its_document``: schemathesis with every check (``--checks all``:
  status codes, content types, headers and bodies as documented, valid requests accepted and
  invalid ones refused, ``405`` with ``Allow``, authentication required, ...) against a live API
  (``facesearch serve``) on Postgres, with an admin key. The API and the run share a network
  namespace of their own: nothing they do reaches past its loopback (a webhook URL's host does
  not resolve there), and Postgres is reached through its unix socket. Its exceptions are
  written, with their reasons, in ``tests/schemathesis.toml``; what a schema cannot say about a
  request (an image's or an archive's bytes) is in ``tests/contract_hooks.py``.
- Every route answers a method it does not have with ``405`` and ``Allow`` (RFC 9110).
- The generated client (``clients/python``) is the one the document makes today.
"""

from __future__ import annotations

import contextlib
import filecmp
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.conftest import create_database, drop_database, migrate
from tests.worker_process import make_api_key

REPO = Path(__file__).resolve().parents[1]
IP = shutil.which("ip") or "/usr/sbin/ip"
BIN = Path(sys.executable).parent
PORT = 8000  # the namespace is new: every port is free
# Bounded and repeatable: a few minutes at most on 2 cores (about 20 s measured).
MAX_EXAMPLES = 20
SEED = 1
START_TIMEOUT_S = 60.0
RUN_TIMEOUT_S = 600
# Postgres from inside the namespace, whose loopback is its own: libpq reads PGHOST, its socket.
PG_SOCKET = "/var/run/postgresql"


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([IP, *args], capture_output=True, text=True, check=False, timeout=30)


@contextlib.contextmanager
def network_namespace(name: str) -> Iterator[list[str]]:
    """A network namespace with only its loopback, up; yields the prefix that runs a command
    inside it. On exit every process in it is killed and it is deleted."""
    if os.geteuid() != 0 or not Path(IP).exists():
        pytest.skip("the contract run needs root and `ip` (iproute2) for a network namespace")
    _ip("netns", "del", name)  # one left by a run that was itself killed
    made = _ip("netns", "add", name)
    if made.returncode != 0:
        pytest.skip(f"cannot make a network namespace: {made.stderr.strip()}")
    prefix = [IP, "netns", "exec", name]
    try:
        _ip("netns", "exec", name, IP, "link", "set", "lo", "up")
        yield prefix
    finally:
        for pid in _ip("netns", "pids", name).stdout.split():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        _ip("netns", "del", name)


def _wait_until_ready(prefix: list[str], api: subprocess.Popen[bytes], log: Path) -> None:
    url = f"http://127.0.0.1:{PORT}/healthz"
    probe = f"import urllib.request; urllib.request.urlopen({url!r}, timeout=2)"
    command = [*prefix, sys.executable, "-c", probe]
    deadline = time.monotonic() + START_TIMEOUT_S
    while subprocess.run(command, capture_output=True, check=False).returncode:
        if api.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"the API did not start: {log.read_text()[-3000:]}")
        time.sleep(0.5)


def test_the_live_api_keeps_its_document(tmp_path: Path) -> None:
    database_url = create_database()
    try:
        migrate(database_url)
        key = make_api_key(database_url)  # an admin key of the default gallery
        name = database_url.rsplit("/", 1)[1]
        env = {
            **os.environ,
            "PGHOST": PG_SOCKET,
            "DATABASE_URL": f"postgresql+psycopg://postgres@/{name}",
            "DATA_DIR": str(tmp_path),
            "BROKER_URL": f"filesystem://{tmp_path / 'broker'}",  # no worker: jobs wait
            "STORAGE_URL": f"file://{tmp_path / 'objects'}",
            "MILVUS_URI": str(tmp_path / "milvus.db"),
            "RATE_LIMIT": "",  # the run sends many requests a second
            "API_MAX_WAITERS": "0",  # a long poll answers at once: the run never waits
            "LOG_JSON": "true",
            "PYTHONPATH": str(REPO),
            "FACESEARCH_KEY": key,  # tests/contract_hooks.py never revokes it
        }
        log = tmp_path / "api.log"
        with network_namespace(f"fsoas-{os.getpid()}") as prefix, log.open("wb") as out:
            serve = [sys.executable, "-m", "cli.main", "serve", "--port", str(PORT)]
            api = subprocess.Popen(
                [*prefix, *serve, "--workers", "1", "--threads", "16"],
                env=env,
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
            _wait_until_ready(prefix, api, log)
            run = subprocess.run(
                [
                    *prefix,
                    str(BIN / "schemathesis"),
                    "--no-color",
                    "--config-file",
                    str(REPO / "tests" / "schemathesis.toml"),
                    "run",
                    f"http://127.0.0.1:{PORT}/openapi.json",
                    "--checks",
                    "all",
                    "--header",
                    f"Authorization: Bearer {key}",
                    "--max-examples",
                    str(MAX_EXAMPLES),
                    "--seed",
                    str(SEED),
                    "--workers",
                    "1",
                ],
                env=env,
                cwd=REPO,
                capture_output=True,
                text=True,
                timeout=RUN_TIMEOUT_S,
                check=False,
            )
        api.wait(timeout=30)  # killed with everything in the namespace
    finally:
        drop_database(database_url)
    report = run.stdout + run.stderr
    assert run.returncode == 0, report[-20_000:]
    assert "37 selected / 37 total" in report, report[-5000:]  # the whole API was run


def test_every_route_answers_an_unknown_method_with_allow(client: FlaskClient) -> None:
    app = client.application
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = rule.rule.replace("<int:", "<").replace("<path:", "<")
        for name in rule.arguments:
            path = path.replace(f"<{name}>", "1").replace(f"<key_prefix:{name}>", "fsk_1a2b3c4d")
        response = client.open(path, method="TRACE")
        assert response.status_code == 405, (path, response.status_code)
        allowed = {m.strip() for m in response.headers["Allow"].split(",")}
        assert (rule.methods or set()) <= allowed, (path, allowed)
        assert response.get_json()["error"]["code"] == "method_not_allowed"


def test_a_405_comes_before_the_request_is_read(client: FlaskClient) -> None:
    # A body the route would refuse (a control character in a form field) does not matter.
    response = client.open(
        "/v1/images", method="PATCH", data={"label": "a\u0001b"}, content_type="multipart/form-data"
    )
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, HEAD, OPTIONS, POST"


def test_key_paths_name_keys_only(client: FlaskClient) -> None:
    # /v1/keys/self is GET's alone; DELETE names a key by its prefix.
    response = client.delete("/v1/keys/self")
    assert response.status_code == 405
    assert "DELETE" not in response.headers["Allow"]
    assert client.delete("/v1/keys/fsk_00000000").status_code == 404


def _load_generator() -> object:
    spec = importlib.util.spec_from_file_location(
        "generate_client", REPO / "clients" / "python" / "generate.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _differences(compared: filecmp.dircmp[str], prefix: str = "") -> list[str]:
    found = [f"{prefix}{name}" for name in compared.left_only + compared.right_only]
    found += [f"{prefix}{name}" for name in compared.diff_files + compared.funny_files]
    for name, sub in compared.subdirs.items():
        found += _differences(sub, f"{prefix}{name}/")
    return found


def test_the_client_is_generated_from_the_current_document(tmp_path: Path) -> None:
    generator: Any = _load_generator()
    fresh = tmp_path / generator.PACKAGE
    generator.generate(fresh)
    committed = generator.CLIENT / generator.PACKAGE
    compared = filecmp.dircmp(committed, fresh, ignore=["__pycache__"])
    differences = _differences(compared)
    assert not differences, (
        "the generated client differs from the OpenAPI document (run make client, and commit "
        f"clients/python): {differences[:20]}"
    )
