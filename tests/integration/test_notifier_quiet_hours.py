"""Quiet hours on the real notifier (real broker, real Postgres, a FixedClock): a 催办 planned
on Saturday 2022-10-15 is recorded at once as held, shown on the task's escalations with the
time it will go, and delivered on Monday 2022-10-17 at 08:30, not before."""

from __future__ import annotations

import datetime as dt

import pytest

from devtools.servers import Broker
from shared.clock import SHANGHAI

from .test_notifier_support import condition, notifier_settings, running_notifier

pytestmark = pytest.mark.integration

HOUSING, FINANCE = "市住房城乡建设委", "市财政局"  # lead and co-unit: 催办 goes to both


def at(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2022, 10, day, hour, minute, tzinfo=SHANGHAI)


def test_a_saturday_reminder_goes_out_on_monday_at_half_past_eight(
    database_url: str, broker: Broker
) -> None:
    monday = at(17, 8, 30)
    with running_notifier(
        notifier_settings(database_url, broker.bootstrap), start=at(15, 9)
    ) as notifier:
        notifier.publish(
            condition(
                "T-Q",
                at=at(15, 0, 5),
                light="yellow",
                due=dt.date(2022, 10, 25),
                reasons=("距截止 10 天",),
            )
        )
        result = notifier.at(at(15, 10))  # Saturday
        assert result.inserted_by_level == {1: 2}
        assert result.inbox_digests == 0  # held, even on the inbox

        def escalations() -> list[dict[str, object]]:
            found: list[dict[str, object]] = notifier.get("/v1/tasks/T-Q/escalations")[
                "notifications"
            ]
            return found

        held = escalations()
        assert {(n["recipient"], n["level"], n["status"], n["held"]) for n in held} == {
            (HOUSING, 1, "pending", True),
            (FINANCE, 1, "pending", True),
        }
        assert {dt.datetime.fromisoformat(str(n["not_before"])) for n in held} == {monday}
        assert {dt.datetime.fromisoformat(str(n["window_start"])) for n in held} == {at(17, 0)}
        # A unit sees its own held notice in its log.
        (mine,) = notifier.notifications(HOUSING)
        assert (mine["held"], mine["status"]) == (True, "pending")

        # Sunday and Monday before opening: the same notices, still held, nothing sent.
        for instant in (at(16, 10), at(17, 8, 29)):
            notifier.at(instant)
            assert notifier.workers.dispatch_pending() == []
            assert [(n["id"], n["status"]) for n in escalations()] == [
                (n["id"], "pending") for n in held
            ]

        notifier.clock.set(monday)
        reports = notifier.workers.dispatch_pending()
        notifier.settle()
        assert {r.outcome for r in reports} <= {"delivered"}
        sent = escalations()
        assert [n["id"] for n in sent] == [n["id"] for n in held]
        assert {(n["status"], n["held"]) for n in sent} == {("delivered", False)}
        assert {dt.datetime.fromisoformat(str(n["delivered_at"])) for n in sent} == {monday}
        # A tick within the hours sends nothing twice.
        notifier.at(at(17, 9))
        assert len(escalations()) == 2
