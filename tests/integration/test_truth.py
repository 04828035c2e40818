"""A true picture on the real stack: progress figures, half-yearly reports, holiday due dates,
and a policy edit that re-lights open tasks."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from devtools.servers import Broker
from services.tracker.catalog.model import Deadline, ParsedDocument, ParsedTask, Target
from services.tracker.policy.supervision import (
    default_supervision_policy,
    in_force,
    load_supervision_policy,
)
from services.tracker.workers import reload_policy
from shared.clock import SHANGHAI
from shared.vocabulary import Cadence, DeadlineKind, TargetDirection
from shared.workcal import standard_calendar

from .stack import Stack, running_stack, wait_until

pytestmark = pytest.mark.integration

Y_END = dt.date(2022, 12, 31)


def _task(
    n: int, text: str, lead: str, deadline: Deadline, targets: tuple[Target, ...] = ()
) -> ParsedTask:
    return ParsedTask(
        code=f"T2022-{n:03d}",
        section="一、测试任务",
        item=str(n),
        text=text,
        text_original=text,
        lead_units=(lead,),
        co_units=("市统计局",),
        leaders=("王卫东",),
        deadline=deadline,
        milestones=(),
        targets=targets,
        line=n,
    )


def document() -> ParsedDocument:
    gdp = Target(
        indicator="地区生产总值增长", value=Decimal(5), unit="%", direction=TargetDirection.AT_LEAST
    )
    return ParsedDocument(
        title="真实进度测试",
        year=2022,
        format="txt",
        code="T2022",
        kind="table",
        tasks=(
            _task(
                1,
                "地区生产总值增长5%以上。",
                "市发展改革委",
                Deadline(text="年底前完成", kind=DeadlineKind.COMPLETE, due=Y_END),
                (gdp,),
            ),
            _task(
                2,
                "新建5G基站1万个。",
                "市工业和信息化局",
                Deadline(text="年底前完成", kind=DeadlineKind.COMPLETE, due=Y_END),
            ),
            _task(
                3,
                "持续优化营商环境，每半年报送进展。",
                "市政务服务办",
                Deadline(
                    text="年内持续推进，每半年报送",
                    kind=DeadlineKind.CONTINUOUS,
                    cadence=Cadence.HALF_YEARLY,
                    summary_due=Y_END,
                ),
            ),
        ),
    )


def monthly_document() -> ParsedDocument:
    return ParsedDocument(
        title="月报测试",
        year=2022,
        format="txt",
        code="T2022",
        kind="table",
        tasks=(
            _task(
                1,
                "持续优化营商环境。",
                "市发展改革委",
                Deadline(
                    text="年内持续推进",
                    kind=DeadlineKind.CONTINUOUS,
                    cadence=Cadence.MONTHLY,
                    summary_due=Y_END,
                ),
            ),
            *document().tasks[1:],  # keys are issued for their units too
        ),
    )


def at(month: int, day: int, hour: int = 10) -> dt.datetime:
    return dt.datetime(2022, month, day, hour, tzinfo=SHANGHAI)


def due_at(task: dict[str, Any]) -> dt.datetime:
    return dt.datetime.fromisoformat(task["report_due_at"].replace("Z", "+00:00"))


def report_and_wait(stack: Stack, unit: str, code: str, **fields: Any) -> dict[str, Any]:
    count = len(stack.task(code)["reports"])
    status, body = stack.report(unit, code, **fields)
    assert status == 202, body

    def applied() -> dict[str, Any] | None:
        task = stack.task(code)
        return task if len(task["reports"]) > count else None

    return wait_until(applied, what="report applied")


@pytest.fixture(autouse=True)
def shipped_policy() -> Iterator[None]:
    in_force().install(None, standard_calendar())
    yield
    in_force().install(None, standard_calendar())


def test_a_90_percent_report_on_a_5_percent_target_is_not_behind_schedule(
    database_url: str, broker: Broker
) -> None:
    with running_stack(
        database_url, broker.bootstrap, start=at(12, 2), document=document()
    ) as stack:
        gdp = report_and_wait(
            stack, "市发展改革委", "T2022-001", percent=90, summary="增长势头良好。"
        )
        assert gdp["light"] == "green", gdp["light_reasons"]
        assert gdp["progress"] == 90
        # The same schedule with a 30% report is behind, and the reason names its figures.
        slow = report_and_wait(
            stack, "市工业和信息化局", "T2022-002", percent=30, summary="推进中。"
        )
        assert slow["light"] == "yellow"
        assert slow["light_reasons"] == ["序时进度落后 61.8 个百分点（自报 30%，序时 91.8%）"]
        timeline = stack.tracker.get(
            "/v1/tasks/T2022-002/timeline",
            headers={"Authorization": f"Bearer {stack.keys['supervisor']}"},
        ).json()["items"]
        lit = [e for e in timeline if e["kind"] == "light_changed"]
        assert lit[-1]["details"]["policy_version"] == default_supervision_policy().fingerprint[:12]


def test_a_half_yearly_task_owes_two_reports_in_2022_not_twelve(
    database_url: str, broker: Broker
) -> None:
    with running_stack(
        database_url, broker.bootstrap, start=at(6, 20), document=document()
    ) as stack:
        stack.clock.set(dt.datetime(2023, 1, 10, 9, tzinfo=SHANGHAI))
        stack.scan()
        task = stack.task("T2022-003")
        assert task["light"] == "red"
        assert task["light_reasons"] == ["2022年上半年半年报逾期 189 天（累计缺报 2 期）"]
        # The lead files the first half: one report is still owed for 2022, the second half.
        report_and_wait(stack, "市政务服务办", "T2022-003", percent=50, summary="上半年工作。")
        stack.scan()
        task = stack.task("T2022-003")
        assert task["light_reasons"] == ["2022年下半年半年报逾期 5 天"]
        assert due_at(task) == dt.datetime(2023, 1, 5, 23, 59, 59, 999999, tzinfo=SHANGHAI)


def test_a_report_due_on_a_national_holiday_falls_due_on_the_makeup_working_day(
    database_url: str, broker: Broker
) -> None:
    with running_stack(
        database_url, broker.bootstrap, start=at(9, 20), document=monthly_document()
    ) as stack:
        for month in range(1, 9):
            report_and_wait(
                stack,
                "市发展改革委",
                "T2022-001",
                percent=8 * month,
                summary="按月推进。",
                period=f"2022-{month:02d}",
            )
        stack.clock.set(at(10, 7, 20))  # 10-05 (the nominal due day) is 国庆
        stack.scan()
        task = stack.task("T2022-001")
        assert task["light"] == "green", task["light_reasons"]
        assert due_at(task) == dt.datetime(2022, 10, 8, 23, 59, 59, 999999, tzinfo=SHANGHAI)
        stack.clock.set(at(10, 9, 9))
        stack.scan()
        task = stack.task("T2022-001")
        assert (task["light"], task["light_reasons"]) == ("red", ["2022年9月月报逾期 1 天"])


def test_a_policy_edit_relights_every_open_task_and_the_timeline_names_it(
    database_url: str, broker: Broker, tmp_path: Path
) -> None:
    path = tmp_path / "supervision.yaml"
    path.write_text("version: 1\n", encoding="utf-8")
    options = {"supervision_policy": path, "policy_check_seconds": 3600}
    with running_stack(
        database_url,
        broker.bootstrap,
        start=at(12, 2),
        document=document(),
        tracker_options=options,
    ) as stack:
        task = report_and_wait(stack, "市发展改革委", "T2022-001", percent=80, summary="推进中。")
        assert task["light"] == "green"  # 11.8 points behind: within 20
        path.write_text("version: 1\nlights:\n  behind_schedule_points: 10\n", encoding="utf-8")
        assert reload_policy(stack.session_factory, now=stack.clock.now()) is True
        assert stack.scan() == 3  # every open task, in one pass
        task = stack.task("T2022-001")
        assert task["light"] == "yellow"
        assert task["light_reasons"] == ["序时进度落后 11.8 个百分点（自报 80%，序时 91.8%）"]
        timeline = stack.tracker.get(
            "/v1/tasks/T2022-001/timeline",
            headers={"Authorization": f"Bearer {stack.keys['supervisor']}"},
        ).json()["items"]
        lit = [e for e in timeline if e["kind"] == "light_changed"]
        assert (
            lit[-1]["details"]["policy_version"] == load_supervision_policy(path).fingerprint[:12]
        )
        assert lit[-1]["details"]["policy_version"] != default_supervision_policy().fingerprint[:12]
