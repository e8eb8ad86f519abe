"""A real HTTP receiver on 127.0.0.1 for the webhook tests: it answers from a script and
keeps every request it got (path, headers, raw body). Given a secret, it checks each request's
signature with the ``standardwebhooks`` library, as a receiver would, and answers 400 to one
that does not verify."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook, WebhookVerificationError


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Answer:
    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


Verifier = Callable[[Received], bool]
REJECTED = Answer(400, b"signature does not verify")


def verified_with(secret: str | bytes) -> Verifier:
    """A check of a request's Standard Webhooks headers by the library, holding ``secret``
    (a ``whsec_`` string, or the key's bytes)."""
    webhook = Webhook(secret)

    def verify(request: Received) -> bool:
        try:
            webhook.verify(request.body, request.headers, json_parse=False)
        except WebhookVerificationError:
            return False
        return True

    return verify


class Receiver:
    def __init__(self, server: ThreadingHTTPServer) -> None:
        self.server = server
        self.requests: list[Received] = []
        self.script: list[Answer] = []  # answers in order; then `default`
        self.default = Answer()
        # When set, a request that it refuses is answered REJECTED (and takes no scripted answer).
        self.verify: Verifier | None = None
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def next_answer(self, request: Received) -> Answer:
        with self.lock:
            self.requests.append(request)
            if self.verify is not None and not self.verify(request):
                return REJECTED
            return self.script.pop(0) if self.script else self.default

    def wait_for(self, count: int, timeout_s: float) -> list[Received]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.requests) >= count:
                    return list(self.requests)
            time.sleep(0.05)
        with self.lock:
            return list(self.requests)


def _handler(receiver_ref: list[Receiver]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            request = Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            answer = receiver_ref[0].next_answer(request)
            if answer.delay_s:
                time.sleep(answer.delay_s)
            try:
                self.send_response(answer.status)
                for key, value in answer.headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout test, or a body it would not read)

        do_GET = do_POST

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@contextmanager
def running_receiver() -> Iterator[Receiver]:
    ref: list[Receiver] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(ref))
    server.daemon_threads = True
    receiver = Receiver(server)
    ref.append(receiver)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
