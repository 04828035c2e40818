"""The office's queue of pending decisions on real parts: reports through intake, requests
through the tracker's API, the queue read back from Postgres page by page."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pytest

from devtools.servers import Broker
from services.tracker.keys import create_key
from shared.clock import SHANGHAI
from shared.db import UnitOfWork

from .stack import Stack, demo_document, running_stack, wait_until

pytestmark = pytest.mark.integration

GDP, BASE_STATIONS = "T2022-001", "T2022-002"  # leads 市发展改革委 and 市工业和信息化局


def sh(day: int, hour: int) -> dt.datetime:
    return dt.datetime(2022, 5, day, hour, 0, tzinfo=SHANGHAI)


def document() -> Any:
    """The demo catalog with task 3 under another leader (李明), who then has nothing pending."""
    demo = demo_document()
    tasks = (*demo.tasks[:2], dataclasses.replace(demo.tasks[2], leaders=("李明",)))
    return dataclasses.replace(demo, tasks=tasks)


def leader_keys(stack: Stack) -> None:
    with UnitOfWork(stack.session_factory) as uow:
        for name, leader in (("leader", "王卫东"), ("other_leader", "李明")):
            stack.keys[name] = create_key(
                uow.session,
                role="leader",
                unit_name=None,
                leader=leader,
                label="test",
                expires_at=None,
                now=stack.clock.now(),
            ).plaintext
        uow.commit()


def pending(stack: Stack, who: str, **params: Any) -> tuple[int, dict[str, Any]]:
    response = stack.tracker.get(
        "/v1/decisions/pending",
        params=params,
        headers={"Authorization": f"Bearer {stack.keys[who]}"},
    )
    return response.status_code, response.json()


def every_page(stack: Stack, who: str, limit: int) -> list[tuple[str, str, str]]:
    items: list[tuple[str, str, str]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": limit}
        if cursor is not None:
            params["cursor"] = cursor
        status, body = pending(stack, who, **params)
        assert status == 200, body
        assert len(body["items"]) <= limit
        items += [(i["kind"], i["task_code"], i["since"]) for i in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            return items


def post(stack: Stack, who: str, path: str, body: dict[str, Any]) -> tuple[int, Any]:
    response = stack.tracker.post(
        path, json=body, headers={"Authorization": f"Bearer {stack.keys[who]}"}
    )
    return response.status_code, response.json()


def test_the_queue_oldest_first_page_by_page_and_how_items_leave_it(
    database_url: str, broker: Broker
) -> None:
    with running_stack(
        database_url, broker.bootstrap, start=sh(20, 9), document=document()
    ) as stack:
        leader_keys(stack)
        status, gdp_report = stack.report("市发展改革委", GDP, percent=40)
        assert status == 202
        stack.clock.set(sh(20, 10))
        assert stack.report("市统计局", GDP, percent=45)[0] == 202  # a co-unit's part: not queued
        stack.clock.set(sh(21, 9))
        status, station_report = stack.report("市工业和信息化局", BASE_STATIONS, percent=30)
        assert status == 202
        wait_until(
            lambda: len(stack.task(GDP)["reports"]) == 2 and stack.task(BASE_STATIONS)["reports"],
            what="reports applied",
        )
        stack.clock.set(sh(22, 9))
        code, body = post(
            stack,
            "市工业和信息化局",
            f"/v1/tasks/{BASE_STATIONS}/extension-requests",
            {"new_due": "2023-03-31", "reason": "设备到货推迟。"},
        )
        assert code == 200, body
        stack.clock.set(sh(23, 9))
        code, body = post(
            stack, "市发展改革委", f"/v1/tasks/{GDP}/completion-requests", {"summary": "已完成。"}
        )
        assert code == 200, body

        expected = [
            ("report_review", GDP, sh(20, 9)),
            ("report_review", BASE_STATIONS, sh(21, 9)),
            ("extension_request", BASE_STATIONS, sh(22, 9)),
            ("completion_request", GDP, sh(23, 9)),
        ]

        def parsed(items: list[tuple[str, str, str]]) -> list[tuple[str, str, dt.datetime]]:
            return [(k, c, dt.datetime.fromisoformat(s)) for k, c, s in items]

        for limit in (1, 3, 50):
            assert parsed(every_page(stack, "supervisor", limit)) == expected
        assert parsed(every_page(stack, "leader", 2)) == expected  # 王卫东's tasks
        assert every_page(stack, "other_leader", 2) == []

        status, body = pending(stack, "supervisor", limit=1)
        (first,) = body["items"]
        assert (first["unit"], first["event_id"], first["task_title"]) == (
            "市发展改革委",
            gdp_report["event_id"],
            "地区生产总值增长5%以上。",
        )
        assert [a["path"] for a in first["actions"]] == [
            f"/v1/tasks/{GDP}/reports/{gdp_report['event_id']}/accept",
            f"/v1/tasks/{GDP}/returns",
        ]

        for who in ("市发展改革委", "市统计局"):
            status, body = pending(stack, who)
            assert (status, body["detail"]["code"]) == (403, "role_not_allowed")
        status, body = pending(stack, "supervisor", cursor="not-a-cursor")
        assert (status, body["detail"]["code"]) == (422, "invalid_cursor")
        status, body = pending(stack, "supervisor", limit=0)
        assert (status, body["detail"][0]["loc"]) == (422, ["query", "limit"])

        # 接受 and 退回 take a report out of the queue; 同意延期 and 销号 take the requests.
        accept = f"/v1/tasks/{BASE_STATIONS}/reports/{station_report['event_id']}/accept"
        code, body = post(stack, "市工业和信息化局", accept, {"comment": ""})
        assert (code, body["detail"]["code"]) == (403, "only_supervisor_accepts_reports")
        code, body = post(stack, "supervisor", accept, {"comment": "内容翔实。"})
        assert code == 200, body
        assert body["reports"][0]["accepted_at"] is not None
        code, body = post(stack, "supervisor", accept, {"comment": ""})
        assert (code, body["detail"]["code"]) == (409, "report_already_accepted")
        code, body = post(
            stack,
            "supervisor",
            f"/v1/tasks/{GDP}/returns",
            {"event_id": gdp_report["event_id"], "comment": "请补充完成依据。"},
        )
        assert code == 200, body
        assert parsed(every_page(stack, "supervisor", 2)) == [expected[2]]
        code, body = post(
            stack, "supervisor", f"/v1/tasks/{BASE_STATIONS}/extension-requests/grant", {}
        )
        assert code == 200, body
        assert every_page(stack, "supervisor", 2) == []

        timeline = stack.tracker.get(
            f"/v1/tasks/{BASE_STATIONS}/timeline",
            headers={"Authorization": f"Bearer {stack.keys['supervisor']}"},
        ).json()
        kinds = [e["kind"] for e in timeline["items"]]
        assert "report_accepted" in kinds
        (report,) = [e for e in timeline["items"] if e["kind"] == "report"]
        assert report["details"]["accepted"] is True
