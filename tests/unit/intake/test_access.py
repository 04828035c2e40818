"""Intake's access rules on the directory's view: who may report on which task."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from services.intake.access import may_report, may_report_on
from shared.clock import SHANGHAI
from shared.events import ApiKeyPublished, TaskAssignmentPublished
from shared.vocabulary import PrincipalRole

AT = dt.datetime(2022, 6, 1, 9, 0, tzinfo=SHANGHAI)


def key(role: PrincipalRole, unit: str | None = None) -> ApiKeyPublished:
    return ApiKeyPublished(
        event_id=uuid.uuid4(),
        occurred_at=AT,
        key_id="abcdefgh",
        key_hash="0" * 64,
        role=role,
        unit=unit,
        expires_at=None,
        revoked=False,
    )


def task(*, accepting: bool = True) -> TaskAssignmentPublished:
    return TaskAssignmentPublished(
        event_id=uuid.uuid4(),
        occurred_at=AT,
        task_code="T-1",
        lead_units=["市发展改革委"],
        co_units=["市统计局"],
        accepting_reports=accepting,
    )


@pytest.mark.parametrize(
    "role",
    [PrincipalRole.SUPERVISOR, PrincipalRole.LEADER, PrincipalRole.ADMIN, PrincipalRole.OPERATOR],
)
def test_only_unit_keys_report(role: PrincipalRole) -> None:
    refusal = may_report(key(role))
    assert refusal is not None and (refusal.status, refusal.reason) == (403, "forbidden")
    assert may_report(key(PrincipalRole.UNIT, "市统计局")) is None


@pytest.mark.parametrize(
    ("unit", "assignment", "expected"),
    [
        ("市发展改革委", task(), None),
        ("市统计局", task(), None),
        ("市财政局", task(), (403, "not_responsible")),
        ("市发展改革委", None, (404, "unknown_task")),
        ("市发展改革委", task(accepting=False), (409, "not_accepting")),
        ("市财政局", task(accepting=False), (403, "not_responsible")),
    ],
)
def test_a_unit_reports_on_its_own_tasks_while_they_take_reports(
    unit: str, assignment: TaskAssignmentPublished | None, expected: tuple[int, str] | None
) -> None:
    refusal = may_report_on(key(PrincipalRole.UNIT, unit), "T-1", assignment)
    assert (None if refusal is None else (refusal.status, refusal.reason)) == expected
