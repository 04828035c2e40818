"""Who may see and do what: the one place the tracker's access rules live.

Each rule is answered twice from the same definitions: as a Python predicate on a loaded
task (`may_see`, `role_towards`, the workflow guards) and as a SQL filter for lists
(`visible_tasks`), so a list never shows a task its detail view would hide, nor the reverse
(`tests/integration/test_access_agreement.py` checks the two on Postgres for every role).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, false, select, true

from services.tracker.auth import Principal
from services.tracker.domain import workflow as rules
from services.tracker.domain.workflow import Role
from services.tracker.orm import Task, TaskUnit
from shared.vocabulary import PrincipalRole, UnitRole


@dataclass(frozen=True)
class Permission:
    """A service-wide right held by some key roles, whatever the task."""

    roles: tuple[str, ...]
    message_zh: str

    def allows(self, principal: Principal) -> bool:
        """Whether the caller's key role holds this right."""
        return principal.role in self.roles


def _needs(*roles: str) -> Permission:
    return Permission(roles, f"该操作需要 {'/'.join(roles)} 角色")


# Who may read task data at all; an operator key runs the service and sees none of it.
READ_TASKS = Permission(
    (PrincipalRole.UNIT, PrincipalRole.SUPERVISOR, PrincipalRole.LEADER, PrincipalRole.ADMIN),
    "该角色不能查看任务数据",
)
IMPORT_CATALOG = _needs(PrincipalRole.ADMIN, PrincipalRole.SUPERVISOR)
# The queue of pending decisions: the office all of it, a leader its tasks' (`visible_tasks`).
READ_DECISIONS = Permission(
    (PrincipalRole.SUPERVISOR, PrincipalRole.ADMIN, PrincipalRole.LEADER),
    "只有督查室和分管领导可以查看待办事项",
)
MANAGE_KEYS = _needs(PrincipalRole.ADMIN)
READ_OPERATIONS = _needs(PrincipalRole.OPERATOR, PrincipalRole.ADMIN)

# Roles that see every task; the others see theirs (units where assigned, leaders named).
SEES_EVERY_TASK = frozenset({PrincipalRole.SUPERVISOR, PrincipalRole.ADMIN})


def may_see(principal: Principal, task: Task) -> bool:
    """Whether the caller may see this task: office and admin all, units theirs, leaders theirs."""
    if principal.role in SEES_EVERY_TASK:
        return True
    if principal.role == PrincipalRole.UNIT:
        return any(a.unit_id == principal.unit_id for a in task.assignments)
    if principal.role == PrincipalRole.LEADER:
        return principal.leader is not None and principal.leader in task.leaders
    return False


def visible_tasks(principal: Principal) -> ColumnElement[bool]:
    """`may_see` as a SQL condition on `Task`, for lists and counts."""
    if principal.role in SEES_EVERY_TASK:
        return true()
    if principal.role == PrincipalRole.UNIT:
        assigned = select(TaskUnit.task_id).where(TaskUnit.unit_id == principal.unit_id)
        return Task.id.in_(assigned)
    if principal.role == PrincipalRole.LEADER and principal.leader is not None:
        return Task.leaders.contains([principal.leader])
    return false()


def role_towards(principal: Principal, task: Task) -> Role | None:
    """The caller's workflow role for this task; None if it has none or may not see it."""
    if not may_see(principal, task):
        return None
    if principal.role == PrincipalRole.SUPERVISOR:
        return Role.SUPERVISOR
    if principal.role == PrincipalRole.LEADER:
        return Role.SUPERVISING_LEADER
    if principal.role == PrincipalRole.UNIT:
        for assignment in task.assignments:
            if assignment.unit_id == principal.unit_id:
                return Role.LEAD_UNIT if assignment.role == UnitRole.LEAD else Role.CO_UNIT
    return None


def require_office(principal: Principal, task: Task, *, code: str, message_zh: str) -> None:
    """Refuse (403 naming `code`) anyone but the supervising office: the workflow's own rule."""
    rules.require_supervisor(role_towards(principal, task), code, message_zh)


def require_lead_unit(
    principal: Principal, task: Task, *, co_unit_code: str, other_code: str, what_zh: str
) -> None:
    """Refuse (403) anyone but this task's lead unit; a co-unit gets its own rule code."""
    rules.require_lead_unit(
        role_towards(principal, task),
        co_unit_code=co_unit_code,
        other_code=other_code,
        what_zh=what_zh,
    )
