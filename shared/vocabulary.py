"""The names every service shares: lights, task statuses, roles, deadline kinds, levels,
the kinds of pending decision.

One definition each (docs/domain.md). They are `StrEnum`s (levels: `IntEnum`), so a member
is its wire value: events, database columns, query parameters and JSON stay the same plain
strings, and pydantic and FastAPI publish them as enums in schemas.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum


class Light(StrEnum):
    """The supervision light (docs/domain.md §5)."""

    GREEN = "green"
    YELLOW = "yellow"
    RED = "red"
    BLUE = "blue"
    GREY = "grey"

    @property
    def label_zh(self) -> str:
        """绿灯 / 黄灯 / 红灯 / 蓝灯 / 灰灯."""
        return _LIGHT_LABELS[self]


_LIGHT_LABELS = {
    Light.GREEN: "绿灯",
    Light.YELLOW: "黄灯",
    Light.RED: "红灯",
    Light.BLUE: "蓝灯",
    Light.GREY: "灰灯",
}


class TaskStatus(StrEnum):
    """Where a task stands in its workflow (docs/domain.md §3)."""

    NOT_STARTED = "not_started"
    IN_PROGRESS = "in_progress"
    RETURNED = "returned"
    COMPLETION_REQUESTED = "completion_requested"
    CLOSED = "closed"

    @property
    def label_zh(self) -> str:
        """Chinese label for display."""
        return _STATUS_LABELS[self]


_STATUS_LABELS = {
    TaskStatus.NOT_STARTED: "未启动",
    TaskStatus.IN_PROGRESS: "推进中",
    TaskStatus.RETURNED: "已退回",
    TaskStatus.COMPLETION_REQUESTED: "申请销号",
    TaskStatus.CLOSED: "已销号",
}

# A unit may still report on a task in these states (intake's directory says so).
ACCEPTING_REPORTS = frozenset({TaskStatus.NOT_STARTED, TaskStatus.IN_PROGRESS, TaskStatus.RETURNED})
# Completion awaiting sign-off (blue) and closure (grey): no report is owed, nothing escalates.
FINISHED_STATUSES = frozenset({TaskStatus.COMPLETION_REQUESTED, TaskStatus.CLOSED})


class PrincipalRole(StrEnum):
    """The role an API key carries (`dbn_<role>_…`)."""

    UNIT = "unit"  # a responsible unit (责任单位)
    SUPERVISOR = "supervisor"  # the supervising office (督查室)
    LEADER = "leader"  # a supervising leader (分管领导)
    ADMIN = "admin"  # 系统管理员
    OPERATOR = "operator"  # runs the service (运维), sees no task data

    @property
    def label_zh(self) -> str:
        """Chinese name of the role."""
        return _ROLE_LABELS[self]


_ROLE_LABELS = {
    PrincipalRole.UNIT: "责任单位",
    PrincipalRole.SUPERVISOR: "督查室",
    PrincipalRole.LEADER: "分管领导",
    PrincipalRole.ADMIN: "系统管理员",
    PrincipalRole.OPERATOR: "运维",
}


class UnitRole(StrEnum):
    """How a unit answers for a task (docs/domain.md §1)."""

    LEAD = "lead"  # 牵头单位
    CO = "co"  # 配合单位

    @property
    def label_zh(self) -> str:
        """牵头单位 / 配合单位."""
        return "牵头单位" if self is UnitRole.LEAD else "配合单位"


class DecisionKind(StrEnum):
    """What an item of the office's queue of pending decisions asks for (docs/domain.md §3)."""

    REPORT_REVIEW = "report_review"  # 审核报告: 接受 or 退回
    EXTENSION_REQUEST = "extension_request"  # 审批延期: 同意 or 不同意
    COMPLETION_REQUEST = "completion_request"  # 核验申请销号: 销号 or 退回


class DeadlineKind(StrEnum):
    """What a task's 完成时限 means (docs/domain.md §2)."""

    COMPLETE = "complete"
    PROGRESS = "progress"
    CONTINUOUS = "continuous"
    EVENT = "event"
    UNKNOWN = "unknown"


class EscalationLevel(IntEnum):
    """The levels of the shipped escalation ladder (docs/domain.md §6).

    A policy file may define other levels; these are the numbers the shipped ones carry.
    """

    REMINDER = 1  # 催办
    NOTICE = 2  # 督办
    BULLETIN = 3  # 通报

    @property
    def label_zh(self) -> str:
        """催办 / 督办 / 通报."""
        return _LEVEL_LABELS[self]


_LEVEL_LABELS = {
    EscalationLevel.REMINDER: "催办",
    EscalationLevel.NOTICE: "督办",
    EscalationLevel.BULLETIN: "通报",
}
