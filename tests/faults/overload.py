"""An overload generator, run as its own process: many clients hammer one route, bounded.

    python -m tests.faults.overload --url http://127.0.0.1:8002 --path /v1/tasks/T \\
        --token dbn_… --clients 64 --seconds 12 --max-requests 20000

Each client sends its next request as soon as the last one is answered, and does *not*
wait the Retry-After it is given: the point is to stay past the service's limits for the
whole run. It stops at the deadline or after `--max-requests` in all, whichever comes
first, and prints one JSON object: the answers by status, how many 503s lacked a
Retry-After, the slowest answer, and a sample of unexpected bodies. Loopback only.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class Tally:
    """What the clients saw, shared by their threads."""

    statuses: Counter[str] = field(default_factory=Counter)
    missing_retry_after: int = 0
    slowest: float = 0.0
    latencies: list[float] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    sent: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, limit: int) -> bool:
        """Reserve one request of the budget; False once it is spent."""
        with self.lock:
            if self.sent >= limit:
                return False
            self.sent += 1
            return True

    def record(self, status: str, seconds: float, response: httpx.Response | None) -> None:
        with self.lock:
            self.statuses[status] += 1
            self.slowest = max(self.slowest, seconds)
            self.latencies.append(seconds)
            if response is None:
                return
            if response.status_code == 503 and "Retry-After" not in response.headers:
                self.missing_retry_after += 1
            if response.status_code not in (200, 202, 503) and len(self.unexpected) < 5:
                self.unexpected.append(f"{response.status_code} {response.text[:300]}")

    def summary(self, elapsed: float) -> dict[str, Any]:
        ordered = sorted(self.latencies) or [0.0]

        def quantile(q: float) -> float:
            return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)

        return {
            "statuses": dict(self.statuses),
            "missing_retry_after": self.missing_retry_after,
            "slowest_seconds": round(self.slowest, 3),
            "p50_seconds": quantile(0.5),
            "p99_seconds": quantile(0.99),
            "unexpected": self.unexpected,
            "requests": sum(self.statuses.values()),
            "elapsed_seconds": round(elapsed, 2),
        }


def client_loop(args: argparse.Namespace, tally: Tally, deadline: float) -> None:
    headers = {"Authorization": f"Bearer {args.token}"}
    body = json.loads(args.json) if args.json else None
    with httpx.Client(base_url=args.url, timeout=args.timeout) as client:
        while time.monotonic() < deadline and tally.take(args.max_requests):
            if args.idempotency:
                headers["Idempotency-Key"] = f"overload-{uuid.uuid4()}"
            started = time.monotonic()
            try:
                response = client.request(args.method, args.path, headers=headers, json=body)
            except httpx.TransportError as exc:
                tally.record(type(exc).__name__, time.monotonic() - started, None)
                time.sleep(0.05)
                continue
            tally.record(str(response.status_code), time.monotonic() - started, response)


def main(argv: list[str] | None = None) -> None:
    """Run the clients until the deadline or the request budget; print the tally as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--path", required=True)
    parser.add_argument("--method", default="GET")
    parser.add_argument("--token", required=True)
    parser.add_argument("--json", help="a JSON request body")
    parser.add_argument("--idempotency", action="store_true", help="a fresh Idempotency-Key each")
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--max-requests", type=int, default=20_000)
    parser.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args(argv)
    if not args.url.startswith(("http://127.0.0.1:", "http://localhost:")):
        parser.error("loopback only")
    tally = Tally()
    started = time.monotonic()
    deadline = started + args.seconds
    threads = [
        threading.Thread(target=client_loop, args=(args, tally, deadline), daemon=True)
        for _ in range(args.clients)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=args.seconds + args.timeout + 5)
    print(json.dumps(tally.summary(time.monotonic() - started), ensure_ascii=False), flush=True)


if __name__ == "__main__":
    main()
