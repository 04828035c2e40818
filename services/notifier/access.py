"""Who may see and do what in the notifier: the one place for these rules.

A principal is an API key from the directory (`ApiKeyPublished`). What of the notification
log (notifications and digests) it sees is a `Scope`, which answers both as a Python
predicate (`sees`, for details) and as a SQL filter (`where`, for lists), so a list and the
details of its rows never disagree. Every route and use case asks here.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass

from sqlalchemy import ColumnElement, SQLColumnExpression, false, true

from services.notifier.refusals import Refused
from shared.events import ApiKeyPublished

# Who may do what with escalations (roles of the directory's API keys).
OFFICE_ROLES = frozenset({"supervisor", "admin"})  # 督查室: snoozes and their cancelling
SEES_EVERYTHING = frozenset({"supervisor", "admin", "operator", "leader"})
ACKNOWLEDGES_ANY = frozenset({"supervisor", "admin", "leader"})


@dataclass(frozen=True)
class Scope:
    """The part of the notification log a principal sees: all of it, or what went to one
    recipient (`recipient`; None with `everything` False sees nothing)."""

    everything: bool
    recipient: str | None = None

    def sees(self, recipient: str) -> bool:
        """The predicate: whether a notification or digest sent to `recipient` is visible."""
        return self.everything or (self.recipient is not None and recipient == self.recipient)

    def where(self, recipient: SQLColumnExpression[str]) -> ColumnElement[bool]:
        """The same rule as a SQL filter on a recipient column."""
        if self.everything:
            return true()
        if self.recipient is None:
            return false()
        return recipient == self.recipient


EVERYTHING = Scope(everything=True)


def unit_of(who: ApiKeyPublished) -> str:
    """The unit a key speaks for; a unit key bound to none is refused."""
    if not who.unit:
        raise Refused("key_without_unit", "单位密钥未绑定单位", 403)
    return who.unit


def scope(who: ApiKeyPublished) -> Scope:
    """What of the log `who` sees: everything for the office, leaders and operators; a unit
    sees what was sent to it (a unit key bound to no unit sees nothing)."""
    if who.role in SEES_EVERYTHING:
        return EVERYTHING
    return Scope(everything=False, recipient=who.unit or None)


def listing_scope(who: ApiKeyPublished, requested_recipient: str | None) -> Scope:
    """The scope of a listing; a unit asking for another recipient's notifications is refused."""
    if who.role in SEES_EVERYTHING:
        return EVERYTHING
    unit = unit_of(who)
    if requested_recipient is not None and requested_recipient != unit:
        raise Refused("other_recipient", "单位密钥只能查看发给本单位的通知", 403, field="recipient")
    return Scope(everything=False, recipient=unit)


def task_scope(
    who: ApiKeyPublished,
    *,
    task_code: str,
    responsible: Collection[str],
    received: Callable[[Scope], bool],
) -> Scope:
    """The scope of one task's timeline: a unit sees it if it answers for the task or was
    notified about it (`received`, asked only then), and then only its own notifications."""
    if who.role in SEES_EVERYTHING:
        return EVERYTHING
    unit = unit_of(who)
    mine = Scope(everything=False, recipient=unit)
    if unit not in responsible and not received(mine):
        raise Refused("not_responsible", f"{unit}不是任务 {task_code} 的责任单位", 403)
    return mine


def acknowledgement_scope(
    who: ApiKeyPublished, *, task_code: str, responsible: Collection[str]
) -> Scope:
    """Whose delivered notifications `who` may 签收: a responsible unit its own, the office
    and leaders any; everyone else is refused."""
    if who.role == "unit":
        unit = unit_of(who)
        if unit not in responsible:
            raise Refused("not_responsible", f"{unit}不是任务 {task_code} 的责任单位", 403)
        return Scope(everything=False, recipient=unit)
    if who.role not in ACKNOWLEDGES_ANY:
        raise Refused("not_allowed", "只有责任单位、督查室或分管领导可以签收", 403)
    return EVERYTHING


def require_office(who: ApiKeyPublished, *, what_zh: str = "暂停督办") -> None:
    """Only the supervising office (督查室) may snooze, or cancel a snooze."""
    if who.role not in OFFICE_ROLES:
        raise Refused("office_only", f"只有督查室可以{what_zh}", 403)
