"""The pure parts of the wiring: events to conditions, snapshots, the inbox, the local policy."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path

import pytest

from services.notifier.channels.base import OutboundMessage, TransientDeliveryError
from services.notifier.channels.inbox import InboxChannel
from services.notifier.channels.retry import RetryPolicy, send_with_retries
from services.notifier.conditions import condition_at, condition_from_json, condition_to_json
from services.notifier.escalation.contacts import ContactBook, MissingContact
from services.notifier.escalation.engine import Recipient, evaluate
from services.notifier.escalation.policy import (
    ChannelKind,
    RecipientRole,
    default_policy,
    local_policy,
)
from services.notifier.escalation.render import render_notification
from services.notifier.settings import NotifierSettings
from shared.events import EXAMPLES_DIR, TaskConditionChanged

from ._builders import SHANGHAI, sh


def example(**changes: object) -> TaskConditionChanged:
    data = json.loads((EXAMPLES_DIR / "task.condition_changed.v1.json").read_bytes())
    data.update(changes)
    return TaskConditionChanged.model_validate(data)


def test_days_overdue_follow_the_clock_not_the_event() -> None:
    event = example()  # red since 1 July, due 30 June, "1 day overdue" when emitted
    assert condition_at(event, now=sh(7, 1)).days_overdue == 1
    later = condition_at(event, now=sh(7, 9, 23, 59))
    assert later.days_overdue == 9
    assert later.red_since == event.red_since
    assert later.due_at == dt.datetime(2022, 6, 30, 23, 59, 59, 999999, tzinfo=SHANGHAI)


def test_yellow_since_is_the_start_of_the_light() -> None:
    event = example(light="yellow", red_since=None, light_since="2022-06-16T00:30:00+08:00")
    condition = condition_at(event, now=sh(6, 20))
    assert condition.yellow_since == sh(6, 16, 0, 30)
    assert condition.red_since is None and condition.days_overdue == 0


def test_an_extension_in_force_stops_escalation_until_it_runs_out() -> None:
    event = example(due="2022-09-30", original_due="2022-06-30", light="green", red_since=None)
    assert condition_at(event, now=sh(7, 1)).extended
    assert not condition_at(event, now=sh(10, 1)).extended


def test_a_snapshot_round_trips() -> None:
    condition = condition_at(example(), now=sh(7, 3))
    assert condition_from_json(json.loads(json.dumps(condition_to_json(condition)))) == condition


def test_one_notification_names_its_task_in_the_subject() -> None:
    condition = condition_at(example(), now=sh(7, 3))
    item = next(
        n
        for n in evaluate([condition], [], [], [], local_policy(), sh(7, 3)).notifications
        if n.level == 2
    )
    subject, text = render_notification(item, condition)
    assert subject == "【督办】T2022-001 地区生产总值增长5%以上（已逾期 3 天）"
    assert "任务编号：T2022-001" in text
    assert str(item.notification_id) in text


def test_everyone_has_an_inbox_and_nothing_else_without_a_contact() -> None:
    book = ContactBook({})
    unit = Recipient(RecipientRole.LEAD_UNITS, "市财政局")
    assert book.resolve_address(unit, ChannelKind.INBOX).address == "市财政局"
    with pytest.raises(MissingContact):
        book.resolve_address(unit, ChannelKind.EMAIL)
    message = OutboundMessage(str(uuid.uuid4()), "市财政局", "s", "t", "m", "h")
    assert InboxChannel().send(message).ok


def test_the_local_policy_is_the_shipped_ladder_on_the_inbox() -> None:
    local, shipped = local_policy(), default_policy()
    for mine, theirs in zip(local.levels, shipped.levels, strict=True):
        assert mine.model_copy(update={"recipients": ()}) == theirs.model_copy(
            update={"recipients": ()}
        )
        assert [r.role for r in mine.recipients] == [r.role for r in theirs.recipients]
        assert {c for r in mine.recipients for c in r.channels} == {ChannelKind.INBOX}
    assert local.inhibit == shipped.inhibit


def test_which_policy_file_is_in_force(tmp_path: Path) -> None:
    assert NotifierSettings().effective_policy_path.name == "local_policy.yaml"
    production = NotifierSettings(env="production")
    assert production.effective_policy_path.name == "default_policy.yaml"
    mine = tmp_path / "p.yaml"
    assert NotifierSettings(policy_path=mine).effective_policy_path == mine


def test_transient_give_up_is_marked_retryable() -> None:
    def down(_message: OutboundMessage) -> int:
        raise TransientDeliveryError("connection refused")

    message = OutboundMessage("id", "r", "s", "t", "m", "h")
    result = send_with_retries(down, message, RetryPolicy(max_attempts=2), sleep=lambda _s: None)
    assert (result.ok, result.retryable, result.attempts) == (False, True, 2)
