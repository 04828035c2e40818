"""A bounded load generator: a fixed list of reports, a few threads, a deadline, loopback only.

Every report carries its own Idempotency-Key. A 503, a 429 or a connection error is retried
with the same key (after the Retry-After the server asked for, capped), as a well-behaved
agency client would; any other answer is final. The report's summary carries its key too, so
a stored report can be traced back to the request that produced it, whatever its event id.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.faults.harness import Seed, wait_until

SUMMARY_PREFIX = "故障注入报送 "


@dataclass(frozen=True)
class PlannedReport:
    """One report the generator will submit until it is answered."""

    key: str
    unit: str
    task_code: str
    percent: int
    blockers: str | None

    def body(self) -> dict[str, Any]:
        """The JSON body for POST /v1/reports."""
        body: dict[str, Any] = {
            "task_code": self.task_code,
            "percent": self.percent,
            "summary": f"{SUMMARY_PREFIX}{self.key}",
        }
        if self.blockers:
            body["blockers"] = self.blockers
        return body


def key_of_summary(summary: str) -> str | None:
    """The idempotency key a stored report's summary names, if it came from the generator."""
    return summary[len(SUMMARY_PREFIX) :] if summary.startswith(SUMMARY_PREFIX) else None


def plan_reports(seed: Seed, count: int, *, prefix: str) -> list[PlannedReport]:
    """`count` reports spread round-robin over the seeded tasks, each by the task's lead unit.

    Every other report on a task names a blocker, so most reports flip the task's light
    between green and yellow and the tracker emits a task event for it.
    """
    tasks = seed.tasks
    plan = []
    for n in range(count):
        code = tasks[n % len(tasks)]
        turn = n // len(tasks)
        plan.append(
            PlannedReport(
                key=f"{prefix}-{n:05d}",
                unit=seed.lead_of[code],
                task_code=code,
                percent=min(95, 60 + turn),
                blockers="部分项目审批进度滞后" if turn % 2 == 0 else None,
            )
        )
    return plan


@dataclass
class LoadResult:
    """What the clients saw."""

    planned: int
    receipts: dict[str, uuid.UUID] = field(default_factory=dict)
    rejected: dict[str, str] = field(default_factory=dict)
    gave_up: list[str] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    retried: int = 0
    missing_retry_after: int = 0
    receipt_changed: int = 0
    slowest_503: float = 0.0
    elapsed: float = 0.0

    @property
    def attempts(self) -> int:
        """HTTP attempts made, all answers and errors counted."""
        return sum(self.statuses.values())


class LoadGenerator:
    """Submits a plan of reports from a few threads; retries 503, 429 and connection errors."""

    def __init__(
        self,
        intake_url: str,
        keys: Mapping[str, str],
        plan: Sequence[PlannedReport],
        *,
        workers: int = 6,
        deadline_seconds: float = 180.0,
        request_timeout: float = 30.0,
        max_retry_wait: float = 5.0,
        rate_per_second: float | None = None,
    ) -> None:
        self.intake_url = intake_url
        self.keys = dict(keys)
        self.plan = list(plan)
        self.workers = workers
        self.deadline_seconds = deadline_seconds
        self.request_timeout = request_timeout
        self.max_retry_wait = max_retry_wait
        # Paced, the stream is still flowing when a fault hits, as traffic from agencies is.
        self.rate_per_second = rate_per_second
        self.result = LoadResult(planned=len(plan))
        self._lock = threading.Lock()
        self._next = 0
        self._threads: list[threading.Thread] = []
        self._started = 0.0
        self._deadline = 0.0

    def start(self) -> LoadGenerator:
        """Start the client threads."""
        self._started = time.monotonic()
        self._deadline = self._started + self.deadline_seconds
        for n in range(self.workers):
            thread = threading.Thread(target=self._work, name=f"load-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    @property
    def accepted(self) -> int:
        """Reports answered 202 so far."""
        with self._lock:
            return len(self.result.receipts)

    def wait_accepted(self, count: int, *, timeout: float = 120.0) -> None:
        """Block until at least `count` reports were answered 202."""
        wait_until(
            lambda: self.accepted >= count, timeout=timeout, what=f"{count} reports accepted"
        )

    def join(self, *, timeout: float | None = None) -> LoadResult:
        """Wait for every report to be answered (or given up) and return what happened."""
        limit = timeout if timeout is not None else self.deadline_seconds + 60
        for thread in self._threads:
            thread.join(timeout=limit)
            assert not thread.is_alive(), "load generator did not finish"
        self.result.elapsed = time.monotonic() - self._started
        return self.result

    def _take(self) -> PlannedReport | None:
        with self._lock:
            if self._next >= len(self.plan):
                return None
            report = self.plan[self._next]
            self._next += 1
            due = self._started + self._next / self.rate_per_second if self.rate_per_second else 0
        pause = due - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        return report

    def _count(self, status: str) -> None:
        with self._lock:
            self.result.statuses[status] += 1

    def _work(self) -> None:
        with httpx.Client(base_url=self.intake_url, timeout=self.request_timeout) as client:
            while (report := self._take()) is not None:
                self._submit(client, report)

    def _submit(self, client: httpx.Client, report: PlannedReport) -> None:
        headers = {
            "Authorization": f"Bearer {self.keys[report.unit]}",
            "Idempotency-Key": report.key,
        }
        first = True
        while True:
            if time.monotonic() > self._deadline:
                with self._lock:
                    self.result.gave_up.append(report.key)
                return
            if not first:
                with self._lock:
                    self.result.retried += 1
            first = False
            sent_at = time.monotonic()
            try:
                response = client.post("/v1/reports", json=report.body(), headers=headers)
            except httpx.TransportError as exc:
                self._count(type(exc).__name__)
                time.sleep(0.5)
                continue
            self._count(str(response.status_code))
            if response.status_code == 202:
                event_id = uuid.UUID(response.json()["event_id"])
                with self._lock:
                    earlier = self.result.receipts.get(report.key)
                    if earlier is not None and earlier != event_id:
                        self.result.receipt_changed += 1
                    self.result.receipts[report.key] = event_id
                return
            if response.status_code in (429, 503):
                if response.status_code == 503:
                    with self._lock:
                        self.result.slowest_503 = max(
                            self.result.slowest_503, time.monotonic() - sent_at
                        )
                retry_after = response.headers.get("Retry-After")
                if retry_after is None or not retry_after.isdigit():
                    with self._lock:
                        self.result.missing_retry_after += 1
                    wait = 1.0
                else:
                    wait = float(retry_after)
                time.sleep(min(wait, self.max_retry_wait))
                continue
            with self._lock:
                self.result.rejected[report.key] = f"{response.status_code} {response.text[:200]}"
            return
