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


class Cadence(StrEnum):
    """How often a task owes a progress report (docs/domain.md §4)."""

    WEEKLY = "weekly"
    MONTHLY = "monthly"
    BI_MONTHLY = "bi_monthly"
    QUARTERLY = "quarterly"
    HALF_YEARLY = "half_yearly"
    YEARLY = "yearly"

    @property
    def months(self) -> int | None:
        """Length of one period in calendar months; None for weekly periods."""
        return _CADENCE_MONTHS[self]

    @property
    def report_name_zh(self) -> str:
        """What the report is called: 周报 / 月报 / 双月报 / 季报 / 半年报 / 年报."""
        return _CADENCE_REPORTS[self]


_CADENCE_MONTHS: dict[Cadence, int | None] = {
    Cadence.WEEKLY: None,
    Cadence.MONTHLY: 1,
    Cadence.BI_MONTHLY: 2,
    Cadence.QUARTERLY: 3,
    Cadence.HALF_YEARLY: 6,
    Cadence.YEARLY: 12,
}
_CADENCE_REPORTS = {
    Cadence.WEEKLY: "周报",
    Cadence.MONTHLY: "月报",
    Cadence.BI_MONTHLY: "双月报",
    Cadence.QUARTERLY: "季报",
    Cadence.HALF_YEARLY: "半年报",
    Cadence.YEARLY: "年报",
}


class TargetDirection(StrEnum):
    """How a numeric target is met (docs/domain.md §5 Progress)."""

    AT_LEAST = "at_least"  # 以上 / 不低于 / 增长X% / 达到: more is better
    AT_MOST = "at_most"  # 以内 / 以下 / 不超过 / 控制在 / 低于: less is better
    ABOUT = "about"  # 左右: within the policy's band

    @property
    def label_zh(self) -> str:
        """不低于 / 不高于 / 左右."""
        return _DIRECTION_LABELS[self]


_DIRECTION_LABELS = {
    TargetDirection.AT_LEAST: "不低于",
    TargetDirection.AT_MOST: "不高于",
    TargetDirection.ABOUT: "左右",
}
