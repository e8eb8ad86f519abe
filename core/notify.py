"""Waking the API requests that wait on a job (``Prefer: wait=N``, ``GET /v1/jobs/{id}?wait=N``).

- **Who tells**: :func:`job_finished_after_commit`, called by ``services.jobs.close_job``
  (the one way a job ends). It only notes the job id on the session; the id is published on
  Redis (:data:`CHANNEL`) right *after* that session commits, so a waiter that is woken always
  finds the finished row. A rollback drops the note. Publishing is best effort: it is never
  allowed to fail the commit that already happened.
- **Who listens**: one :class:`JobWaiters` per API process, with one Redis connection and one
  thread subscribed to the channel for all its waiters (not a connection per waiter).
- **The row decides, never the message**: a waiter re-reads the job row (with a fresh, short
  session of its own: it holds no database connection while it waits) when it is woken, and
  at least every :data:`RECHECK_S` anyway, so a lost message costs latency, never a wrong
  answer. Without Redis (the embedded mode) or while Redis is away, it re-reads the row every
  :data:`POLL_S` instead.
- **The cap**: at most ``max_waiters`` requests of a process wait at once. A request beyond it
  is answered at once, as if it had not asked to wait, so waiters can never take every thread
  of the API from its other requests.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import event
from sqlalchemy.orm import Session

from core.logging import get_logger
from core.settings import get_settings

log = get_logger(__name__)

# One channel for every job (its messages are job ids): each API process keeps one
# subscription whatever the number of waiters. Jobs end at a few per second at most, so
# every process reading every id costs nothing.
CHANNEL = "facesearch:jobs:finished"
# The longest wait a client may ask for (RFC 7240's ``wait``, and ``?wait=N``).
MAX_WAIT_S = 30
# The safety net while subscribed: a waiter re-reads its row at least this often.
RECHECK_S = 2.0
# Without a subscription (embedded mode, Redis away): how often a waiter re-reads its row.
POLL_S = 0.25
# Redis must never hold a request (or a worker's commit) for long.
REDIS_TIMEOUT_S = 0.5
# A subscription that broke is tried again after this long (waiters poll meanwhile).
RESUBSCRIBE_S = 1.0

_PENDING = "facesearch_finished_jobs"  # Session.info key: jobs ended in this transaction


def is_redis_url(url: str) -> bool:
    return url.startswith(("redis://", "rediss://", "unix://"))


# --- telling ---------------------------------------------------------------------------


def job_finished_after_commit(session: Session, job_id: str) -> None:
    """Publish ``job_id`` on :data:`CHANNEL` once ``session`` commits (not if it rolls back)."""
    session.info.setdefault(_PENDING, set()).add(job_id)


@event.listens_for(Session, "after_commit")
def _publish_pending(session: Session) -> None:
    pending: set[str] | None = session.info.pop(_PENDING, None)
    if pending:
        publish_finished(sorted(pending))


@event.listens_for(Session, "after_rollback")
def _drop_pending(session: Session) -> None:
    session.info.pop(_PENDING, None)


_publisher: tuple[int, str, redis.Redis] | None = None  # (pid, url, client) of this process
_publisher_lock = threading.Lock()


def _publisher_client() -> redis.Redis | None:
    """This process's Redis client for publishing, from the settings' broker URL (None when
    the broker is not Redis: nobody listens then). Rebuilt after a fork."""
    global _publisher  # noqa: PLW0603 (one client per process, made on first use)
    url = get_settings().broker_url
    if not is_redis_url(url):
        return None
    with _publisher_lock:
        if _publisher is None or _publisher[0] != os.getpid() or _publisher[1] != url:
            client = redis.Redis.from_url(
                url, socket_connect_timeout=REDIS_TIMEOUT_S, socket_timeout=REDIS_TIMEOUT_S
            )
            _publisher = (os.getpid(), url, client)
        return _publisher[2]


def publish_finished(job_ids: list[str]) -> None:
    """Tell every listening API process that these jobs ended (best effort)."""
    try:
        client = _publisher_client()
        if client is None:
            return
        pipe = client.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.publish(CHANNEL, job_id)
        pipe.execute()
    except redis.RedisError as exc:
        # The waiters' periodic re-read of the row finds the job ended all the same.
        log.warning("could not publish finished jobs", jobs=job_ids, error=str(exc))


# --- waiting ---------------------------------------------------------------------------


class JobWaiters:
    """The requests of one process that wait on jobs, and the subscription that wakes them."""

    def __init__(
        self,
        redis_url: str | None,
        *,
        max_waiters: int,
        recheck_s: float = RECHECK_S,
        poll_s: float = POLL_S,
    ) -> None:
        self.redis_url = redis_url if redis_url and is_redis_url(redis_url) else None
        self.max_waiters = max_waiters
        self.recheck_s = recheck_s
        self.poll_s = poll_s
        self._slots = threading.BoundedSemaphore(max_waiters) if max_waiters > 0 else None
        self._lock = threading.Lock()
        self._events: dict[str, set[threading.Event]] = {}
        self._waiting = 0
        self._subscribed = threading.Event()
        self._stop = threading.Event()
        self._listener: threading.Thread | None = None
        self._listener_pid = 0

    # What a waiter sees.

    @property
    def waiting(self) -> int:
        """Requests waiting now (for tests and metrics)."""
        return self._waiting

    @property
    def subscribed(self) -> bool:
        """Woken by messages (else waiters poll their rows every ``poll_s``)."""
        return self._subscribed.is_set()

    def wait(self, job_id: str, timeout_s: float, is_finished: Callable[[], bool]) -> bool | None:
        """Wait up to ``timeout_s`` for ``is_finished()`` (which reads the job's row) to say
        yes: True when it did, False when the time ran out, None when this process already
        has ``max_waiters`` waiting (the caller answers at once, as without a wait)."""
        with self._slot() as admitted:
            if not admitted:
                return None
            self._ensure_listener()
            woken = threading.Event()
            self._register(job_id, woken)
            try:
                return self._wait(woken, timeout_s, is_finished)
            finally:
                self._unregister(job_id, woken)

    def _wait(
        self, woken: threading.Event, timeout_s: float, is_finished: Callable[[], bool]
    ) -> bool:
        # Registered before the first read: a message that comes between a read and the
        # sleep after it is not lost (the event stays set).
        deadline = time.monotonic() + timeout_s
        while True:
            if is_finished():
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            woken.wait(min(left, self.recheck_s if self.subscribed else self.poll_s))
            woken.clear()

    @contextmanager
    def _slot(self) -> Iterator[bool]:
        if self._slots is None or not self._slots.acquire(blocking=False):
            yield False
            return
        with self._lock:
            self._waiting += 1
        try:
            yield True
        finally:
            with self._lock:
                self._waiting -= 1
            self._slots.release()

    def _register(self, job_id: str, woken: threading.Event) -> None:
        with self._lock:
            self._events.setdefault(job_id, set()).add(woken)

    def _unregister(self, job_id: str, woken: threading.Event) -> None:
        with self._lock:
            events = self._events.get(job_id)
            if events is not None:
                events.discard(woken)
                if not events:
                    del self._events[job_id]

    def wake(self, job_id: str) -> None:
        with self._lock:
            events = list(self._events.get(job_id, ()))
        for woken in events:
            woken.set()

    def wake_all(self) -> None:
        """Every waiter re-reads its row (messages may have been missed)."""
        with self._lock:
            events = [woken for group in self._events.values() for woken in group]
        for woken in events:
            woken.set()

    # The subscription.

    def _ensure_listener(self) -> None:
        """Start this process's listener thread on first use (after gunicorn's fork: a
        thread started before it would not exist in the worker process)."""
        if self.redis_url is None:
            return
        with self._lock:
            alive = self._listener is not None and self._listener.is_alive()
            if alive and self._listener_pid == os.getpid():
                return
            self._subscribed.clear()
            self._stop.clear()
            self._listener_pid = os.getpid()
            self._listener = threading.Thread(
                target=self._listen, name="facesearch-job-waiters", daemon=True
            )
            self._listener.start()

    def close(self) -> None:
        """Stop the listener (a test's app, or a process that shuts down)."""
        self._stop.set()
        listener = self._listener
        if listener is not None and listener.is_alive():
            listener.join(timeout=5)

    def _listen(self) -> None:
        assert self.redis_url is not None
        while not self._stop.is_set():
            try:
                self._listen_once(self.redis_url)
            except redis.RedisError as exc:
                if self._subscribed.is_set():
                    log.warning("job notifications lost; waiters poll", error=str(exc))
            self._subscribed.clear()
            self.wake_all()  # they poll until the subscription is back
            self._stop.wait(RESUBSCRIBE_S)

    def _listen_once(self, url: str) -> None:
        client: redis.Redis = redis.Redis.from_url(
            url,
            socket_connect_timeout=REDIS_TIMEOUT_S,
            socket_keepalive=True,
            health_check_interval=10,  # a silent, half-open connection is found out
            # No quiet reconnects: a break must reach _listen at once, so that waiters poll
            # and are woken again once the subscription is back.
            retry=Retry(NoBackoff(), 0),
        )
        pubsub = client.pubsub(ignore_subscribe_messages=False)
        try:
            pubsub.subscribe(CHANNEL)
            while not self._stop.is_set():
                message: dict[str, Any] | None = pubsub.get_message(timeout=1.0)
                if message is None:
                    continue
                if message["type"] == "subscribe":
                    self._subscribed.set()
                    # Whatever ended before the subscription was in place was not heard:
                    # every waiter reads its row once more.
                    self.wake_all()
                elif message["type"] == "message":
                    data = message["data"]
                    self.wake(data.decode() if isinstance(data, bytes) else str(data))
        finally:
            pubsub.close()
            client.close()
