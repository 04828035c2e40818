"""The scan tick and re-evaluation, over fake repositories."""

from __future__ import annotations

import datetime as dt

import pytest

from services.tracker.orm import Task
from services.tracker.usecases.evaluation import reevaluate, scan_due_tasks

from .fakes import START, make_task, uow_with

NOW = dt.datetime(2022, 6, 25, 9, tzinfo=START.tzinfo)


def due_tasks(count: int) -> list[Task]:
    return [
        make_task(
            f"T2022-{n:03d}",
            next_evaluation_at=NOW - dt.timedelta(minutes=count - n),
            light_changed_at=START,
        )
        for n in range(count)
    ]


@pytest.mark.parametrize(("count", "batch"), [(0, 5), (3, 5), (5, 5), (7, 5), (12, 1)])
def test_a_tick_takes_one_batch_earliest_first(count: int, batch: int) -> None:
    tasks = due_tasks(count)
    uow = uow_with(*tasks)

    evaluated = scan_due_tasks(uow, now=NOW, batch_size=batch)

    assert evaluated == min(count, batch)
    assert uow.tasks.locked == [t.code for t in tasks[:batch]]


def test_tasks_not_yet_due_or_never_due_are_left_alone() -> None:
    later = make_task("T2022-100", next_evaluation_at=NOW + dt.timedelta(seconds=1))
    never = make_task("T2022-101", next_evaluation_at=None)
    now_due = make_task("T2022-102", next_evaluation_at=NOW)
    uow = uow_with(later, never, now_due)

    assert scan_due_tasks(uow, now=NOW, batch_size=10) == 1
    assert uow.tasks.locked == ["T2022-102"]
    assert later.next_evaluation_at == NOW + dt.timedelta(seconds=1)


def test_tasks_another_replica_holds_are_skipped() -> None:
    tasks = due_tasks(4)
    uow = uow_with(*tasks)
    uow.tasks.held = {tasks[0].code, tasks[2].code}

    assert scan_due_tasks(uow, now=NOW, batch_size=10) == 2
    assert uow.tasks.locked == [tasks[1].code, tasks[3].code]


def test_an_evaluated_task_gets_its_next_evaluation_time_and_drops_out() -> None:
    tasks = due_tasks(3)
    uow = uow_with(*tasks)

    scan_due_tasks(uow, now=NOW, batch_size=10)

    # Due 2022-06-30: the light next changes when the day after the due date begins, or earlier.
    overdue_from = dt.datetime(2022, 7, 1, tzinfo=NOW.tzinfo)
    nexts = [t.next_evaluation_at for t in tasks]
    assert all(n is not None and NOW < n <= overdue_from for n in nexts), nexts
    assert scan_due_tasks(uow, now=NOW, batch_size=10) == 0


def test_a_tick_announces_each_changed_condition_once() -> None:
    tasks = due_tasks(3)
    uow = uow_with(*tasks)

    scan_due_tasks(uow, now=NOW, batch_size=10)
    for task in tasks:
        task.next_evaluation_at = NOW  # due again at once: nothing has changed since
    scan_due_tasks(uow, now=NOW, batch_size=10)

    events = uow.outbox.events("task.condition_changed")
    assert sorted(e["task_code"] for e in events) == sorted(t.code for t in tasks)
    assert all((e["light"], e["previous_light"]) == ("yellow", "green") for e in events)
    assert uow.timeline.kinds() == ["light_changed"] * 3


@pytest.mark.parametrize(
    ("status", "light"),
    [
        ("not_started", "yellow"),
        ("in_progress", "yellow"),
        ("returned", "yellow"),
        ("completion_requested", "blue"),
        ("closed", "grey"),
    ],
)
def test_reevaluation_lights_the_task_by_its_status(status: str, light: str) -> None:
    task = make_task(status=status, light_changed_at=START)
    uow = uow_with(task)

    assert reevaluate(uow, task, now=NOW) is True

    assert task.light == light
    [event] = uow.outbox.events("task.condition_changed")
    assert (event["light"], event["status"], event["due"]) == (light, status, "2022-06-30")
    assert task.announced == {
        "light": light,
        "status": status,
        "due": "2022-06-30",
        "report_due_at": None,
        "last_report_at": None,
    }


def test_a_first_evaluation_records_the_light_even_if_it_is_green() -> None:
    task = make_task(percent=100, last_report_at=START - dt.timedelta(days=1))
    uow = uow_with(task)
    assert reevaluate(uow, task, now=START) is True
    [entry] = uow.timeline.entries
    assert entry.details["from"] == entry.details["to"] == task.light == "green"
    assert task.light_changed_at == START


def test_reevaluating_an_unchanged_condition_announces_nothing() -> None:
    task = make_task(light_changed_at=START)
    uow = uow_with(task)
    assert reevaluate(uow, task, now=NOW) is True
    assert reevaluate(uow, task, now=NOW + dt.timedelta(minutes=5)) is False
    assert len(uow.outbox.queued) == 1
    assert uow.timeline.kinds() == ["light_changed"]


def test_an_overdue_task_turns_red_with_its_day_count() -> None:
    task = make_task(light_changed_at=START)
    uow = uow_with(task)
    later = dt.datetime(2022, 7, 3, 9, tzinfo=NOW.tzinfo)
    reevaluate(uow, task, now=later)
    assert (task.light, task.days_overdue) == ("red", 3)
    assert task.red_since is not None
    [event] = uow.outbox.events("task.condition_changed")
    assert event["days_overdue"] == 3
