"""The embedded broker writes each message atomically: a consumer polling beside a producer
never reads a message half written (kombu's own filesystem transport can, and Celery then
stops the worker)."""

from __future__ import annotations

import threading
from pathlib import Path

from kombu import Connection

from core.fs_broker import SCHEME
from core.queue import broker_options
from core.settings import Settings

MESSAGES = 300
PAYLOAD = "x" * 200_000  # large enough that writing it takes a while


def connection(folder: Path) -> Connection:
    settings = Settings(_env_file=None, broker_url=f"filesystem://{folder}")  # type: ignore[call-arg]
    url, options = broker_options(settings)
    assert url == f"{SCHEME}://"
    return Connection(url, transport_options=options)


def test_a_consumer_beside_a_producer_reads_every_message_whole(tmp_path: Path) -> None:
    received: list[dict[str, object]] = []
    produced = threading.Event()

    def produce() -> None:
        with connection(tmp_path) as conn, conn.SimpleQueue("work") as queue:
            for n in range(MESSAGES):
                queue.put({"n": n, "payload": PAYLOAD})
        produced.set()

    producer = threading.Thread(target=produce)
    with connection(tmp_path) as conn, conn.SimpleQueue("work") as queue:
        producer.start()
        while len(received) < MESSAGES:
            try:
                message = queue.get(timeout=0.01 if not produced.is_set() else 5)
            except queue.Empty:
                continue
            received.append(message.payload)
            message.ack()
    producer.join()
    assert sorted(m["n"] for m in received) == list(range(MESSAGES))  # type: ignore[type-var]
    assert all(m["payload"] == PAYLOAD for m in received)
    assert not list((tmp_path / "queue").glob("*.partial"))
