"""Who may report on what: intake's access rules, in one place.

Intake keeps no database; it decides on the directory's view of keys and task assignments
(`shared.directory`). Authentication (a known, unexpired, unrevoked key) is the
directory's; what an authenticated key may do is here.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.events import ApiKeyPublished, TaskAssignmentPublished
from shared.vocabulary import PrincipalRole


@dataclass(frozen=True)
class Refusal:
    """Why a report is refused: the HTTP status, the rule's code and the Chinese message."""

    status: int
    reason: str
    message: str


def may_report(key: ApiKeyPublished) -> Refusal | None:
    """Only a unit's key reports progress; office, leader and admin keys read and decide."""
    if key.role != PrincipalRole.UNIT or key.unit is None:
        return Refusal(
            403, "forbidden", "只有责任单位的密钥可以报送进展 (only unit keys may report)"
        )
    return None


def may_report_on(
    key: ApiKeyPublished, task_code: str, assignment: TaskAssignmentPublished | None
) -> Refusal | None:
    """A unit reports on a task it leads or co-handles, while the task still takes reports."""
    if assignment is None:
        return Refusal(404, "unknown_task", f"任务不存在 (unknown task {task_code})")
    # Task assignments come from the published task-division document, so saying that a
    # task belongs to another unit reveals nothing the document does not.
    if key.unit not in (*assignment.lead_units, *assignment.co_units):
        return Refusal(
            403,
            "not_responsible",
            f"{key.unit} 不是该任务的责任单位 (unit is not responsible for this task)",
        )
    if not assignment.accepting_reports:
        return Refusal(
            409,
            "not_accepting",
            "该任务已申请销号或已销号，不再接受报送 (task no longer accepts reports)",
        )
    return None


def may_cite(key: ApiKeyPublished, assignment: TaskAssignmentPublished | None) -> Refusal | None:
    """Only a lead unit's consolidated report cites co-units' parts (whether each cited id is
    a part of the task is the tracker's to check: intake holds no reports)."""
    if assignment is not None and key.unit not in assignment.lead_units:
        return Refusal(
            422,
            "cites_not_lead",
            "只有牵头单位的汇总报告可以引用配合单位报送 (only the lead unit may cite parts)",
        )
    return None
