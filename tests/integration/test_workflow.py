"""The supervision cycle on real parts: report, return, resubmit, extension, sign-off."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections import Counter
from typing import Any

import pytest
from kafka import KafkaConsumer
from sqlalchemy import select

from devtools.servers import Broker
from services.tracker.orm import OutboxMessage
from services.tracker.workers import scan_once
from shared import topics
from shared.clock import SHANGHAI
from shared.db import UnitOfWork

from .stack import Stack, running_stack, wait_until

pytestmark = pytest.mark.integration

TASK = "T2022-001"  # lead 市发展改革委, co-unit 市统计局, due 2022-06-30


def act(stack: Stack, who: str, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    response = stack.tracker.post(
        f"/v1/tasks/{TASK}/{path}",
        json=body,
        headers={"Authorization": f"Bearer {stack.keys[who]}"},
    )
    return response.status_code, response.json()


def task_events(bootstrap: str) -> list[dict[str, Any]]:
    consumer = KafkaConsumer(
        topics.TASK_EVENTS,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        consumer_timeout_ms=3000,
    )
    try:
        return [json.loads(m.value) for m in consumer]
    finally:
        consumer.close()


def test_a_task_walks_the_whole_cycle_and_each_step_is_emitted_once(
    database_url: str, broker: Broker
) -> None:
    with running_stack(database_url, broker.bootstrap) as stack:
        status, first = stack.report("市发展改革委", TASK, percent=30, summary="一季度增长4.8%。")
        assert status == 202
        wait_until(lambda: stack.task(TASK)["reports"], what="first report")

        # The office returns it; the task is 已退回 and the unit must resubmit.
        code, body = act(
            stack,
            "supervisor",
            "returns",
            {"event_id": first["event_id"], "comment": "数据口径不清，请补充说明。"},
        )
        assert code == 200, body
        assert body["status"] == "returned"
        assert body["return_comment"] == "数据口径不清，请补充说明。"
        assert body["reports"][0]["returned_at"] is not None

        status, _ = stack.report("市发展改革委", TASK, percent=35, summary="补充：按可比价格计算。")
        assert status == 202
        wait_until(lambda: stack.task(TASK)["status"] == "in_progress", what="resubmitted")

        # Extension asked before the due date, granted by the office; the original is kept.
        stack.clock.set(dt.datetime(2022, 6, 20, 9, 0, tzinfo=SHANGHAI))
        code, body = act(
            stack,
            "市发展改革委",
            "extension-requests",
            {"new_due": "2022-09-30", "reason": "受疫情影响，重点项目开工推迟。"},
        )
        assert code == 200, body
        assert body["pending_extension"]["requested_due"] == "2022-09-30"
        code, body = act(stack, "supervisor", "extension-requests/grant", {"comment": "同意。"})
        assert code == 200, body
        assert (body["due"], body["original_due"]) == ("2022-09-30", "2022-06-30")
        assert body["pending_extension"] is None

        # Past the original date but within the extension: not red.
        stack.clock.set(dt.datetime(2022, 7, 5, 9, 0, tzinfo=SHANGHAI))
        stack.scan()
        assert stack.task(TASK)["light"] != "red"

        code, body = act(
            stack,
            "市发展改革委",
            "completion-requests",
            {"summary": "上半年地区生产总值增长5.1%，目标完成。"},
        )
        assert code == 200, body
        assert (body["status"], body["light"]) == ("completion_requested", "blue")

        code, body = act(stack, "supervisor", "close", {"comment": "核验属实，予以销号。"})
        assert code == 200, body
        assert (body["status"], body["light"]) == ("closed", "grey")

        timeline = stack.tracker.get(
            f"/v1/tasks/{TASK}/timeline",
            headers={"Authorization": f"Bearer {stack.keys['supervisor']}"},
        ).json()["items"]
        kinds = [entry["kind"] for entry in timeline]
        for expected in (
            "report",
            "report_returned",
            "extension_requested",
            "extension_granted",
            "completion_requested",
            "closed",
            "light_changed",
        ):
            assert expected in kinds, (expected, kinds)
        assert kinds.count("report") == 2
        assert [e["at"] for e in timeline] == sorted(e["at"] for e in timeline)

        def relayed() -> list[dict[str, Any]] | None:
            with UnitOfWork(stack.session_factory) as uow:
                pending = uow.session.execute(
                    select(OutboxMessage).where(OutboxMessage.published_at.is_(None))
                ).first()
            return None if pending else task_events(broker.bootstrap)

        events = wait_until(relayed, what="outbox relayed")
        actions = Counter(e["action"] for e in events if e["event_type"] == "task.action_recorded")
        assert actions == Counter(
            {
                "report_returned": 1,
                "extension_requested": 1,
                "extension_granted": 1,
                "completion_requested": 1,
                "closed": 1,
            }
        )
        statuses = [
            e["status"]
            for e in events
            if e["event_type"] == "task.condition_changed" and e["task_code"] == TASK
        ]
        assert statuses[-2:] == ["completion_requested", "closed"]
        assert "returned" in statuses

        # A closed task no longer takes reports at intake.
        wait_until(lambda: stack.report("市发展改革委", TASK)[0] == 409, what="intake refuses")


def test_invalid_transitions_name_the_rule(database_url: str, broker: Broker) -> None:
    with running_stack(database_url, broker.bootstrap) as stack:
        code, body = act(stack, "supervisor", "close", {})
        assert code == 409 and body["detail"]["code"] == "close_without_completion_request"

        code, body = act(stack, "市统计局", "completion-requests", {"summary": "已完成。"})
        assert code == 403 and body["detail"]["code"] == "co_unit_cannot_request_completion"

        code, body = act(stack, "市发展改革委", "close", {})
        assert code == 403 and body["detail"]["code"] == "only_supervisor_closes"

        stack.clock.set(dt.datetime(2022, 7, 1, 0, 0, tzinfo=SHANGHAI))
        code, body = act(
            stack,
            "市发展改革委",
            "extension-requests",
            {"new_due": "2022-09-30", "reason": "来不及。"},
        )
        assert code == 409 and body["detail"]["code"] == "extension_after_due"

        code, body = act(stack, "supervisor", "extension-requests/grant", {})
        assert code == 409 and body["detail"]["code"] == "no_pending_extension"

        # Another unit's task looks like no task at all.
        code, body = act(stack, "市工业和信息化局", "completion-requests", {"summary": "x"})
        assert code == 404

        code, body = act(
            stack,
            "市发展改革委",
            "extension-requests",
            {"new_due": "2022-09-30", "reason": "x", "status": "closed"},
        )
        assert code == 422 and body["detail"][0]["loc"] == ["body", "status"]
        assert stack.task(TASK)["status"] == "not_started"


def test_a_report_filed_the_minute_before_the_deadline_is_on_time(
    database_url: str, broker: Broker
) -> None:
    with running_stack(
        database_url, broker.bootstrap, start=dt.datetime(2022, 6, 30, 23, 59, tzinfo=SHANGHAI)
    ) as stack:
        status, _ = stack.report("市发展改革委", TASK, percent=100, summary="目标完成。")
        assert status == 202
        wait_until(lambda: stack.task(TASK)["reports"], what="report")
        code, body = act(stack, "市发展改革委", "completion-requests", {"summary": "目标完成。"})
        assert code == 200 and body["light"] == "blue"
        stack.clock.set(dt.datetime(2022, 7, 1, 0, 0, 1, tzinfo=SHANGHAI))
        stack.scan()
        assert stack.task(TASK)["light"] == "blue"


def test_two_scanners_on_one_database_never_flag_a_task_twice(
    database_url: str, broker: Broker
) -> None:
    with running_stack(database_url, broker.bootstrap) as stack:
        later = dt.datetime(2022, 7, 1, 0, 0, 1, tzinfo=SHANGHAI)
        barrier = threading.Barrier(2)
        counts: list[int] = []

        def scanner() -> None:
            barrier.wait()
            counts.append(scan_once(stack.session_factory, now=later, batch_size=1))

        threads = [threading.Thread(target=scanner) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        with UnitOfWork(stack.session_factory) as uow:
            rows = (
                uow.session.execute(
                    select(OutboxMessage.payload).where(OutboxMessage.topic == topics.TASK_EVENTS)
                )
                .scalars()
                .all()
            )
        events = [json.loads(p) for p in rows if p is not None]
        assert len(events) == len(rows)  # only the directory has tombstones
        red = Counter(e["task_code"] for e in events if e.get("light") == "red")
        # T2022-001 is past due; T2022-003 (continuous) missed its reports. Once each, and
        # T2022-003 once more when its co-unit's May part went missing (a new condition).
        assert red == Counter({TASK: 1, "T2022-003": 2})
        parts = [
            [p["period"] for p in e["missing_parts"]]
            for e in sorted(events, key=lambda e: e["occurred_at"])
            if e["task_code"] == "T2022-003" and e.get("light") == "red"
        ]
        assert parts == [
            ["2022-01", "2022-02", "2022-03", "2022-04"],
            ["2022-01", "2022-02", "2022-03", "2022-04", "2022-05"],
        ]
        assert sum(counts) >= 1
