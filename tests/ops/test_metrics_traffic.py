"""Each service's /metrics moves as it should under real traffic (real Kafka and Postgres).

prometheus_client's registry is process-global and other tests share it, so every check is
a difference between two scrapes of the service's own /metrics endpoint.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from kafka import KafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from devtools.servers import LocalPostgres, start_broker
from services.tracker.workers import TrackerWorkers
from shared import topics
from shared.clock import SHANGHAI
from tests.integration.stack import Stack, running_stack, wait_until

pytestmark = pytest.mark.integration

LEAD = "市发展改革委"  # lead unit of T2022-001 (due 2022-06-30) in the harness' catalog
LEADER = "王卫东"
Labels = frozenset[tuple[str, str]]


@dataclass(frozen=True)
class Scrape:
    """One reading of a /metrics page."""

    samples: dict[tuple[str, Labels], float]

    @classmethod
    def of(cls, client: TestClient) -> Scrape:
        response = client.get("/metrics")
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/plain")
        samples = {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(response.text)
            for sample in family.samples
        }
        return cls(samples)

    def value(self, name: str, **labels: str) -> float:
        """The sample with exactly these labels (0 if absent)."""
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def total(self, name: str, **labels: str) -> float:
        """Sum over every sample whose labels include these."""
        wanted = set(labels.items())
        return sum(v for (n, ls), v in self.samples.items() if n == name and wanted <= ls)

    def series(self, name: str, **labels: str) -> dict[Labels, float]:
        wanted = set(labels.items())
        return {ls: v for (n, ls), v in self.samples.items() if n == name and wanted <= ls}


def moved(before: Scrape, after: Scrape, name: str, **labels: str) -> float:
    return after.total(name, **labels) - before.total(name, **labels)


@pytest.fixture(scope="module")
def stack(postgres: LocalPostgres, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One running stack for the module: starting Kafka consumers is the slow part."""
    database_url = postgres.create_database(
        f"ops_{uuid.uuid4().hex[:12]}", template="duban_template"
    )
    broker = start_broker(log_path=Path(tmp_path_factory.mktemp("broker")) / "tansu.log")
    try:
        with running_stack(database_url, broker.bootstrap) as running:
            wait_until(
                lambda: running.tracker.get("/readyz").status_code == 200, what="tracker ready"
            )
            yield running
    finally:
        broker.stop()


def test_intake_counts_requests_acceptances_rejections_and_publish_latency(stack: Stack) -> None:
    before = Scrape.of(stack.intake)
    status, _ = stack.report(LEAD, "T2022-001", percent=30)
    assert status == 202
    anonymous = stack.intake.post("/v1/reports", json={"task_code": "T2022-001"})
    assert anonymous.status_code == 401
    status, _ = stack.report(LEAD, "T2099-404")
    assert status == 404
    after = Scrape.of(stack.intake)

    rejected = "duban_intake_reports_rejected_total"
    assert moved(before, after, "duban_intake_reports_accepted_total") == 1
    assert moved(before, after, rejected, reason="unauthenticated") == 1
    assert moved(before, after, rejected, reason="unknown_task") == 1
    requests = "duban_intake_http_requests_total"
    assert moved(before, after, requests, route="/v1/reports", status="202") == 1
    assert moved(before, after, requests, route="/v1/reports", status="401") == 1
    assert moved(before, after, requests, route="/v1/reports", status="404") == 1
    latency = "duban_publish_latency_seconds"
    topic = topics.PROGRESS_REPORTS
    assert moved(before, after, f"{latency}_count", topic=topic) == 1
    assert moved(before, after, f"{latency}_sum", topic=topic) > 0
    # The one publish fell into the +Inf bucket and into no bucket below its latency.
    assert moved(before, after, f"{latency}_bucket", topic=topic, le="+Inf") == 1
    assert moved(before, after, "duban_publish_failures_total") == 0
    # Leave nothing in flight for the next test's differences.
    wait_until(lambda: stack.task("T2022-001")["reports"], what="the report applied")


def test_tracker_counts_applied_duplicate_and_dead_lettered_messages(stack: Stack) -> None:
    consumed = "duban_consumer_messages_total"
    topic = topics.PROGRESS_REPORTS
    before = Scrape.of(stack.tracker)

    key = f"ops-{uuid.uuid4()}"
    for _ in range(2):  # the same Idempotency-Key twice: one event id, published twice
        status, _ = stack.report(LEAD, "T2022-001", idempotency_key=key, percent=35)
        assert status == 202
    producer = KafkaProducer(bootstrap_servers=stack_bootstrap(stack))
    try:
        producer.send(topic, key=b"T2022-001", value=b"\x00 not a report").get(timeout=10)
    finally:
        producer.close(timeout=5)

    def settled() -> Scrape | None:
        now = Scrape.of(stack.tracker)
        done = (
            moved(before, now, consumed, topic=topic, outcome="applied") >= 1
            and moved(before, now, consumed, topic=topic, outcome="duplicate") >= 1
            and moved(before, now, consumed, topic=topic, outcome="dlq") >= 1
        )
        return now if done else None

    after = wait_until(settled, timeout=30, what="tracker to apply, skip and dead-letter")
    assert moved(before, after, consumed, topic=topic, outcome="applied") == 1
    assert moved(before, after, consumed, topic=topic, outcome="duplicate") == 1
    assert moved(before, after, consumed, topic=topic, outcome="dlq") == 1
    assert moved(before, after, "duban_tracker_reports_applied_total", role="lead") == 1
    assert moved(before, after, "duban_tracker_http_requests_total", route="/metrics") >= 1

    # Lag is reported per partition of the consumed topic and drains to zero.
    def drained() -> dict[Labels, float] | None:
        lag = Scrape.of(stack.tracker).series("duban_consumer_lag_messages", topic=topic)
        partitions = {dict(labels)["partition"] for labels in lag}
        expected = {str(p) for p in range(stack_partitions(stack))}
        return lag if partitions == expected and not any(lag.values()) else None

    wait_until(drained, timeout=20, what="lag gauges for every partition at 0")


