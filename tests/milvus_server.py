"""A real Milvus standalone server (PyPI ``milvus==2.3.5``) in a network namespace of its own.

That server listens on every interface and cannot be told otherwise, so it runs only inside a
network namespace made for it (nothing but its own loopback), and whatever talks to it runs in
that namespace too. Root can make one on our machines and in CI; elsewhere
:class:`NetnsUnavailable` says why, and tests skip with that message.

For tests and scripts alike::

    from tests.milvus_server import MilvusNetns, NetnsUnavailable

    with MilvusNetns(tmp_dir) as milvus:   # starts the server (seconds), waits until healthy
        milvus.run([sys.executable, "scripts/some_script.py", "--milvus-uri", milvus.uri])
        # or: subprocess.Popen([*milvus.exec_prefix, ...])

``milvus.uri`` (``http://127.0.0.1:19530``) is valid only inside the namespace: run clients
with :meth:`MilvusNetns.run` or behind :attr:`MilvusNetns.exec_prefix`. Postgres is reachable
from inside through its unix socket, not through 127.0.0.1: add :data:`POSTGRES_SOCKET_ENV` to
the environment and use URLs without a host (``postgresql+psycopg://postgres@/DBNAME``).

On exit every process in the namespace is stopped (SIGKILL after a short wait: the server
ignores SIGTERM) and the namespace deleted. A namespace left by a run that was itself killed
is removed on the next start.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = ["POSTGRES_SOCKET_ENV", "MilvusNetns", "NetnsUnavailable"]

REPO = Path(__file__).resolve().parents[1]
IP = shutil.which("ip") or "/usr/sbin/ip"
PORT = 19530  # the namespace is new and empty: Milvus's own port is free
PREFIX = "fsmv-"  # namespaces made here: fsmv-<pid of the process that made it>
START_TIMEOUT_S = 180.0
# The server's settings that differ from Milvus's defaults: those deploy/milvus/milvus.yaml
# sets for the compose file (that file says why).
SERVER_CONFIG = {"queryNode.segcore.interimIndex.enableIndex": "false"}
STOP_GRACE_S = 2.0
# Postgres from inside the namespace (whose loopback is its own): a URL without a host makes
# libpq read PGHOST, here the unix socket's folder. SQLAlchemy does not decode a %2F-quoted
# socket path in the host part, so the environment is the one form both psycopg and it take.
POSTGRES_SOCKET_ENV = {
    "PGHOST": "/var/run/postgresql",
    "TEST_PG_ADMIN_URL": "postgresql://postgres@/postgres",  # tests/conftest.py reads it
}


class NetnsUnavailable(RuntimeError):
    """A network namespace cannot be made here (not root, no ``ip``, a sandbox without it)."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([IP, *args], capture_output=True, text=True, check=check, timeout=30)


def _pids(name: str) -> list[int]:
    result = _ip("netns", "pids", name, check=False)
    return [int(p) for p in result.stdout.split() if p.isdigit()]


def _kill_all(name: str) -> None:
    """Stop every process in namespace ``name``: SIGTERM, a short wait, then SIGKILL."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = _pids(name)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + STOP_GRACE_S
        while pids and time.monotonic() < deadline:
            time.sleep(0.1)
            pids = _pids(name)
        if not pids:
            return


def _remove(name: str) -> None:
    _kill_all(name)
    _ip("netns", "del", name, check=False)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_leftovers() -> None:
    """Namespaces of ours whose maker is gone (a killed test run) and what runs in them."""
    listed = _ip("netns", "list", check=False).stdout.split()
    for name in listed:
        owner = name.removeprefix(PREFIX)
        if name.startswith(PREFIX) and owner.isdigit() and not _alive(int(owner)):
            _remove(name)


class MilvusNetns:
    """A Milvus standalone server in a new network namespace; see the module's docstring."""

    def __init__(self, base_dir: Path | str, *, name: str | None = None) -> None:
        self.base_dir = Path(base_dir)
        self.name = name or f"{PREFIX}{os.getpid()}"
        self.uri = f"http://127.0.0.1:{PORT}"
        self.log_path = self.base_dir / "server.log"
        self._server: subprocess.Popen[bytes] | None = None

    @property
    def exec_prefix(self) -> list[str]:
        """Prefix a command with this to run it inside the namespace."""
        return [IP, "netns", "exec", self.name]

    def run(
        self, command: Sequence[str], *, env: dict[str, str] | None = None, **kwargs: Any
    ) -> subprocess.CompletedProcess[Any]:
        """Run ``command`` inside the namespace (``subprocess.run``'s keywords apply)."""
        return subprocess.run([*self.exec_prefix, *command], env=env, check=False, **kwargs)

    def __enter__(self) -> MilvusNetns:
        if os.geteuid() != 0:
            raise NetnsUnavailable("making a network namespace needs root (ip netns add)")
        if not Path(IP).exists():
            raise NetnsUnavailable(f"no `ip` command at {IP} (iproute2)")
        _remove_leftovers()
        _remove(self.name)  # one of ours by that name: a rerun in the same process
        made = _ip("netns", "add", self.name, check=False)
        if made.returncode != 0:
            raise NetnsUnavailable(f"ip netns add failed: {made.stderr.strip()}")
        try:
            up = self.run([IP, "link", "set", "lo", "up"], capture_output=True, text=True)
            if up.returncode != 0:
                raise NetnsUnavailable(f"ip netns exec failed: {up.stderr.strip()}")
            self._start()
        except BaseException:
            _remove(self.name)
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop everything in the namespace and delete it. Safe to call twice."""
        _remove(self.name)
        server, self._server = self._server, None
        if server is not None:
            if server.poll() is None:  # not seen in the namespace: its own session, killed
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)

    def _start(self) -> None:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        ready = self.base_dir / "ready"
        ready.unlink(missing_ok=True)
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        with self.log_path.open("wb") as log:
            self._server = subprocess.Popen(
                [
                    *self.exec_prefix,
                    sys.executable,
                    "-m",
                    "tests.milvus_server",
                    str(self.base_dir / "milvus"),
                    str(ready),
                ],
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C of the test run reaches us, not the server
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while not ready.exists():
            if self._server.poll() is not None:
                raise RuntimeError(f"the Milvus server exited while starting: {self._log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the Milvus server was not healthy within {START_TIMEOUT_S:.0f} s: "
                    f"{self._log_tail()}"
                )
            time.sleep(0.2)

    def _log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"


def _serve(data_dir: str, ready: str) -> None:
    """Inside the namespace: start the server, wait until healthy, say so, then stay."""
    from milvus import default_server  # only here: a 56 MB package

    default_server.set_base_dir(data_dir)
    default_server.listen_port = PORT
    for key, value in SERVER_CONFIG.items():
        default_server.config.set(key, value)
    default_server.start()  # returns once /healthz answers OK
    Path(ready).write_text(str(default_server.server_proc.pid))
    print(f"milvus {default_server.server_address}:{PORT} ready", flush=True)
    while True:  # stopped from outside (every process of the namespace is killed)
        time.sleep(3600)


if __name__ == "__main__":
    _serve(sys.argv[1], sys.argv[2])
