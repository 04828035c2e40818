"""The escalation engine driven through a task's life with a controlled clock."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from services.notifier.escalation.engine import (
    Ack,
    Recipient,
    Snooze,
    TaskCondition,
    evaluate,
    group_into_digests,
    notification_id,
    window_start,
)
from services.notifier.escalation.policy import (
    ChannelKind,
    RecipientRole,
    default_policy,
    parse_policy,
)

from ._builders import OFFICE, Key, Simulator, keys, sh, task

LEAD = "市住房城乡建设委"
CO = "市财政局"
LEADER = "张副市长"

L1: set[Key] = {
    (1, "responsible_units", LEAD, "email"),
    (1, "responsible_units", LEAD, "wecom"),
    (1, "responsible_units", CO, "email"),
    (1, "responsible_units", CO, "wecom"),
}
L2_LEADERSHIP: set[Key] = {
    (2, "lead_unit_leadership", LEAD, "email"),
    (2, "lead_unit_leadership", LEAD, "dingtalk"),
}
L2_OFFICE: set[Key] = {
    (2, "supervising_office", OFFICE, "email"),
    (2, "supervising_office", OFFICE, "webhook"),
}
L2 = L2_LEADERSHIP | L2_OFFICE
L3: set[Key] = {
    (3, "supervising_office", OFFICE, "email"),
    (3, "supervising_office", OFFICE, "webhook"),
    (3, "supervising_leader", LEADER, "email"),
}

YELLOW = task(light="yellow", yellow_since=sh(6, 16, 0, 30), reasons_zh=("距完成时限不足15天",))


def red(days_overdue: int, **overrides: object) -> TaskCondition:
    """The task red since 1 July 00:05 (due 30 June), `days_overdue` days late."""
    fields: dict[str, object] = {
        "light": "red",
        "red_since": sh(7, 1, 0, 5),
        "days_overdue": days_overdue,
        "reasons_zh": ("已超过完成时限",),
    }
    fields.update(overrides)
    return task(**fields)


def test_yellow_to_red_to_seven_days_red() -> None:
    sim = Simulator()
    steps: list[tuple[datetime, TaskCondition, set[Key]]] = [
        (sh(6, 16, 9), YELLOW, L1),
        (sh(6, 16, 15), YELLOW, set()),  # same window
        (sh(6, 17), YELLOW, set()),
        (sh(6, 18), YELLOW, set()),
        (sh(6, 19), YELLOW, L1),  # every 3 days
        (sh(6, 20), YELLOW, set()),
        (sh(7, 1), red(1), L2),  # red on day 0: 督办, and red suppresses the 催办
        (sh(7, 2), red(2), set()),
        (sh(7, 3), red(3), set()),
        (sh(7, 4), red(4), L2),
        (sh(7, 7), red(7), L2),
        # Day 7 red: 通报 to the office and the leader; the office no longer hears 督办 about it,
        # and the lead unit's leadership is mid-interval (last 督办 on 7 July).
        (sh(7, 8), red(8), L3),
        (sh(7, 9), red(9), set()),
        (sh(7, 10), red(10), L2_LEADERSHIP),
        (sh(7, 11), red(11), L3),
        (sh(7, 12), red(12, status="completion_requested", light="blue"), set()),
        (sh(7, 14), red(14, status="closed", light="grey"), set()),
    ]
    for now, condition, expected in steps:
        assert keys(sim.tick(now, condition)) == expected, now.isoformat()


def test_sequence_counts_sends_within_the_episode() -> None:
    sim = Simulator()
    first = sim.tick(sh(7, 1), red(1))
    sim.tick(sh(7, 2), red(2))
    second = sim.tick(sh(7, 4), red(4))
    assert {n.sequence for n in first} == {1}
    assert {n.sequence for n in second} == {2}
    assert {n.level_name for n in second} == {"督办"}


def test_red_inhibits_yellow_even_when_a_report_comes_due() -> None:
    condition = red(3, report_due_at=sh(7, 5, 0, 0))
    planned = evaluate([condition], [], [], [], default_policy(), sh(7, 4)).notifications
    assert {n.level for n in planned} == {2}


def test_without_the_inhibit_rule_red_and_report_due_both_notify() -> None:
    text = default_policy_text().replace(
        "inhibit:\n  # Red suppresses yellow: no 催办 for a task that is already red.\n"
        "  - if_light: red\n    suppress_levels: [1]\n",
        "inhibit: []\n",
    )
    policy = parse_policy(text)
    condition = red(3, report_due_at=sh(7, 5, 0, 0))
    planned = evaluate([condition], [], [], [], policy, sh(7, 4)).notifications
    assert {n.level for n in planned} == {1, 2}


def default_policy_text() -> str:
    """The shipped policy's text without its quiet hours (see `Simulator`)."""
    from services.notifier.escalation.policy import DEFAULT_POLICY_PATH
    from tests.policy_text import without_quiet_hours

    return without_quiet_hours(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))


