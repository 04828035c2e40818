"""The signed JSON webhook against a real HTTP server on loopback."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from services.notifier.channels.base import OutboundMessage
from services.notifier.channels.retry import RetryPolicy
from services.notifier.channels.webhook import WebhookChannel, verify_signature

from ._servers import LocalHttpServer, Reply, Responder, SeenRequest, free_port

SECRET = "webhook-s3cret"
FAST = RetryPolicy(max_attempts=3, initial_wait=0.01, max_wait=0.05, jitter=0.01)
PAYLOAD = {
    "schema_version": 1,
    "subject": "【督办】1 项重点工作已逾期",
    "tasks": [{"task_id": "T-001"}],
}


def message(url: str, secret: str | None = SECRET) -> OutboundMessage:
    return OutboundMessage(
        notification_id="6f1c2a52-5c55-5f0e-9a57-3f0b2d1f1e01",
        recipient="市政府办公厅督查室",
        subject="【督办】1 项重点工作已逾期",
        text="正文",
        markdown="正文",
        html="<p>正文</p>",
        payload=PAYLOAD,
        address=url,
        secret=secret,
    )


def always(reply: Reply) -> Responder:
    return lambda seen, index: reply


def test_delivers_signed_json_with_idempotency_key(
    http_server: Callable[[Responder], LocalHttpServer],
) -> None:
    server = http_server(always(Reply(200)))
    with WebhookChannel(timeout=2.0, retry=FAST, clock=lambda: 1_656_640_000.0) as channel:
        result = channel.send(message(server.url + "/hooks/duban"))
    assert result.ok, result.error
    assert (result.attempts, result.status_code) == (1, 200)
    [seen] = server.requests
    assert seen.path == "/hooks/duban"
    assert json.loads(seen.body.decode("utf-8")) == PAYLOAD
    assert "督办" in seen.body.decode("utf-8")  # UTF-8 on the wire, not \\u escapes
    assert verify_signature(SECRET, seen.body, seen.headers["X-Duban-Signature"])
    assert not verify_signature("wrong", seen.body, seen.headers["X-Duban-Signature"])
    assert seen.headers["X-Duban-Signature"].startswith("sha256=")
    assert seen.headers["Idempotency-Key"] == "6f1c2a52-5c55-5f0e-9a57-3f0b2d1f1e01"
    assert seen.headers["X-Duban-Timestamp"] == "1656640000"
    assert seen.headers["Content-Type"].startswith("application/json")


def test_two_failures_then_success_takes_three_attempts(
    http_server: Callable[[Responder], LocalHttpServer],
) -> None:
    def flaky(seen: SeenRequest, index: int) -> Reply:
        return Reply(503) if index < 2 else Reply(202)

    server = http_server(flaky)
    with WebhookChannel(timeout=2.0, retry=FAST) as channel:
        result = channel.send(message(server.url))
    assert result.ok
    assert (result.attempts, result.status_code) == (3, 202)
    assert len(server.requests) == 3
    # Every retry carries the same idempotency key, so the receiver can drop repeats.
    assert {r.headers["Idempotency-Key"] for r in server.requests} == {
        "6f1c2a52-5c55-5f0e-9a57-3f0b2d1f1e01"
    }


def test_hanging_server_times_out_and_fails(
    http_server: Callable[[Responder], LocalHttpServer],
) -> None:
    def hang(seen: SeenRequest, index: int) -> Reply:
        server.release.wait(timeout=10)
        return Reply(200)

    server = http_server(hang)
    started = time.monotonic()
    with WebhookChannel(timeout=0.2, retry=FAST) as channel:
        result = channel.send(message(server.url))
    elapsed = time.monotonic() - started
    assert not result.ok
    assert result.attempts == 3
    assert result.status_code is None
    assert "timed out" in str(result.error)
    assert len(server.requests) == 3
    assert elapsed < 8  # three 0.2 s timeouts, not the server's 10 s


def test_server_error_forever_fails_after_max_attempts(
    http_server: Callable[[Responder], LocalHttpServer],
) -> None:
    server = http_server(always(Reply(500, b"internal error", "text/plain")))
    retry = RetryPolicy(max_attempts=4, initial_wait=0.01, max_wait=0.02, jitter=0.0)
    with WebhookChannel(timeout=2.0, retry=retry) as channel:
        result = channel.send(message(server.url))
    assert not result.ok
    assert (result.attempts, result.status_code) == (4, 500)
    assert "gave up after 4 attempts" in str(result.error)
    assert len(server.requests) == 4


def test_client_error_is_not_retried(
    http_server: Callable[[Responder], LocalHttpServer],
) -> None:
    server = http_server(always(Reply(400, b'{"error":"bad signature"}')))
    with WebhookChannel(timeout=2.0, retry=FAST) as channel:
        result = channel.send(message(server.url))
    assert not result.ok
    assert (result.attempts, result.status_code) == (1, 400)
    assert "bad signature" in str(result.error)
    assert len(server.requests) == 1


def test_rate_limit_is_retried(http_server: Callable[[Responder], LocalHttpServer]) -> None:
    server = http_server(lambda seen, index: Reply(429) if index == 0 else Reply(200))
    with WebhookChannel(timeout=2.0, retry=FAST) as channel:
        result = channel.send(message(server.url))
    assert result.ok and result.attempts == 2


def test_connection_refused_is_retried_then_fails() -> None:
    url = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens there
    with WebhookChannel(timeout=1.0, retry=FAST) as channel:
        result = channel.send(message(url))
    assert not result.ok
    assert result.attempts == 3
    assert "connection failed" in str(result.error)


def test_unsigned_delivery_is_refused_without_a_request(
    http_server: Callable[[Responder], LocalHttpServer],
) -> None:
    server = http_server(always(Reply(200)))
    with WebhookChannel(timeout=2.0, retry=FAST) as channel:
        result = channel.send(message(server.url, secret=None))
    assert not result.ok and result.attempts == 1
    assert server.requests == []
