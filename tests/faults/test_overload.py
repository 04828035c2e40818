"""Each service driven well past its limits by a second process: it sheds load (200 or 503
with Retry-After, never 500), readiness answers within 1 s throughout, and it is back to
normal within seconds once the load stops.

The tracker and the notifier run on a pool of 2 + 0 connections against 64 concurrent
readers; intake (no database) against 64 concurrent reporters. The readiness bound is the
service's readiness objective, checked from a separate prober while the load runs.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.faults.conftest import StackFactory
from tests.faults.harness import ROOT, FaultStack, Seed, ServiceProcess, wait_until

pytestmark = pytest.mark.faults

CLIENTS = 64
LOAD_SECONDS = 12.0
MAX_REQUESTS = 30_000
READINESS_BOUND_SECONDS = 1.0
RECOVERY_SECONDS = 10.0
SMALL_POOL = {"DUBAN_DB_POOL_SIZE": "2", "DUBAN_DB_MAX_OVERFLOW": "0"}


@dataclass(frozen=True)
class Target:
    """The service under load and the request its clients repeat."""

    service: ServiceProcess
    method: str
    path: str
    token: str
    ok: int
    body: dict[str, Any] | None = None

    def once(self) -> int:
        """One request as the load sends it; its status."""
        headers = {
            "Authorization": f"Bearer {self.token}",
            "Idempotency-Key": f"probe-{time.time_ns()}",
        }
        return httpx.request(
            self.method, self.service.url + self.path, headers=headers, json=self.body, timeout=5
        ).status_code


def some_task(seed: Seed) -> tuple[str, str]:
    """A task and its lead unit's key."""
    code = seed.tasks[0]
    return code, seed.keys[seed.lead_of[code]]


def tracker_target(stack: FaultStack, seed: Seed) -> Target:
    tracker = stack.start_tracker(env=SMALL_POOL)
    code, key = some_task(seed)
    return Target(tracker, "GET", f"/v1/tasks/{code}", key, ok=200)


def notifier_target(stack: FaultStack, seed: Seed) -> Target:
    tracker = stack.start_tracker()  # relays the directory the notifier reads keys from
    wait_until(lambda: stack.outbox_backlog() == 0, timeout=60, what="directory relayed")
    notifier = stack.service("notifier", "notifier", SMALL_POOL)
    notifier.start()
    notifier.wait_ready()
    tracker.stop()  # not needed any more; its CPU is the notifier's
    _code, key = some_task(seed)
    return Target(notifier, "GET", "/v1/notifications", key, ok=200)


def intake_target(stack: FaultStack, seed: Seed) -> Target:
    tracker = stack.start_tracker()
    intake = stack.start_intake()
    tracker.stop()  # the reports wait on the broker; applying them is not under test
    code, key = some_task(seed)
    body = {"task_code": code, "percent": 70, "summary": "过载测试报送"}
    return Target(intake, "POST", "/v1/reports", key, ok=202, body=body)


TARGETS = {"tracker": tracker_target, "notifier": notifier_target, "intake": intake_target}


@dataclass
class Prober:
    """Asks /readyz every 100 ms from its own thread; records every answer's latency."""

    url: str
    latencies: list[float] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with httpx.Client(timeout=10.0) as client:
            while not self.stop.is_set():
                started = time.monotonic()
                try:
                    response = client.get(f"{self.url}/readyz")
                    status = str(response.status_code)
                    if response.status_code != 200:
                        self.refusals.append(response.text[:300])
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                self.latencies.append(time.monotonic() - started)
                self.statuses.append(status)
                self.stop.wait(0.1)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("name", sorted(TARGETS))
def test_overloaded_service_sheds_load_and_stays_ready(
    name: str, stack_factory: StackFactory
) -> None:
    stack = stack_factory()
    seed = stack.seed()
    target = TARGETS[name](stack, seed)
    assert target.once() == target.ok

    prober = Prober(target.service.url)
    probe_thread = threading.Thread(target=prober.run, daemon=True)
    command = [
        sys.executable,
        "-m",
        "tests.faults.overload",
        f"--url={target.service.url}",
        f"--path={target.path}",
        f"--method={target.method}",
        f"--token={target.token}",
        f"--clients={CLIENTS}",
        f"--seconds={LOAD_SECONDS}",
        f"--max-requests={MAX_REQUESTS}",
    ]
    if target.body is not None:
        command += [f"--json={json.dumps(target.body, ensure_ascii=False)}", "--idempotency"]
    probe_thread.start()
    try:
        load = subprocess.run(
            command, cwd=ROOT, capture_output=True, text=True, timeout=LOAD_SECONDS + 60
        )
    finally:
        prober.stop.set()
        probe_thread.join(timeout=15)
    assert load.returncode == 0, load.stderr[-3000:]
    result = json.loads(load.stdout.strip().splitlines()[-1])

    stopped = time.monotonic()
    wait_until(lambda: target.once() == target.ok, timeout=RECOVERY_SECONDS, what="normal answers")
    recovered = time.monotonic() - stopped
    after = [target.once() for _ in range(20)]
    shed = target.service.metric("duban_http_requests_shed_total")
    print(
        f"\n[overload] {name}: {result['requests']} requests in {result['elapsed_seconds']}s "
        f"from {CLIENTS} clients: {result['statuses']}; answers p50 {result['p50_seconds']}s, "
        f"p99 {result['p99_seconds']}s, slowest {result['slowest_seconds']}s; "
        f"shed (metric) {shed:.0f}; /readyz asked "
        f"{len(prober.latencies)}×, slowest {max(prober.latencies):.3f}s; back to normal "
        f"{recovered:.2f}s after the load"
    )

    statuses = set(result["statuses"])
    assert statuses <= {str(target.ok), "503"}, (result["statuses"], result["unexpected"])
    assert result["statuses"].get("503", 0) > 0, "the load never got past the service's limits"
    assert result["statuses"].get(str(target.ok), 0) > 0, "nothing was served under load"
    assert result["missing_retry_after"] == 0
    assert target.service.alive
    # The readiness objective: answered, and ready (busy is not unready), within the bound.
    assert len(prober.latencies) >= LOAD_SECONDS * 2
    assert set(prober.statuses) == {"200"}, (prober.statuses, prober.refusals)
    assert max(prober.latencies) < READINESS_BOUND_SECONDS, sorted(prober.latencies)[-5:]
    assert after == [target.ok] * 20
