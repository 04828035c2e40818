"""A report travels intake → broker → tracker → overdue flag → notifier, on real parts."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from sqlalchemy import func, select

from devtools.servers import Broker
from services.tracker.orm import Report
from shared import topics
from shared.clock import SHANGHAI
from shared.db import UnitOfWork
from shared.events import ProgressReport, ProgressReportSubmitted, encode

from .stack import Stack, running_stack, wait_until

pytestmark = pytest.mark.integration


def report_count(stack: Stack) -> int:
    with UnitOfWork(stack.session_factory) as uow:
        query = select(func.count()).select_from(Report)
        return int(uow.session.execute(query).scalar_one())


def topic_size(bootstrap: str, topic: str) -> int:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        return sum(consumer.end_offsets(partitions).values())
    finally:
        consumer.close()


def test_report_reaches_tracker_then_overdue_flag_reaches_notifier(
    database_url: str, broker: Broker
) -> None:
    with running_stack(database_url, broker.bootstrap) as stack:
        status, receipt = stack.report(
            "市发展改革委",
            "T2022-001",
            percent=40,
            summary="一季度地区生产总值增长4.8%。",
            blockers="部分重点项目开工延迟",
        )
        assert status == 202, receipt
        event_id = receipt["event_id"]

        task = wait_until(
            lambda: (t := stack.task("T2022-001"))["reports"] and t, what="report applied"
        )
        assert [r["event_id"] for r in task["reports"]] == [event_id]
        assert task["reports"][0]["unit"] == "市发展改革委"
        assert task["reports"][0]["blockers"] == "部分重点项目开工延迟"
        assert task["status"] == "in_progress"
        assert task["percent"] == 40

        # Past the due date (2022-06-30) in Asia/Shanghai: the scan flags it red.
        stack.clock.set(dt.datetime(2022, 7, 1, 0, 0, 1, tzinfo=SHANGHAI))
        assert stack.scan() >= 1
        task = stack.task("T2022-001")
        assert task["light"] == "red"
        assert task["days_overdue"] == 1

        office = stack.keys["supervisor"]

        def notices() -> list[dict[str, Any]]:
            response = stack.notifier.get(
                "/v1/notifications",
                params={"task": "T2022-001", "level": 2},
                headers={"Authorization": f"Bearer {office}"},
            )
            assert response.status_code == 200, response.text
            return response.json()["items"]  # type: ignore[no-any-return]

        def both_notices() -> list[dict[str, Any]] | None:
            found = notices()
            return found if len(found) >= 2 else None

        held = wait_until(both_notices, what="notifications")
        # Red just after midnight: the 督办 is recorded at once, held until 08:30 (quiet hours).
        opening = dt.datetime(2022, 7, 1, 8, 30, tzinfo=SHANGHAI)
        assert {(n["status"], n["held"]) for n in held} == {("pending", True)}
        assert {dt.datetime.fromisoformat(n["not_before"]) for n in held} == {opening}
        stack.clock.set(opening)
        stack.notifier.app.state.workers.wake_dispatcher()  # type: ignore[attr-defined]

        def all_delivered() -> list[dict[str, Any]] | None:
            found = notices()
            return found if {n["status"] for n in found} == {"delivered"} else None

        delivered = wait_until(all_delivered, what="督办 delivered at 08:30")
        assert {n["recipient"] for n in delivered} == {"市发展改革委", "市政府办公厅督查室"}
        assert all(n["status"] == "delivered" and n["level_name"] == "督办" for n in delivered)
        assert all("T2022-001" in n["subject"] for n in delivered)

        # A second scan the same day flags nothing new: the light did not change.
        stack.scan()
        assert len(notices()) == 2


def test_same_idempotency_key_is_stored_once(database_url: str, broker: Broker) -> None:
    with running_stack(database_url, broker.bootstrap) as stack:
        first = stack.report("市发展改革委", "T2022-001", idempotency_key="r-2022-05-a")
        second = stack.report("市发展改革委", "T2022-001", idempotency_key="r-2022-05-a")
        assert first[0] == second[0] == 202
        assert first[1]["event_id"] == second[1]["event_id"]
        other = stack.report("市发展改革委", "T2022-001", idempotency_key="r-2022-05-b")
        assert other[1]["event_id"] != first[1]["event_id"]
        wait_until(lambda: report_count(stack) == 2, what="two distinct reports")
        # Both copies of the first were on the topic; the history holds it once.
        assert topic_size(broker.bootstrap, topics.PROGRESS_REPORTS) == 3
        task = stack.task("T2022-001")
        assert sorted(r["event_id"] for r in task["reports"]) == sorted(
            [first[1]["event_id"], other[1]["event_id"]]
        )


def test_redelivered_event_is_applied_once(database_url: str, broker: Broker) -> None:
    with running_stack(database_url, broker.bootstrap) as stack:
        event = ProgressReportSubmitted(
            event_id=uuid.uuid4(),
            occurred_at=stack.clock.now(),
            task_code="T2022-002",
            unit="市工业和信息化局",
            key_id="test",
            report=ProgressReport(percent=30, summary="已建成基站3000个。"),
        )
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
        for _ in range(3):
            producer.send(topics.PROGRESS_REPORTS, key=b"T2022-002", value=encode(event))
        producer.flush()
        producer.close()
        # A later, different report proves the consumer got past all three copies.
        status, _ = stack.report("市工业和信息化局", "T2022-002", percent=35)
        assert status == 202
        wait_until(lambda: report_count(stack) == 2, what="later report applied")
        task = stack.task("T2022-002")
        assert [r["event_id"] for r in task["reports"]].count(str(event.event_id)) == 1


def test_poison_messages_go_to_the_dlq_and_the_consumer_moves_on(
    database_url: str, broker: Broker
) -> None:
    with running_stack(database_url, broker.bootstrap) as stack:
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
        unknown_task = ProgressReportSubmitted(
            event_id=uuid.uuid4(),
            occurred_at=stack.clock.now(),
            task_code="NO-SUCH-TASK",
            unit="市工业和信息化局",
            key_id="test",
            report=ProgressReport(percent=30, summary="x"),
        )
        future_version = json.loads(encode(unknown_task))
        future_version.update(schema_version=99, task_code="T2022-002")
        for value in (
            b"\xff\xfe not json",
            encode(unknown_task),
            json.dumps(future_version).encode(),
        ):
            producer.send(topics.PROGRESS_REPORTS, key=b"T2022-002", value=value)
        producer.flush()
        producer.close()
        status, _ = stack.report("市工业和信息化局", "T2022-002", percent=35)
        assert status == 202
        wait_until(lambda: report_count(stack) == 1, what="good report applied after poison")
        dlq = KafkaConsumer(
            topics.dlq(topics.PROGRESS_REPORTS),
            bootstrap_servers=broker.bootstrap,
            auto_offset_reset="earliest",
            consumer_timeout_ms=5000,
        )
        errors = sorted(dict(m.headers)["error"].decode() for m in dlq)
        dlq.close()
        assert len(errors) == 3
        assert any("unknown task" in e for e in errors)
        assert any("schema_version" in e for e in errors)