def test_scan_lights_business_gauges_and_notifier_follow_a_task_turning_red(stack: Stack) -> None:
    before_tracker = Scrape.of(stack.tracker)
    before_notifier = Scrape.of(stack.notifier)

    stack.clock.set(dt.datetime(2022, 7, 1, 0, 0, 1, tzinfo=SHANGHAI))
    evaluated = stack.scan()
    assert evaluated >= 3
    after_scan = Scrape.of(stack.tracker)
    assert moved(before_tracker, after_scan, "duban_tracker_scan_duration_seconds_count") == 1
    assert moved(before_tracker, after_scan, "duban_tracker_scan_duration_seconds_sum") > 0
    scanned = moved(before_tracker, after_scan, "duban_tracker_scan_tasks_evaluated_total")
    assert scanned == evaluated
    last_success = after_scan.value("duban_tracker_scan_last_success_timestamp_seconds")
    assert last_success > before_tracker.value("duban_tracker_scan_last_success_timestamp_seconds")
    assert abs(last_success - dt.datetime.now(dt.UTC).timestamp()) < 60, "wall-clock time"
    assert moved(before_tracker, after_scan, "duban_tracker_light_changes_total", light="red") >= 1

    gauges = refreshed_gauges(
        stack,
        lambda now: now.value("duban_tasks", light="red", unit=LEAD) == 1,
        what="duban_tasks{light=red} for the lead unit",
    )
    assert gauges.value("duban_tasks_overdue_by_leader", leader=LEADER) >= 1
    assert gauges.total("duban_tasks") == 3, "every task of the catalog counted once"
    assert moved(before_tracker, gauges, "duban_tracker_outbox_published_total") >= 1
    refreshed_gauges(
        stack,
        lambda now: now.value("duban_tracker_outbox_backlog") == 0,
        what="the outbox backlog back to 0",
    )

    # The red light reaches the notifier: consumed, planned as a level-2 督办 notice, delivered.
    def notified() -> Scrape | None:
        now = Scrape.of(stack.notifier)
        planned = moved(before_notifier, now, "duban_notifier_notifications_planned_total")
        delivered = moved(before_notifier, now, "duban_notifier_deliveries_total")
        return now if planned >= 1 and delivered >= 1 else None

    after = wait_until(notified, timeout=30, what="the notifier to plan and deliver a notice")
    consumed = "duban_consumer_messages_total"
    assert moved(before_notifier, after, consumed, topic=topics.TASK_EVENTS, outcome="applied") >= 1
    assert moved(before_notifier, after, consumed, topic=topics.TASK_EVENTS, outcome="dlq") == 0
    assert moved(before_notifier, after, "duban_notifier_escalation_ticks_total", outcome="ok") >= 1
    assert moved(before_notifier, after, "duban_notifier_escalation_tick_seconds_count") >= 1
    tick = "duban_notifier_escalation_last_success_timestamp_seconds"
    assert after.value(tick) > before_notifier.value(tick)
    planned = "duban_notifier_notifications_planned_total"
    earlier = before_notifier.series(planned)
    grew = {
        dict(labels)["level"]
        for labels, value in after.series(planned).items()
        if value > earlier.get(labels, 0)
    }
    assert "2" in grew, f"red on day 0 is a level-2 督办 notice; levels that grew: {grew}"


def test_business_gauges_count_lights_by_section_and_leader(stack: Stack) -> None:
    gauges = refreshed_gauges(
        stack,
        lambda now: now.total("duban_tasks_by_section") == 3,
        what="duban_tasks_by_section for the catalog",
        timeout=5,
    )
    # The harness' three tasks share one section and one leader.
    assert gauges.total("duban_tasks_by_section", section="一、测试任务") == 3
    assert gauges.total("duban_tasks_by_leader", leader=LEADER) == 3
    red = gauges.value("duban_tasks_by_leader", light="red", leader=LEADER)
    assert red == gauges.value("duban_tasks_overdue_by_leader", leader=LEADER)


def refreshed_gauges(
    stack: Stack, condition: Callable[[Scrape], bool], *, what: str, timeout: float = 20
) -> Scrape:
    """Run the tracker's own gauge-refresh job until its /metrics satisfies `condition`."""
    workers: TrackerWorkers = stack.tracker.app.state.workers  # type: ignore[attr-defined]

    def probe() -> Scrape | None:
        now = Scrape.of(stack.tracker)
        if condition(now):
            return now
        workers.scheduler.get_job("gauges").modify(next_run_time=dt.datetime.now(dt.UTC))
        return None

    return wait_until(probe, timeout=timeout, what=what)


def stack_bootstrap(stack: Stack) -> str:
    assert stack.tracker_settings is not None
    return stack.tracker_settings.kafka_bootstrap_servers


def stack_partitions(stack: Stack) -> int:
    assert stack.tracker_settings is not None
    return stack.tracker_settings.topic_partitions