def test_report_coming_due_reminds_a_green_task() -> None:
    condition = task(light="green", report_due_at=sh(8, 5, 23, 59))
    policy = default_policy()
    assert (
        evaluate([condition], [], [], [], policy, sh(8, 1)).notifications == ()
    )  # more than 3 days ahead
    planned = evaluate([condition], [], [], [], policy, sh(8, 3)).notifications
    assert keys(planned) == L1
    # The reply date is the report's due date when that comes first.
    assert {n.respond_by for n in planned} == {sh(8, 5).date()}


def test_back_to_green_stops_the_reminders() -> None:
    sim = Simulator()
    assert keys(sim.tick(sh(6, 16), YELLOW)) == L1
    assert sim.tick(sh(6, 19), task(light="green")) == []


def test_digest_groups_two_tasks_for_one_recipient() -> None:
    first = red(2, task_id="T-001", task_title="推进老旧小区改造")
    second = red(
        1,
        task_id="T-002",
        task_title="完善养老服务体系",
        red_since=sh(7, 2, 0, 5),
        co_units=("市民政局",),
        leaders=("李副市长",),
    )
    planned = evaluate([first, second], [], [], [], default_policy(), sh(7, 2)).notifications
    digests = group_into_digests(planned)
    by_target = {(d.recipient.role.value, d.recipient.name, d.channel.value): d for d in digests}
    assert set(by_target) == {
        ("lead_unit_leadership", LEAD, "email"),
        ("lead_unit_leadership", LEAD, "dingtalk"),
        ("supervising_office", OFFICE, "email"),
        ("supervising_office", OFFICE, "webhook"),
    }
    for digest in digests:
        assert digest.task_ids == ("T-001", "T-002")
        assert digest.level == 2
        assert len(set(digest.notification_ids)) == 2
    # One message per recipient and channel: the e-mail and DingTalk digests differ.
    assert len({d.digest_id for d in digests}) == 4


def test_digests_do_not_mix_windows() -> None:
    planned_a = evaluate([red(1)], [], [], [], default_policy(), sh(7, 1)).notifications
    planned_b = evaluate(
        [red(2, task_id="T-002")], [], [], [], default_policy(), sh(7, 2)
    ).notifications
    digests = group_into_digests([*planned_a, *planned_b])
    assert all(len(d.task_ids) == 1 for d in digests)
    assert len(digests) == 8


def test_acknowledgement_stops_repeats_then_rearms_without_a_report() -> None:
    sim = Simulator()
    assert keys(sim.tick(sh(7, 1), red(1))) == L2
    sim.acks.append(Ack("T-001", 2, by=LEAD, at=sh(7, 2, 10)))
    assert sim.tick(sh(7, 4), red(4)) == []  # repeat due, but acknowledged
    assert sim.tick(sh(7, 5, 9), red(5)) == []  # 71 hours after the acknowledgement
    rearmed = sim.tick(sh(7, 5, 11), red(5))  # 73 hours, no report since: re-armed
    assert keys(rearmed) == L2
    assert {n.sequence for n in rearmed} == {2}
    # Re-armed means started afresh: the next repeat is three days on.
    assert sim.tick(sh(7, 6), red(6)) == []
    assert keys(sim.tick(sh(7, 8), red(8))) == L2_LEADERSHIP | L3


def test_acknowledgement_followed_by_a_report_stays_quiet() -> None:
    sim = Simulator()
    sim.tick(sh(7, 1), red(1))
    sim.acks.append(Ack("T-001", 2, by=LEAD, at=sh(7, 2, 10)))
    reported = red(6, last_report_at=sh(7, 3, 16))
    assert sim.tick(sh(7, 6), reported) == []
    # The acknowledgement covers 督办 only: 通报 still comes at day 7.
    assert keys(sim.tick(sh(7, 8), red(8, last_report_at=sh(7, 3, 16)))) == L3


def test_acknowledgement_from_an_earlier_episode_is_ignored() -> None:
    old_ack = Ack("T-001", 2, by=LEAD, at=sh(6, 1))
    planned = evaluate([red(1)], [], [old_ack], [], default_policy(), sh(7, 1)).notifications
    assert keys(planned) == L2


