"""Co-units' parts on the real stack: each co-unit owes a part on the task's cadence, a
missing part is chased with a 催办 to that co-unit alone, and the lead sees and cites parts."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from devtools.servers import Broker
from services.tracker.catalog.model import Deadline, ParsedDocument, ParsedTask
from services.tracker.orm import Report
from services.tracker.policy.supervision import in_force
from shared.clock import SHANGHAI
from shared.db import UnitOfWork
from shared.vocabulary import Cadence, DeadlineKind
from shared.workcal import standard_calendar

from .stack import Stack, running_stack, wait_until

pytestmark = pytest.mark.integration

LEAD, CO = "市发展改革委", "市统计局"
TASK = "T2022-001"


def document() -> ParsedDocument:
    def task(n: int, lead: str, co: str, deadline: Deadline) -> ParsedTask:
        return ParsedTask(
            code=f"T2022-{n:03d}",
            section="一、测试任务",
            item=str(n),
            text=f"测试任务{n}。",
            text_original=f"测试任务{n}。",
            lead_units=(lead,),
            co_units=(co,),
            leaders=("王卫东",),
            deadline=deadline,
            milestones=(),
            targets=(),
            line=n,
        )

    monthly = Deadline(
        text="年内持续推进",
        kind=DeadlineKind.CONTINUOUS,
        cadence=Cadence.MONTHLY,
        summary_due=dt.date(2022, 12, 31),
    )
    # The second task only brings the other units the stack issues keys for.
    complete = Deadline(text="年底前完成", kind=DeadlineKind.COMPLETE, due=dt.date(2022, 12, 31))
    return ParsedDocument(
        title="配合单位测试",
        year=2022,
        format="txt",
        code="T2022",
        kind="table",
        tasks=(task(1, LEAD, CO, monthly), task(2, "市工业和信息化局", "市政务服务办", complete)),
    )


def at(month: int, day: int, hour: int = 10) -> dt.datetime:
    return dt.datetime(2022, month, day, hour, tzinfo=SHANGHAI)


def file(stack: Stack, unit: str, period: str, **fields: Any) -> dict[str, Any]:
    """`unit` reports on the task for `period`; returns the task once the report is applied."""
    status, body = stack.report(unit, TASK, period=period, summary=f"{period}进展。", **fields)
    assert status == 202, body

    def applied() -> bool:
        # Polled in the database: the API's rate limit is not for polling.
        with UnitOfWork(stack.session_factory) as uow:
            found = uow.session.execute(
                select(Report.id).where(Report.event_id == uuid.UUID(body["event_id"]))
            ).first()
            return found is not None

    wait_until(applied, what=f"{unit} {period} applied")
    return stack.task(TASK)


def notices(stack: Stack, **params: Any) -> list[dict[str, Any]]:
    response = stack.notifier.get(
        "/v1/notifications",
        params={"limit": 200, **params},
        headers={"Authorization": f"Bearer {stack.keys['supervisor']}"},
    )
    assert response.status_code == 200, response.text
    return response.json()["items"]  # type: ignore[no-any-return]


def shape(rows: list[dict[str, Any]]) -> list[tuple[int, str, str]]:
    return sorted((r["level"], r["recipient_role"], r["recipient"]) for r in rows)


@pytest.fixture(autouse=True)
def shipped_policy() -> Iterator[None]:
    in_force().install(None, standard_calendar())
    yield
    in_force().install(None, standard_calendar())


def test_a_co_unit_that_skips_two_monthly_parts_gets_two_reminders_addressed_to_it_alone(
    database_url: str, broker: Broker
) -> None:
    # On 2022-01-20 nothing is owed yet (January's report falls due 2月7日, after 春节).
    with running_stack(database_url, broker.bootstrap, start=at(1, 20), document=document()) as s:
        wait_until(lambda: s.notifier.get("/readyz").status_code == 200, what="notifier ready")
        for month in range(1, 8):  # both file January to July ahead
            file(s, LEAD, f"2022-{month:02d}", percent=8 * month)
            file(s, CO, f"2022-{month:02d}", percent=8 * month)

        # August: the lead files on its due day (9月5日), the co-unit does not.
        s.clock.set(at(9, 5))
        file(s, LEAD, "2022-08", percent=70)
        s.clock.set(at(9, 6))
        s.scan()
        task = s.task(TASK)
        # Listed as its own reason; the lead's light stays green (light_lead: false).
        assert (task["light"], task["light_reasons"]) == (
            "green",
            [f"配合单位未报送：{CO}（2022年8月）"],
        )
        [parts] = task["co_unit_parts"]
        assert parts["unit"] == CO
        assert [p["period"] for p in parts["parts"]] == [f"2022-{m:02d}" for m in range(1, 8)]
        assert [m["period"] for m in parts["missing"]] == ["2022-08"]
        wait_until(lambda: len(notices(s, task=TASK)) == 1, what="催办 for August's part")

        # September: due 10月5日 (国庆), moved to 10月8日; the lead files, the co-unit does not.
        s.clock.set(at(10, 8))
        file(s, LEAD, "2022-09", percent=75)
        s.clock.set(at(10, 9))
        s.scan()
        task = s.task(TASK)
        assert (task["light"], task["light_reasons"]) == (
            "green",
            [f"配合单位未报送：{CO}（2022年8月、2022年9月）"],
        )
        wait_until(lambda: len(notices(s, task=TASK)) == 2, what="催办 for September's part")
        # Another tick the same day sends nothing more.
        s.notifier.app.state.workers.tick()  # type: ignore[attr-defined]

        about_task = notices(s, task=TASK)
        assert shape(about_task) == [(1, "co_unit_missing", CO), (1, "co_unit_missing", CO)]
        assert {r["level_name"] for r in about_task} == {"催办"}
        assert {r["status"] for r in about_task} == {"delivered"}
        assert all(f"配合单位未报送：{CO}" in r["body"] for r in about_task)
        # Nothing reached the lead unit or the office about this task; the co-unit heard of
        # no other task.
        assert notices(s, recipient=LEAD, task=TASK) == []
        assert notices(s, recipient="市政府办公厅督查室", task=TASK) == []
        assert shape(notices(s, recipient=CO)) == shape(about_task)


def test_the_lead_sees_each_co_units_parts_and_cites_them(
    database_url: str, broker: Broker
) -> None:
    with running_stack(database_url, broker.bootstrap, start=at(3, 2), document=document()) as s:
        task = file(s, CO, "2022-02", percent=30)
        [part] = [r for r in task["reports"] if r["role"] == "co"]
        own = part["event_id"]

        # A co-unit cannot cite: only the lead's consolidated report does.
        status, body = s.report(CO, TASK, period="2022-02", cites=[own])
        assert status == 422, body
        assert body["detail"][0]["loc"] == ["body", "cites"]
        status, body = s.report(LEAD, TASK, period="2022-02", cites=[own, own])
        assert status == 422, body
        assert body["detail"][0]["loc"] == ["body", "cites"]

        lead = file(s, LEAD, "2022-01", percent=20)
        lead_event = next(r for r in lead["reports"] if r["role"] == "lead")["event_id"]
        # Citing a co-unit part is kept; citing the lead's own report (not a part) is not.
        task = file(s, LEAD, "2022-02", percent=30, cites=[part["event_id"], lead_event])
        consolidated = task["reports"][-1]
        assert consolidated["cites"] == [part["event_id"]]
        assert consolidated["details"]["cites"] == [part["event_id"], lead_event]
        [parts] = task["co_unit_parts"]
        assert parts["unit"] == CO
        assert [(p["period"], p["event_id"], p["cited_by"]) for p in parts["parts"]] == [
            ("2022-02", part["event_id"], [consolidated["event_id"]])
        ]
        # January's part was due 2月7日: it is missing, the lead's light unchanged by it.
        assert [m["period"] for m in parts["missing"]] == ["2022-01"]
        assert task["light"] == "green"
        assert task["light_reasons"] == [f"配合单位未报送：{CO}（2022年1月）"]
        timeline = s.tracker.get(
            f"/v1/tasks/{TASK}/timeline",
            headers={"Authorization": f"Bearer {s.keys['supervisor']}"},
        ).json()["items"]
        filed = [e for e in timeline if e["kind"] == "report"]
        assert filed[0]["summary"] == f"{CO}报送分项进展 30%"
        assert filed[-1]["details"]["cites"] == [part["event_id"]]
