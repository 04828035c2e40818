"""The office's queue: what awaits its decision, oldest first (待办事项).

Three kinds of item:
- `report_review`: the latest consolidated (lead-unit) report of a task not closed, neither
  returned (退回) nor accepted (接受) yet;
- `extension_request`: an extension request awaiting 同意/不同意;
- `completion_request`: a completion request (申请销号) awaiting 销号 (or 退回).

Who may read the queue is `access.READ_DECISIONS`; which tasks it holds for them is
`access.visible_tasks` / `access.may_see` (the office every task, a leader the tasks that
name them), applied by the `Decisions` port.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import uuid
from dataclasses import dataclass

from services.tracker import access
from services.tracker.auth import Principal
from services.tracker.domain.workflow import RuleViolation
from services.tracker.usecases.ports import PendingRow, UnitOfWork
from shared.vocabulary import DecisionKind

RANKS = {
    DecisionKind.REPORT_REVIEW: 0,
    DecisionKind.EXTENSION_REQUEST: 1,
    DecisionKind.COMPLETION_REQUEST: 2,
}

Cursor = tuple[dt.datetime, int, int]


@dataclass(frozen=True)
class Action:
    """A call that settles (or answers) the item."""

    method: str
    path: str
    label: str


@dataclass(frozen=True)
class PendingDecision:
    """One item of the queue, as shown."""

    kind: DecisionKind
    task_code: str
    task_title: str
    unit: str
    since: dt.datetime
    todo: str
    actions: tuple[Action, ...]
    event_id: uuid.UUID | None = None
    period: str | None = None
    requested_due: dt.date | None = None


@dataclass(frozen=True)
class DecisionPage:
    """A page of the queue and the cursor of the next one (None: this was the last)."""

    items: list[PendingDecision]
    next_cursor: str | None


def encode_cursor(cursor: Cursor) -> str:
    """The opaque cursor of the item `cursor` names (the next page starts after it)."""
    since, rank, ref_id = cursor
    raw = json.dumps([since.isoformat(), rank, ref_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(text: str) -> Cursor:
    """The position an opaque cursor names; a cursor this service did not issue is a 422."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        since_text, rank, ref_id = json.loads(raw)
        since = dt.datetime.fromisoformat(since_text)
        if since.tzinfo is None or not isinstance(rank, int) or not isinstance(ref_id, int):
            raise ValueError(text)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise RuleViolation(
            "invalid_cursor", "翻页游标 cursor 无效，请从第一页重新查询", 422
        ) from exc
    return since, rank, ref_id


def _item(row: PendingRow) -> PendingDecision:
    task = row.task
    base = f"/v1/tasks/{task.code}"
    leads = "、".join(task.lead_units)
    if row.kind == DecisionKind.REPORT_REVIEW:
        report = row.report
        assert report is not None, "a report review carries its report"
        period = f"（{report.period}）" if report.period else ""
        return PendingDecision(
            kind=DecisionKind.REPORT_REVIEW,
            task_code=task.code,
            task_title=task.text,
            unit=report.unit.name,
            since=row.since,
            todo=f"审核{report.unit.name}报送的进展报告{period}：接受或退回",
            actions=(
                Action("POST", f"{base}/reports/{report.event_id}/accept", "接受"),
                Action("POST", f"{base}/returns", "退回"),
            ),
            event_id=report.event_id,
            period=report.period,
        )
    if row.kind == DecisionKind.EXTENSION_REQUEST:
        due = task.pending_extension_due
        return PendingDecision(
            kind=DecisionKind.EXTENSION_REQUEST,
            task_code=task.code,
            task_title=task.text,
            unit=leads,
            since=row.since,
            todo=f"审批延期申请（申请延至 {due.isoformat() if due else '未注明'}）：同意或不同意",
            actions=(
                Action("POST", f"{base}/extension-requests/grant", "同意延期"),
                Action("POST", f"{base}/extension-requests/refuse", "不同意延期"),
            ),
            requested_due=due,
        )
    return PendingDecision(
        kind=DecisionKind.COMPLETION_REQUEST,
        task_code=task.code,
        task_title=task.text,
        unit=leads,
        since=row.since,
        todo="核验申请销号：销号或退回",
        actions=(
            Action("POST", f"{base}/close", "销号"),
            Action("POST", f"{base}/returns", "退回"),
        ),
    )


def pending_decisions(
    uow: UnitOfWork, *, principal: Principal, cursor: str | None, limit: int
) -> DecisionPage:
    """A page of what awaits a decision, oldest first, on the tasks `principal` may see."""
    if not access.READ_DECISIONS.allows(principal):
        raise RuleViolation("role_not_allowed", access.READ_DECISIONS.message_zh, 403)
    after = decode_cursor(cursor) if cursor is not None else None
    rows = list(uow.decisions.pending(principal, after=after, limit=limit + 1))
    more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1] if rows else None
    return DecisionPage(
        items=[_item(row) for row in rows],
        next_cursor=encode_cursor((last.since, last.rank, last.ref_id)) if more and last else None,
    )