def test_snooze_silences_until_its_end() -> None:
    sim = Simulator()
    sim.snoozes.append(Snooze("T-001", until=sh(7, 3, 12), reason="市领导已现场调度，暂缓督办"))
    assert sim.tick(sh(7, 1), red(1)) == []
    assert sim.tick(sh(7, 3, 11), red(3)) == []
    assert keys(sim.tick(sh(7, 3, 13), red(3))) == L2


def test_snooze_of_one_level_leaves_the_others() -> None:
    sim = Simulator()
    for day in (1, 4, 7):
        sim.tick(sh(7, day), red(day))
    sim.snoozes.append(Snooze("T-001", until=sh(7, 20), reason="通报暂缓", level=3))
    # The office, superseded by a snoozed 通报, hears nothing about this task.
    assert keys(sim.tick(sh(7, 8), red(8))) == set()
    assert keys(sim.tick(sh(7, 10), red(10))) == L2_LEADERSHIP


def test_snooze_needs_a_reason() -> None:
    with pytest.raises(ValueError, match="reason"):
        Snooze("T-001", until=sh(7, 3), reason="  ")


def test_max_repeats() -> None:
    policy = parse_policy(
        default_policy_text().replace(
            "    wait_before_next_days: 7\n", "    wait_before_next_days: 7\n    max_repeats: 1\n"
        )
    )
    assert policy.level(2).max_repeats == 1
    sim = Simulator(policy=policy)
    assert keys(sim.tick(sh(7, 1), red(1))) == L2
    assert keys(sim.tick(sh(7, 4), red(4))) == L2
    assert sim.tick(sh(7, 7), red(7)) == []
    assert keys(sim.tick(sh(7, 8), red(8))) == L3
    assert sim.tick(sh(7, 10), red(10)) == []


@pytest.mark.parametrize(
    "overrides",
    [
        {"extended": True},
        {"status": "completion_requested", "light": "blue"},
        {"status": "completion_requested"},
        {"status": "closed", "light": "grey"},
        {"light": "grey"},
    ],
    ids=["extension", "completion", "completion-requested-still-red", "closure", "grey"],
)
def test_escalation_stops(overrides: dict[str, object]) -> None:
    sim = Simulator()
    assert keys(sim.tick(sh(7, 1), red(1))) == L2
    assert sim.tick(sh(7, 8), red(8, **overrides)) == []


def test_ladder_waits_for_the_notice_before_the_bulletin() -> None:
    sim = Simulator()
    # First seen ten days red (e.g. the notifier was just deployed): 督办 now, not 通报.
    late = red(10, red_since=sh(6, 21, 0, 5))
    assert keys(sim.tick(sh(7, 1), late)) == L2
    assert keys(sim.tick(sh(7, 4), late)) == L2
    assert keys(sim.tick(sh(7, 7), late)) == L2
    assert keys(sim.tick(sh(7, 8), late)) == L3  # seven days after the first 督办


def test_ids_are_deterministic() -> None:
    policy = default_policy()
    first = evaluate([red(1)], [], [], [], policy, sh(7, 1, 9)).notifications
    again = evaluate(
        [red(1)], [], [], [], policy, sh(7, 1, 17, 30)
    ).notifications  # same window, later
    assert [n.notification_id for n in first] == [n.notification_id for n in again]
    item = next(n for n in first if n.recipient.role is RecipientRole.SUPERVISING_OFFICE)
    expected = notification_id("T-001", 2, item.recipient, window_start(sh(7, 1), policy))
    assert item.notification_id == expected
    # Both channels of one recipient carry one notification id; digests differ per channel.
    office = [n for n in first if n.recipient == item.recipient]
    assert {n.notification_id for n in office} == {expected}
    tomorrow = evaluate([red(2)], [], [], [], policy, sh(7, 2)).notifications
    assert not {n.notification_id for n in tomorrow} & {n.notification_id for n in first}
    digests_1 = group_into_digests(first)
    digests_2 = group_into_digests(list(reversed(again)))
    assert [d.digest_id for d in digests_1] == [d.digest_id for d in digests_2]


def test_window_is_the_shanghai_day() -> None:
    policy = default_policy()
    utc_evening = datetime.fromisoformat("2022-06-30T17:30:00+00:00")  # 01:30 on 1 July
    assert window_start(utc_evening, policy) == sh(7, 1, 0)


