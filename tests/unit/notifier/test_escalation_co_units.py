"""The engine's 催办 to co-units whose part is missing (recipient role `co_unit_missing`)."""

from __future__ import annotations

from datetime import datetime, timedelta

from services.notifier.conditions import condition_from_json, condition_to_json
from services.notifier.escalation.engine import (
    Ack,
    MissingPart,
    Recipient,
    Snooze,
    TaskCondition,
    evaluate,
    notification_id,
    window_start,
)
from services.notifier.escalation.policy import RecipientRole, default_policy
from services.notifier.escalation.render import render_notification

from ._builders import Key, Simulator, keys, sh, task

LEAD, FINANCE, STATS = "市住房城乡建设委", "市财政局", "市统计局"


def due(month: int, day: int) -> datetime:
    """The end of an on-time day: when a part not filed goes missing."""
    return sh(month, day, 23, 59) + timedelta(seconds=59, microseconds=999999)


AUG = MissingPart(FINANCE, "2022-08", due(9, 5))
SEP = MissingPart(FINANCE, "2022-09", due(10, 8))


def with_parts(*parts: MissingPart, **fields: object) -> TaskCondition:
    return task(co_units=(FINANCE, STATS), missing_parts=parts, **fields)


def chased(unit: str) -> set[Key]:
    return {(1, "co_unit_missing", unit, "email"), (1, "co_unit_missing", unit, "wecom")}


def test_each_co_unit_with_a_missing_part_is_sent_a_reminder_alone() -> None:
    stats_aug = MissingPart(STATS, "2022-08", due(9, 5))
    planned = Simulator().tick(sh(9, 6), with_parts(AUG, stats_aug))
    assert keys(planned) == chased(FINANCE) | chased(STATS)
    assert {(n.level_name, n.sequence) for n in planned} == {("催办", 1)}
    # The id is the usual one: task, level, recipient, window.
    recipient = Recipient(RecipientRole.CO_UNIT_MISSING, FINANCE)
    window = window_start(sh(9, 6), default_policy())
    assert {n.notification_id for n in planned if n.recipient == recipient} == {
        notification_id("T-001", 1, recipient, window)
    }


def test_a_part_not_yet_missing_sends_nothing() -> None:
    assert Simulator().tick(sh(9, 5, 22), with_parts(AUG)) == []


def test_one_reminder_per_missing_part_deduped_per_window_and_never_repeated() -> None:
    sim = Simulator()
    assert keys(sim.tick(sh(9, 6), with_parts(AUG))) == chased(FINANCE)
    assert sim.tick(sh(9, 6, 15), with_parts(AUG)) == []  # the same window
    for day in range(7, 30):  # the level repeats every 3 days; a part chased is not
        assert sim.tick(sh(9, day), with_parts(AUG)) == []
    # September's part goes missing too: a second reminder at once, the second since August's.
    second = sim.tick(sh(10, 9), with_parts(AUG, SEP))
    assert keys(second) == chased(FINANCE)
    assert {n.sequence for n in second} == {2}
    assert sim.tick(sh(10, 12), with_parts(AUG, SEP)) == []
    sent = {r.recipient for r in sim.history}
    assert sent == {Recipient(RecipientRole.CO_UNIT_MISSING, FINANCE)}


def test_a_part_filed_then_another_missed_starts_again_at_one() -> None:
    sim = Simulator()
    sim.tick(sh(9, 6), with_parts(AUG))
    planned = sim.tick(sh(10, 9), with_parts(SEP))
    assert {n.sequence for n in planned} == {1}


def test_a_red_lead_does_not_inhibit_the_co_units_reminder() -> None:
    red = with_parts(AUG, light="red", red_since=sh(7, 1, 0), days_overdue=68)
    planned = keys(Simulator().tick(sh(9, 6), red))
    assert chased(FINANCE) <= planned
    assert not {k for k in planned if k[0] == 1 and k[1] != "co_unit_missing"}


def test_a_co_unit_hearing_the_level_as_a_responsible_unit_is_not_sent_it_twice() -> None:
    yellow = with_parts(AUG, light="yellow", yellow_since=sh(9, 1, 0))
    planned = keys(Simulator().tick(sh(9, 6), yellow))
    assert (1, "responsible_units", FINANCE, "email") in planned
    assert not planned & chased(FINANCE)


def test_a_snooze_holds_the_reminder_back_until_it_ends() -> None:
    sim = Simulator()
    sim.snoozes.append(Snooze("T-001", until=sh(9, 10, 0), reason="配合单位已电话说明", level=1))
    assert sim.tick(sh(9, 6), with_parts(AUG)) == []
    assert keys(sim.tick(sh(9, 10), with_parts(AUG))) == chased(FINANCE)


def test_an_acknowledgement_does_not_hold_back_the_next_missing_part() -> None:
    sim = Simulator()
    sim.tick(sh(9, 6), with_parts(AUG))
    sim.acks.append(Ack("T-001", 1, FINANCE, sh(9, 7)))
    assert keys(sim.tick(sh(10, 9), with_parts(AUG, SEP))) == chased(FINANCE)


def test_a_stopped_task_chases_no_part() -> None:
    for stopped in (
        with_parts(AUG, light="blue", status="completion_requested"),
        with_parts(AUG, extended=True),
    ):
        assert Simulator().tick(sh(9, 6), stopped) == []


def test_without_the_role_in_the_policy_no_co_unit_is_chased() -> None:
    policy = default_policy()
    level = policy.levels[0]
    without = policy.model_copy(
        update={
            "levels": (
                level.model_copy(
                    update={
                        "recipients": tuple(
                            r for r in level.recipients if r.role != RecipientRole.CO_UNIT_MISSING
                        )
                    }
                ),
                *policy.levels[1:],
            )
        }
    )
    plan = evaluate([with_parts(AUG)], [], [], [], without, sh(9, 6))
    assert plan.notifications == ()
    assert plan.gaps == ()


def test_the_notice_to_a_co_unit_speaks_of_its_part() -> None:
    condition = with_parts(
        AUG,
        SEP,
        reasons_zh=("2022年9月月报逾期 1 天", "配合单位未报送：市财政局（2022年8月、2022年9月）"),
    )
    [item, *_] = Simulator().tick(sh(10, 9), condition)
    subject, body = render_notification(item, condition)
    assert "配合单位分项进展逾期未报（共 2 期，应于9月5日前报送）" in subject
    assert "原因：配合单位未报送：市财政局（2022年8月、2022年9月）" in body
    assert "月报逾期" not in body


def test_missing_parts_survive_a_digest_snapshot() -> None:
    condition = with_parts(AUG, SEP)
    assert condition_from_json(condition_to_json(condition)) == condition
    old = condition_to_json(condition)
    del old["missing_parts"]  # a snapshot taken before co-units owed parts
    assert condition_from_json(old).missing_parts == ()
