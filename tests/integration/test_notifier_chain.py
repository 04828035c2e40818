"""The whole chain with the real tracker: its task events drive the notifier's escalation."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from devtools.servers import Broker
from shared.clock import SHANGHAI

from .stack import Stack, running_stack, wait_until
from .test_notifier_support import OFFICE, shape

pytestmark = pytest.mark.integration


def notices(stack: Stack, **params: Any) -> list[dict[str, Any]]:
    response = stack.notifier.get(
        "/v1/notifications",
        params={"limit": 200, **params},
        headers={"Authorization": f"Bearer {stack.keys['supervisor']}"},
    )
    assert response.status_code == 200, response.text
    return response.json()["items"]  # type: ignore[no-any-return]


def test_tracker_events_escalate_yellow_then_red(database_url: str, broker: Broker) -> None:
    with running_stack(database_url, broker.bootstrap) as stack:
        wait_until(lambda: stack.notifier.get("/readyz").status_code == 200, what="notifier ready")
        # The catalog's first scan lights T2022-001 yellow (behind its pro-rata schedule):
        # a 催办 to its responsible units, lead and co-unit, as soon as the event arrives.
        wait_until(lambda: len(notices(stack, task="T2022-001")) == 2, what="催办 for T2022-001")
        status, _ = stack.report(
            "市发展改革委", "T2022-001", percent=40, summary="按计划推进。", blockers="开工延迟"
        )
        assert status == 202
        wait_until(lambda: stack.task("T2022-001")["reports"], what="report applied")

        stack.clock.set(dt.datetime(2022, 7, 1, 0, 0, 1, tzinfo=SHANGHAI))
        assert stack.scan() >= 1
        wait_until(lambda: len(notices(stack, task="T2022-001")) == 4, what="督办 for T2022-001")
        # Red just after midnight: the 督办 is recorded at once, held until 08:30 (quiet hours).
        held = notices(stack, task="T2022-001", level=2)
        assert {(r["status"], r["held"]) for r in held} == {("pending", True)}
        opening = dt.datetime(2022, 7, 1, 8, 30, tzinfo=SHANGHAI)
        assert {dt.datetime.fromisoformat(r["not_before"]) for r in held} == {opening}
        stack.clock.set(opening)
        stack.notifier.app.state.workers.wake_dispatcher()  # type: ignore[attr-defined]
        wait_until(
            lambda: {r["status"] for r in notices(stack, task="T2022-001")} == {"delivered"},
            what="督办 delivered at 08:30",
        )
        rows = notices(stack, task="T2022-001")
        assert shape(rows) == {
            (1, "responsible_units", "市发展改革委", "T2022-001"),
            (1, "responsible_units", "市统计局", "T2022-001"),
            (2, "lead_unit_leadership", "市发展改革委", "T2022-001"),
            (2, "supervising_office", OFFICE, "T2022-001"),
        }
        assert {r["status"] for r in rows} == {"delivered"}
        assert all("T2022-001" in r["subject"] for r in rows)
        notice = notices(stack, task="T2022-001", level=2)
        assert {r["recipient"] for r in notice} == {"市发展改革委", OFFICE}
        assert {r["level_name"] for r in notice} == {"督办"}
        # A second scan the same day changes nothing.
        stack.scan()
        stack.notifier.app.state.workers.tick()  # type: ignore[attr-defined]
        assert len(notices(stack, task="T2022-001")) == 4