def test_one_notification_per_window_even_if_the_light_flaps() -> None:
    sim = Simulator()
    assert keys(sim.tick(sh(7, 1, 9), red(1))) == L2
    # Back to yellow at 11:00, red again at 14:00: a new episode, but the same window.
    again = red(1, red_since=sh(7, 1, 14))
    assert sim.tick(sh(7, 1, 15), again) == []


def test_two_channels_count_as_one_send_for_max_repeats() -> None:
    policy = parse_policy(
        default_policy_text().replace(
            "    wait_before_next_days: 7\n", "    wait_before_next_days: 7\n    max_repeats: 0\n"
        )
    )
    sim = Simulator(policy=policy)
    assert keys(sim.tick(sh(7, 1), red(1))) == L2
    assert sim.tick(sh(7, 4), red(4)) == []


def test_missing_recipients_are_reported_not_skipped() -> None:
    sim = Simulator()
    first = evaluate([red(1, leaders=(), lead_units=())], [], [], [], sim.policy, sh(7, 1))
    assert {(g.level, g.role) for g in first.gaps} == {(2, RecipientRole.LEAD_UNIT_LEADERSHIP)}
    assert keys(first.notifications) == L2_OFFICE
    sim.tick(sh(7, 1), red(1, leaders=(), lead_units=()))
    result = evaluate(
        [red(8, leaders=(), lead_units=())], sim.history, [], [], sim.policy, sh(7, 8)
    )
    assert {(g.level, g.role) for g in result.gaps} == {
        (2, RecipientRole.LEAD_UNIT_LEADERSHIP),
        (3, RecipientRole.SUPERVISING_LEADER),
    }
    assert keys(result.notifications) == L3 - {(3, "supervising_leader", LEADER, "email")}
    assert result.policy_fingerprint == sim.policy.fingerprint


def test_policy_change_is_picked_up() -> None:
    sim = Simulator()
    sim.tick(sh(7, 1), red(1))
    assert sim.tick(sh(7, 2), red(2)) == []
    daily = parse_policy(
        default_policy_text().replace("repeat_every_days: 3", "repeat_every_days: 1")
    )
    assert daily.fingerprint != sim.policy.fingerprint
    sim.policy = daily
    assert keys(sim.tick(sh(7, 2, 10), red(2))) == L2


def test_inputs_must_be_timezone_aware() -> None:
    naive = datetime(2022, 7, 1, 9)  # noqa: DTZ001 — the point of the test
    with pytest.raises(ValueError, match="timezone-aware"):
        evaluate([red(1)], [], [], [], default_policy(), naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        task(light="red", red_since=naive)


def test_red_without_red_since_is_refused() -> None:
    with pytest.raises(ValueError, match="red_since"):
        task(light="red")


def test_unknown_status_is_refused() -> None:
    with pytest.raises(ValueError, match="status"):
        task(status="done")


def test_duplicate_tasks_are_refused() -> None:
    with pytest.raises(ValueError, match="twice"):
        evaluate([red(1), red(1)], [], [], [], default_policy(), sh(7, 1))


def test_overdue_trigger_counts_from_the_deadline() -> None:
    policy = parse_policy(
        default_policy_text().replace(
            "      - light: red\n        for_days: 7\n", "      - min_days_overdue: 5\n"
        )
    )
    sim = Simulator(policy=policy)
    sim.tick(sh(7, 1), red(1))
    assert keys(sim.tick(sh(7, 4), red(4))) == L2
    # Due 30 June: five days overdue on 5 July, and the 督办 wait has not passed yet.
    assert sim.tick(sh(7, 5), red(5)) == []
    assert keys(sim.tick(sh(7, 7), red(7))) == L2
    assert keys(sim.tick(sh(7, 8), red(8))) == L3
    # A stale day count (5 on 10 July) does not move the start forward: no second 通报.
    assert keys(sim.tick(sh(7, 10), red(5))) == L2_LEADERSHIP


def test_recipients_are_named_by_role() -> None:
    planned = evaluate(
        [red(8, red_since=sh(6, 21))], [], [], [], default_policy(), sh(6, 21)
    ).notifications
    recipients = {n.recipient for n in planned}
    assert Recipient(RecipientRole.LEAD_UNIT_LEADERSHIP, LEAD) in recipients
    assert Recipient(RecipientRole.SUPERVISING_OFFICE, OFFICE) in recipients
    assert {n.channel for n in planned} == {
        ChannelKind.EMAIL,
        ChannelKind.DINGTALK,
        ChannelKind.WEBHOOK,
    }
    assert all(n.window_start == sh(6, 21, 0) for n in planned)
    assert all(n.window_start.utcoffset() == timedelta(hours=8) for n in planned)
