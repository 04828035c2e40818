"""Escalation end to end: task events on the real broker, ticks at a controlled clock,
notifications read back through the API (the local policy: every recipient on the inbox)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from devtools.servers import Broker

from .stack import wait_until
from .test_notifier_support import (
    OFFICE,
    Notifier,
    any_hour_policy,
    condition,
    notifier_settings,
    publish_events,
    rows_by_digest,
    running_notifier,
    sh,
    shape,
)

pytestmark = pytest.mark.integration

HOUSING = "市住房城乡建设委"  # lead unit of T-A
FINANCE = "市财政局"  # co-unit of both tasks
CIVIL = "市民政局"  # lead unit of T-B


def task_a(at: dt.datetime, light: str, **fields: Any) -> Any:
    return condition("T-A", at=at, light=light, **fields)


def task_b(at: dt.datetime, light: str, **fields: Any) -> Any:
    fields.setdefault("lead", CIVIL)
    fields.setdefault("leaders", ("李副市长",))
    fields.setdefault("title", "完善养老服务体系")
    return condition("T-B", at=at, light=light, **fields)


class Log:
    """Reads the notification log and says what each step added."""

    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier
        self.seen: set[str] = set()

    def new(self) -> list[dict[str, Any]]:
        rows = [r for r in self.notifier.notifications() if r["id"] not in self.seen]
        self.seen |= {r["id"] for r in rows}
        return rows

    def step(self, instant: dt.datetime) -> list[dict[str, Any]]:
        self.notifier.at(instant)
        return self.new()


def digests(rows: list[dict[str, Any]]) -> set[tuple[str, int, tuple[str, ...]]]:
    """Each message sent: (recipient, level, tasks in it)."""
    return {
        (
            group[0]["recipient"],
            group[0]["level"],
            tuple(sorted(c for r in group for c in r["task_codes"])),
        )
        for group in rows_by_digest(rows).values()
    }


def test_yellow_to_red_to_seven_days_red(database_url: str, broker: Broker, tmp_path: Path) -> None:
    # Day by day across weekends: the ladder at any hour (quiet hours: their own test).
    settings = notifier_settings(
        database_url, broker.bootstrap, policy_path=any_hour_policy(tmp_path)
    )
    with running_notifier(settings, start=sh(6, 16, 8)) as notifier:
        log = Log(notifier)
        notifier.publish(
            task_a(sh(6, 16, 0, 30), "yellow", reasons=("距完成时限不足15天",)),
            task_b(sh(6, 16, 0, 30), "yellow"),
        )

        # Yellow: 催办 to every responsible unit; the co-unit of both gets one digest.
        first = log.step(sh(6, 16, 9))
        assert shape(first) == {
            (1, "responsible_units", HOUSING, "T-A"),
            (1, "responsible_units", FINANCE, "T-A"),
            (1, "responsible_units", FINANCE, "T-B"),
            (1, "responsible_units", CIVIL, "T-B"),
        }
        assert {r["status"] for r in first} == {"delivered"}
        assert {r["channel"] for r in first} == {"inbox"}
        assert {r["level_name"] for r in first} == {"催办"}
        assert digests(first) == {
            (HOUSING, 1, ("T-A",)),
            (FINANCE, 1, ("T-A", "T-B")),
            (CIVIL, 1, ("T-B",)),
        }
        finance = next(r for r in first if r["recipient"] == FINANCE)
        digest = notifier.get(f"/v1/digests/{finance['digest_id']}")
        assert digest["task_codes"] == ["T-A", "T-B"]
        assert digest["subject"].startswith("【催办】2 项重点工作")
        assert "T-A" in digest["body"] and "T-B" in digest["body"]
        assert "T-A" in notifier.notifications(recipient=HOUSING)[0]["subject"]

        # The same window, and the days before the repeat: nothing.
        assert log.step(sh(6, 16, 15)) == []
        assert log.step(sh(6, 17)) == []
        assert log.step(sh(6, 18)) == []
        # Every three days while it holds.
        repeat = log.step(sh(6, 19))
        assert shape(repeat) == shape(first)
        assert {r["sequence"] for r in repeat} == {2}
        assert {r["subject"].split("】")[0] for r in repeat} == {"【催办·第2次"}

        # Red (the scan at 00:00:05 on 1 July); A owes a report on 5 July.
        notifier.publish(
            task_a(
                sh(7, 1, 0, 0, 5),
                "red",
                red_since=sh(7, 1, 0, 0),
                report_due_at=sh(7, 5, 23, 59, 59),
                reasons=("已逾期 1 天",),
            ),
            task_b(sh(7, 1, 0, 0, 5), "red", red_since=sh(7, 1, 0, 0)),
        )
        red = log.step(sh(7, 1, 9))
        # 督办 to the lead units' leadership and the office; red suppresses the 催办.
        assert shape(red) == {
            (2, "lead_unit_leadership", HOUSING, "T-A"),
            (2, "lead_unit_leadership", CIVIL, "T-B"),
            (2, "supervising_office", OFFICE, "T-A"),
            (2, "supervising_office", OFFICE, "T-B"),
        }
        assert digests(red) == {
            (HOUSING, 2, ("T-A",)),
            (CIVIL, 2, ("T-B",)),
            (OFFICE, 2, ("T-A", "T-B")),
        }
        assert all(r["level_name"] == "督办" and r["status"] == "delivered" for r in red)

        # 市民政局 signs for its 督办 and reports the next day: B's 督办 stops repeating.
        response = notifier.client.post(
            "/v1/tasks/T-B/acknowledgements",
            json={"level": 2, "note": "已收悉，正在整改"},
            headers=notifier.headers(CIVIL),
        )
        assert response.status_code == 201, response.text
        notifier.clock.set(sh(7, 1, 10))
        notifier.publish(
            task_b(
                sh(7, 2, 16),
                "red",
                red_since=sh(7, 1, 0, 0),
                last_report_at=sh(7, 2, 16),
            )
        )

        assert log.step(sh(7, 2)) == []
        assert log.step(sh(7, 3)) == []
        # Day 3: A's 督办 repeats (to its leadership and the office); B's is acknowledged.
        # A's report falls due on 5 July, but red inhibits the 催办 it would bring.
        day3 = log.step(sh(7, 4))
        assert shape(day3) == {
            (2, "lead_unit_leadership", HOUSING, "T-A"),
            (2, "supervising_office", OFFICE, "T-A"),
        }
        assert log.step(sh(7, 5)) == []
        assert log.step(sh(7, 6)) == []
        day6 = log.step(sh(7, 7))
        assert shape(day6) == shape(day3)
        assert {r["sequence"] for r in day6} == {3}

        # Day 7 red: 通报 to the office (one digest, both tasks) and each task's leader; the
        # office no longer hears 督办; A's leadership is mid-interval.
        day7 = log.step(sh(7, 8))
        assert shape(day7) == {
            (3, "supervising_office", OFFICE, "T-A"),
            (3, "supervising_office", OFFICE, "T-B"),
            (3, "supervising_leader", "张副市长", "T-A"),
            (3, "supervising_leader", "李副市长", "T-B"),
        }
        assert digests(day7) == {
            (OFFICE, 3, ("T-A", "T-B")),
            ("张副市长", 3, ("T-A",)),
            ("李副市长", 3, ("T-B",)),
        }
        assert {r["level_name"] for r in day7} == {"通报"}
        assert log.step(sh(7, 9)) == []
        assert shape(log.step(sh(7, 10))) == {(2, "lead_unit_leadership", HOUSING, "T-A")}
        assert shape(log.step(sh(7, 11))) == shape(day7)

        # Completion requested (blue) and closed (grey): escalation stops.
        notifier.publish(
            task_a(sh(7, 12, 8), "blue", status="completion_requested"),
            task_b(sh(7, 12, 8), "grey", status="closed"),
        )
        assert log.step(sh(7, 12)) == []
        assert log.step(sh(7, 14)) == []
        assert log.step(sh(7, 17)) == []

        # The timeline of B, as the tracker reads it.
        timeline = notifier.get("/v1/tasks/T-B/escalations")
        assert [a["by_name"] for a in timeline["acknowledgements"]] == [CIVIL]
        assert [(n["level"], n["recipient"]) for n in timeline["notifications"]][:2] == [
            (1, CIVIL),
            (1, FINANCE),
        ]
        levels_to_civil = [n["level"] for n in timeline["notifications"] if n["recipient"] == CIVIL]
        assert levels_to_civil == [1, 1, 2]
        # Nothing is pending or failed: every planned notification was delivered once.
        assert {r["status"] for r in notifier.notifications()} == {"delivered"}
        total = len(notifier.notifications())
        assert total == len({r["id"] for r in notifier.notifications()})


def test_redelivered_and_stale_events_change_nothing(database_url: str, broker: Broker) -> None:
    settings = notifier_settings(database_url, broker.bootstrap)
    with running_notifier(settings, start=sh(7, 1, 9)) as notifier:
        red = task_a(sh(7, 1, 0, 0, 5), "red", red_since=sh(7, 1, 0, 0))
        older_yellow = task_a(sh(6, 20), "yellow")
        notifier.publish(red)
        # The same event again (a redelivery) and an older event arriving late.
        publish_events(broker.bootstrap, red, older_yellow)
        closed = task_b(sh(7, 1, 0, 0, 6), "grey", status="closed")
        notifier.publish(closed)  # a later event on another task proves they were consumed
        notifier.at(sh(7, 1, 9))
        rows = notifier.notifications()
        assert shape(rows) == {
            (2, "lead_unit_leadership", HOUSING, "T-A"),
            (2, "supervising_office", OFFICE, "T-A"),
        }
        # A tick repeated in the same window finds them delivered and plans nothing.
        again = notifier.workers.tick()
        assert (again.planned, again.inserted) == (0, 0)
        assert len(notifier.notifications()) == 2


def test_event_triggers_a_tick_without_waiting_for_the_interval(
    database_url: str, broker: Broker
) -> None:
    settings = notifier_settings(
        database_url, broker.bootstrap, escalate_on_event=True, escalation_debounce_seconds=0.05
    )
    with running_notifier(settings, start=sh(7, 1, 9)) as notifier:
        notifier.publish(task_a(sh(7, 1, 0, 0, 5), "red", red_since=sh(7, 1, 0, 0)))

        def planned() -> list[dict[str, Any]]:
            found = notifier.notifications(task="T-A")
            return found if len(found) == 2 else []

        rows = wait_until(planned, what="督办 planned after the event")
        assert {r["level_name"] for r in rows} == {"督办"}
