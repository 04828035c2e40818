"""A webhook receiver on loopback, as an agency's system would run one.

It verifies the signature, records every delivery it is handed (before answering), and, like
any receiver of at-least-once webhooks, treats a second delivery with an Idempotency-Key it
has already seen as a replay. It can be taken down (its port refuses connections) and brought
back on the same port, and it can hold one request unanswered so the sender can be killed
while that delivery is in flight.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from devtools.servers import free_port


@dataclass(frozen=True)
class Delivery:
    """One POST the receiver was handed."""

    key: str
    notification_id: str
    notification_ids: tuple[str, ...]
    recipient: str
    level: int
    task_codes: tuple[str, ...]
    signed: bool
    at: float


class WebhookReceiver:
    """Records signed webhook deliveries; can go down, come back, and hold a request."""

    def __init__(self, secret: str, *, delay: float = 0.0) -> None:
        self.secret = secret
        self.delay = delay
        self.port = free_port()
        self.deliveries: list[Delivery] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._hold_at: int | None = None
        self.holding = threading.Event()
        self._release = threading.Event()

    @property
    def url(self) -> str:
        """Where the notifier posts."""
        return f"http://127.0.0.1:{self.port}/duban/webhook"

    @property
    def up(self) -> bool:
        """True while the port accepts connections."""
        return self._server is not None

    def received(self) -> list[Delivery]:
        """Every delivery so far, replays included."""
        with self._lock:
            return list(self.deliveries)

    def hold_request(self, number: int) -> None:
        """Record the `number`-th delivery, then leave it unanswered until `release`."""
        self._hold_at = number
        self.holding.clear()
        self._release.clear()

    def release(self) -> None:
        """Answer the held request (its sender may be gone by then)."""
        self._release.set()

    def start(self) -> None:
        """Listen (again) on the receiver's port."""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                expected = (
                    "sha256=" + hmac.new(receiver.secret.encode(), body, hashlib.sha256).hexdigest()
                )
                signed = hmac.compare_digest(expected, self.headers.get("X-Duban-Signature", ""))
                payload = json.loads(body)
                delivery = Delivery(
                    key=self.headers.get("Idempotency-Key", ""),
                    notification_id=str(payload.get("notification_id")),
                    notification_ids=tuple(payload.get("notification_ids", ())),
                    recipient=str(payload.get("recipient", {}).get("name")),
                    level=int(payload.get("level", 0)),
                    task_codes=tuple(t["task_id"] for t in payload.get("tasks", ())),
                    signed=signed,
                    at=time.monotonic(),
                )
                with receiver._lock:
                    receiver.deliveries.append(delivery)
                    number = len(receiver.deliveries)
                if number == receiver._hold_at:
                    receiver.holding.set()
                    receiver._release.wait(timeout=60)
                elif receiver.delay:
                    time.sleep(receiver.delay)
                try:
                    self.send_response(200 if signed else 401)
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    self.wfile.write(b'{"ok": true}')
                except OSError:
                    pass  # the sender died while we held its request

            def log_message(self, format: str, *args: object) -> None:
                return

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="webhook", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop listening: new connections are refused until `start`."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
