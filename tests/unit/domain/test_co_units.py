"""Co-units' parts (配合单位分项报送): owed on the task's cadence, missing parts as reasons,
and the policy's say over whether they light the lead's task (docs/domain.md §4, §5)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import Any

import pytest

from services.tracker.domain.cadence import ReportPeriod
from services.tracker.domain.lights import (
    CoUnitParts,
    MissingPart,
    ReasonCode,
    TaskSnapshot,
    missing_parts,
    part_reasons,
)
from services.tracker.policy.supervision import (
    SupervisionPolicyError,
    default_supervision_policy,
    parse_supervision_policy,
)
from shared.vocabulary import Cadence, DeadlineKind, Light, TaskStatus
from shared.workcal import standard_calendar

from ._support import light_of, policy, sh, task

FINANCE, STATS = "市财政局", "市统计局"


def periods(*keys: str) -> frozenset[ReportPeriod]:
    return frozenset(ReportPeriod.parse(k) for k in keys)


def continuous(cadence: Cadence, *co: CoUnitParts, **fields: Any) -> TaskSnapshot:
    """A 长期坚持 task (no end) reporting at `cadence`, with these co-units."""
    return task(
        deadline_kind=DeadlineKind.CONTINUOUS,
        due_date=None,
        cadence=cadence,
        co_units=co,
        **fields,
    )


def keys(parts: Iterable[MissingPart]) -> list[tuple[str, str]]:
    return [(p.unit, p.period.key) for p in parts]


def test_the_shipped_policy_has_co_units_owe_parts_without_lighting_the_lead() -> None:
    shipped = default_supervision_policy()
    assert (shipped.co_units.owe_parts, shipped.co_units.light_lead) == (True, False)
    rules = shipped.light_policy()
    assert (rules.co_units_owe_parts, rules.co_units_light_lead) == (True, None)


@pytest.mark.parametrize(
    ("cadence", "received", "now", "missing"),
    [
        # Each cadence across the 2022/2023 year end: the last 2022 period's part falls due in
        # 2023 (plain calendar days here), and is missing from 00:00 after its due day.
        (Cadence.WEEKLY, ("2022-W51",), sh(2023, 1, 2, 23), []),
        (Cadence.WEEKLY, ("2022-W51",), sh(2023, 1, 3), ["2022-W52"]),
        (Cadence.MONTHLY, ("2022-10", "2022-11"), sh(2023, 1, 5, 23), []),
        (Cadence.MONTHLY, ("2022-10", "2022-11"), sh(2023, 1, 6), ["2022-12"]),
        (Cadence.MONTHLY, ("2022-10",), sh(2023, 1, 6), ["2022-11", "2022-12"]),
        (Cadence.BI_MONTHLY, ("2022-B5",), sh(2023, 1, 6), ["2022-B6"]),
        (Cadence.QUARTERLY, ("2022-Q3",), sh(2023, 1, 6), ["2022-Q4"]),
        (Cadence.HALF_YEARLY, ("2022-H1",), sh(2023, 1, 6), ["2022-H2"]),
        (Cadence.YEARLY, (), sh(2023, 1, 6), ["2022"]),
        (Cadence.YEARLY, (), sh(2023, 1, 5), []),
    ],
)
def test_co_unit_parts_are_owed_per_cadence_across_the_year_end(
    cadence: Cadence, received: tuple[str, ...], now: datetime, missing: list[str]
) -> None:
    start = ReportPeriod.containing(cadence, date(2022, 10, 1)).start
    if received:
        start = ReportPeriod.parse(received[0]).start
    snapshot = continuous(
        cadence, CoUnitParts(STATS, periods(*received)), start_date=start, created_at=sh(2022, 1, 1)
    )
    found = missing_parts(snapshot, now=now, policy=policy(co_units_owe_parts=True))
    assert keys(found) == [(STATS, key) for key in missing]


def test_a_part_due_on_a_holiday_is_missing_only_after_the_next_working_day() -> None:
    # The December part falls due 2023-01-05 (a Thursday); W52's Monday 2023-01-02 is the
    # 元旦 holiday, so that week's part is due 2023-01-03.
    rules = policy(co_units_owe_parts=True, calendar=standard_calendar())
    snapshot = continuous(
        Cadence.WEEKLY, CoUnitParts(STATS, periods("2022-W51")), start_date=date(2022, 12, 19)
    )
    assert keys(missing_parts(snapshot, now=sh(2023, 1, 3, 23), policy=rules)) == []
    assert keys(missing_parts(snapshot, now=sh(2023, 1, 4), policy=rules)) == [(STATS, "2022-W52")]


def test_each_co_unit_owes_its_own_parts_in_document_order() -> None:
    snapshot = continuous(
        Cadence.MONTHLY,
        CoUnitParts(FINANCE, periods("2022-01")),
        CoUnitParts(STATS, periods("2022-01", "2022-02")),
        start_date=date(2022, 1, 1),
    )
    found = missing_parts(snapshot, now=sh(2022, 4, 6), policy=policy(co_units_owe_parts=True))
    assert keys(found) == [(FINANCE, "2022-02"), (FINANCE, "2022-03"), (STATS, "2022-03")]
    assert [(p.due_date, p.last_accepted) for p in found[:1]] == [
        (date(2022, 3, 5), date(2022, 3, 5))
    ]
    assert found[0].due_at == sh(2022, 3, 5, 23, 59, 59) + timedelta(microseconds=999999)


@pytest.mark.parametrize(
    "fields",
    [
        {"deadline_kind": DeadlineKind.COMPLETE},  # no cadence: nobody owes periodic reports
        {"co_units": ()},  # no co-unit
    ],
)
def test_no_parts_are_owed_without_a_cadence_or_a_co_unit(fields: dict[str, object]) -> None:
    base: dict[str, object] = {
        "deadline_kind": DeadlineKind.CONTINUOUS,
        "due_date": None,
        "co_units": (CoUnitParts(STATS),),
    }
    base.update(fields)
    snapshot = task(**base)
    assert missing_parts(snapshot, now=sh(2022, 6, 6), policy=policy(co_units_owe_parts=True)) == ()


def test_the_policy_can_turn_parts_off() -> None:
    snapshot = continuous(Cadence.MONTHLY, CoUnitParts(STATS), received_periods=())
    now = sh(2022, 3, 6)
    assert missing_parts(snapshot, now=now, policy=policy(co_units_owe_parts=False)) == ()
    evaluation = light_of(snapshot, now=now, policy=policy(co_units_owe_parts=False))
    assert all(r.code is not ReasonCode.PART_MISSING for r in evaluation.reasons)


@pytest.mark.parametrize(
    ("keys_", "text"),
    [
        (["2022-10"], "配合单位未报送：市财政局（2022年10月）"),
        (["2022-09", "2022-10"], "配合单位未报送：市财政局（2022年9月、2022年10月）"),
        (
            ["2022-08", "2022-09", "2022-10"],
            "配合单位未报送：市财政局（2022年8月、2022年9月、2022年10月）",
        ),
        (
            ["2022-06", "2022-07", "2022-08", "2022-09", "2022-10"],
            "配合单位未报送：市财政局（2022年6月、2022年7月等 5 期）",
        ),
        (["2022-Q3"], "配合单位未报送：市财政局（2022年第3季度）"),
        (["2022-H1"], "配合单位未报送：市财政局（2022年上半年）"),
    ],
)
def test_a_missing_part_reason_names_the_co_unit_and_its_periods(
    keys_: list[str], text: str
) -> None:
    snapshot = continuous(
        ReportPeriod.parse(keys_[0]).cadence,
        CoUnitParts(FINANCE),
        start_date=ReportPeriod.parse(keys_[0]).start,
    )
    last = ReportPeriod.parse(keys_[-1])
    now = last.report_missed_from(policy().due_rule())
    found = missing_parts(snapshot, now=now, policy=policy(co_units_owe_parts=True))
    assert [p.period.key for p in found] == keys_
    [reason] = part_reasons(found)
    assert (reason.code, reason.text_zh) == (ReasonCode.PART_MISSING, text)


def lead_on_time(*co: CoUnitParts) -> TaskSnapshot:
    """A monthly continuous task whose lead has filed January to March, on 2022-04-06."""
    return continuous(
        Cadence.MONTHLY,
        *co,
        start_date=date(2022, 1, 1),
        received_periods=periods("2022-01", "2022-02", "2022-03"),
    )


NOW = sh(2022, 4, 6, 9)
REASON = "配合单位未报送：市统计局（2022年3月）"


def test_by_default_a_missing_part_is_listed_but_leaves_the_lead_green() -> None:
    snapshot = lead_on_time(CoUnitParts(STATS, periods("2022-01", "2022-02")))
    evaluation = light_of(snapshot, now=NOW, policy=policy(co_units_owe_parts=True))
    assert evaluation.light is Light.GREEN
    assert [r.text_zh for r in evaluation.reasons] == [REASON]
    assert keys(evaluation.missing_parts) == [(STATS, "2022-03")]
    assert (evaluation.days_overdue, evaluation.red_since) == (0, None)
    # It next changes when April's part (due 5月5日) goes missing.
    assert evaluation.next_evaluation_at == sh(2022, 5, 6)


def test_light_lead_yellow_turns_the_lead_yellow() -> None:
    snapshot = lead_on_time(CoUnitParts(STATS, periods("2022-01", "2022-02")))
    rules = policy(co_units_owe_parts=True, co_units_light_lead=Light.YELLOW)
    evaluation = light_of(snapshot, now=NOW, policy=rules)
    assert (evaluation.light, [r.text_zh for r in evaluation.reasons]) == (Light.YELLOW, [REASON])


def test_light_lead_red_turns_the_lead_red_counting_from_the_parts_due_date() -> None:
    snapshot = lead_on_time(CoUnitParts(STATS, periods("2022-01", "2022-02")))
    rules = policy(co_units_owe_parts=True, co_units_light_lead=Light.RED)
    evaluation = light_of(snapshot, now=NOW, policy=rules)
    assert (evaluation.light, [r.text_zh for r in evaluation.reasons]) == (Light.RED, [REASON])
    # March's part was due 4月5日: missed from 4月6日, one day late.
    assert (evaluation.days_overdue, evaluation.red_since) == (1, sh(2022, 4, 6))


def test_a_part_filed_is_no_reason_and_the_lead_light_is_its_own() -> None:
    snapshot = lead_on_time(CoUnitParts(STATS, periods("2022-01", "2022-02", "2022-03")))
    for light_lead in (None, Light.YELLOW, Light.RED):
        rules = policy(co_units_owe_parts=True, co_units_light_lead=light_lead)
        evaluation = light_of(snapshot, now=NOW, policy=rules)
        assert (evaluation.light, evaluation.reasons, evaluation.missing_parts) == (
            Light.GREEN,
            (),
            (),
        )


def test_a_red_lead_lists_the_missing_part_after_its_own_reasons() -> None:
    snapshot = continuous(
        Cadence.MONTHLY,
        CoUnitParts(STATS, periods("2022-01", "2022-02")),
        start_date=date(2022, 1, 1),
        received_periods=periods("2022-01", "2022-02"),
    )
    evaluation = light_of(snapshot, now=NOW, policy=policy(co_units_owe_parts=True))
    assert evaluation.light is Light.RED
    assert [r.text_zh for r in evaluation.reasons] == ["2022年3月月报逾期 1 天", REASON]


@pytest.mark.parametrize(
    ("status", "light"),
    [(TaskStatus.COMPLETION_REQUESTED, Light.BLUE), (TaskStatus.CLOSED, Light.GREY)],
)
def test_a_task_awaiting_sign_off_or_closed_lists_no_parts(
    status: TaskStatus, light: Light
) -> None:
    snapshot = continuous(Cadence.MONTHLY, CoUnitParts(STATS), status=status)
    evaluation = light_of(snapshot, now=NOW, policy=policy(co_units_owe_parts=True))
    assert evaluation.light is light
    assert evaluation.missing_parts == ()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("co_units: {light_lead: true}\n", "co_units.light_lead"),
        ("co_units: {owe_parts: maybe}\n", "co_units.owe_parts"),
        ("co_units: {light_leads: red}\n", "co_units.light_leads"),
    ],
)
def test_a_bad_co_units_rule_is_refused_naming_its_line(text: str, message: str) -> None:
    with pytest.raises(SupervisionPolicyError) as raised:
        parse_supervision_policy("version: 1\n" + text, "supervision.yaml")
    assert "supervision.yaml:2:" in str(raised.value)
    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("value", "light"), [("false", None), ("yellow", Light.YELLOW), ("red", Light.RED)]
)
def test_light_lead_reads_false_yellow_or_red(value: str, light: Light | None) -> None:
    parsed = parse_supervision_policy(f"version: 1\nco_units: {{light_lead: {value}}}\n")
    assert parsed.light_policy().co_units_light_lead is light
