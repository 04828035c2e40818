"""Weighted roll-up of milestones and indicators."""

from __future__ import annotations

import pytest

from services.tracker.domain.progress import (
    IndicatorProgress,
    MilestoneProgress,
    ProgressGroup,
    ProgressNode,
    node_percent,
    rolled_up_percent,
)


@pytest.mark.parametrize(
    ("node", "percent"),
    [
        (MilestoneProgress("建成通车", done=True), 100),
        (MilestoneProgress("建成通车", done=True, percent=40), 100),
        (MilestoneProgress("建成通车", percent=40), 40),
        (MilestoneProgress("建成通车"), 0),
        (IndicatorProgress("新增就业", target=40_000, actual=10_000), 25),
        (IndicatorProgress("新增就业", target=40_000, actual=52_000), 100),
        (IndicatorProgress("新增学位", target=1500, actual=-10), 0),
        (IndicatorProgress("引进项目", target=3, actual=1), 100 / 3),
        (ProgressGroup("空", ()), None),
    ],
)
def test_single_node_progress(node: ProgressNode, percent: float | None) -> None:
    result = node_percent(node)
    if percent is None:
        assert result is None
    else:
        assert result == pytest.approx(percent)


def test_equal_weights_give_the_plain_average() -> None:
    nodes: list[ProgressNode] = [
        MilestoneProgress("A", done=True),
        MilestoneProgress("B", percent=50),
    ]
    assert rolled_up_percent(nodes) == 75


def test_weights_are_normalised() -> None:
    nodes: list[ProgressNode] = [
        MilestoneProgress("A", done=True, weight=0.25),
        IndicatorProgress("B", target=100, actual=20, weight=0.75),
    ]
    assert rolled_up_percent(nodes) == pytest.approx(40)
    scaled: list[ProgressNode] = [
        MilestoneProgress("A", done=True, weight=1),
        IndicatorProgress("B", target=100, actual=20, weight=3),
    ]
    assert rolled_up_percent(scaled) == pytest.approx(40)


def test_groups_roll_up_recursively() -> None:
    tree: list[ProgressNode] = [
        ProgressGroup(
            "一期",
            (
                MilestoneProgress("开工", done=True),
                MilestoneProgress("主体完工", percent=50),
            ),
            weight=2,
        ),
        IndicatorProgress("新增就业", target=40_000, actual=10_000),
    ]
    # (75 * 2 + 25 * 1) / 3
    assert rolled_up_percent(tree) == pytest.approx(175 / 3)


def test_unmeasurable_children_are_left_out_not_counted_as_zero() -> None:
    nodes: list[ProgressNode] = [MilestoneProgress("A", percent=60), ProgressGroup("空", ())]
    assert rolled_up_percent(nodes) == 60
    zero_weight: list[ProgressNode] = [MilestoneProgress("A", percent=60, weight=0)]
    assert rolled_up_percent(zero_weight) is None
    assert rolled_up_percent([]) is None


@pytest.mark.parametrize(
    "build",
    [
        lambda: MilestoneProgress("A", weight=-1),
        lambda: MilestoneProgress("A", percent=101),
        lambda: MilestoneProgress("A", percent=-0.1),
        lambda: IndicatorProgress("B", target=0, actual=1),
        lambda: IndicatorProgress("B", target=-5, actual=1),
        lambda: IndicatorProgress("B", target=float("nan"), actual=1),
        lambda: IndicatorProgress("B", target=10, actual=float("inf")),
        lambda: ProgressGroup("C", (), weight=float("nan")),
    ],
)
def test_bad_inputs_are_rejected(build: object) -> None:
    with pytest.raises(ValueError):
        build()  # type: ignore[operator]
