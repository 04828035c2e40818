"""Progress: the figures a task's progress is made of, and their roll-up into one percentage.

As in Decidim's accountability result trees, a parent's progress is the weighted mean of
its children's. Weights need not sum to 1 (the mean is normalised), so equal weights give
the plain average. A child without measurable progress (an empty group, or a group whose
children all weigh 0) is left out rather than counted as 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction

from shared.vocabulary import TargetDirection

FULL = Fraction(100)


def _fraction(value: int | float, name: str) -> Fraction:
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value}")
    # Through str so 33.3 stays 333/10 rather than its binary approximation.
    return Fraction(str(value))


def _check_weight(weight: int | float) -> None:
    if not math.isfinite(weight) or weight < 0:
        raise ValueError(f"weight must be a finite number >= 0, got {weight}")


@dataclass(frozen=True)
class MilestoneProgress:
    """A milestone: done counts 100; otherwise its reported percent, or 0."""

    name: str
    done: bool = False
    percent: float | None = None
    weight: float = 1

    def __post_init__(self) -> None:
        _check_weight(self.weight)
        if self.percent is not None and not 0 <= self.percent <= 100:
            raise ValueError(f"percent of {self.name!r} must be within 0..100, got {self.percent}")


@dataclass(frozen=True)
class IndicatorProgress:
    """A numeric target (新增就业4万人) and its attainment, read by its direction.

    - at least (以上, 不低于, 增长X%): actual ÷ target;
    - at most (以内, 不超过, 控制在): met at or under the target, else less by the share the
      actual exceeds it (6.0 against 5.5%以内: 100 − 9.1);
    - about (左右): met within `band_percent` of the target, else less by the share beyond it.

    Within 0..100. With no actual yet it has nothing measurable and is left out.
    """

    name: str
    target: float
    actual: float | None
    direction: TargetDirection = TargetDirection.AT_LEAST
    band_percent: float = 0
    weight: float = 1

    def __post_init__(self) -> None:
        _check_weight(self.weight)
        if not math.isfinite(self.target) or self.target <= 0:
            raise ValueError(f"target of {self.name!r} must be > 0, got {self.target}")
        if self.actual is not None and not math.isfinite(self.actual):
            raise ValueError(f"actual of {self.name!r} must be finite, got {self.actual}")
        if not math.isfinite(self.band_percent) or self.band_percent < 0:
            raise ValueError(f"band_percent must be >= 0, got {self.band_percent}")


@dataclass(frozen=True)
class ProgressGroup:
    """A node whose progress is the weighted mean of its children (a Decidim parent result)."""

    name: str
    children: tuple[ProgressNode, ...] = field(default=())
    weight: float = 1

    def __post_init__(self) -> None:
        _check_weight(self.weight)
        object.__setattr__(self, "children", tuple(self.children))


ProgressNode = MilestoneProgress | IndicatorProgress | ProgressGroup


def _node_fraction(node: ProgressNode) -> Fraction | None:
    if isinstance(node, MilestoneProgress):
        if node.done:
            return FULL
        return _fraction(node.percent, "percent") if node.percent is not None else Fraction(0)
    if isinstance(node, IndicatorProgress):
        return _attainment(node)
    return _mean(node.children)


def _attainment(node: IndicatorProgress) -> Fraction | None:
    if node.actual is None:
        return None
    target = _fraction(node.target, "target")
    actual = _fraction(node.actual, "actual")
    if node.direction is TargetDirection.AT_LEAST:
        share = actual * 100 / target
    else:
        allowed = target * _fraction(node.band_percent, "band_percent") / 100
        if node.direction is TargetDirection.AT_MOST:
            excess = actual - target
        else:
            excess = abs(actual - target) - allowed
        share = FULL if excess <= 0 else FULL - excess * 100 / target
    return min(max(share, Fraction(0)), FULL)


def _mean(nodes: Sequence[ProgressNode]) -> Fraction | None:
    total_weight = Fraction(0)
    weighted_sum = Fraction(0)
    for node in nodes:
        value = _node_fraction(node)
        if value is None:
            continue
        weight = _fraction(node.weight, "weight")
        total_weight += weight
        weighted_sum += value * weight
    if total_weight == 0:
        return None
    return weighted_sum / total_weight


def node_percent(node: ProgressNode) -> float | None:
    """One node's progress in percent, or None if it has nothing measurable."""
    value = _node_fraction(node)
    return float(value) if value is not None else None


def rolled_up_percent(nodes: Sequence[ProgressNode]) -> float | None:
    """A task's percent from its milestones and indicators, or None if nothing is measurable."""
    value = _mean(nodes)
    return float(value) if value is not None else None


@dataclass(frozen=True)
class ProgressWeights:
    """How much each figure counts in a task's progress (the supervision policy's weights)."""

    reported: float
    targets: float
    milestones: float

    def __post_init__(self) -> None:
        for weight in (self.reported, self.targets, self.milestones):
            _check_weight(weight)
        if self.reported + self.targets + self.milestones == 0:
            raise ValueError("at least one progress weight must be > 0")


@dataclass(frozen=True)
class TaskProgress:
    """A task's progress and the figures it was made of (each None when the task lacks it)."""

    percent: Fraction | None
    reported: Fraction | None
    targets: Fraction | None
    milestones_done: int
    milestones_total: int

    @property
    def milestones(self) -> Fraction | None:
        """Share of milestones done, in percent; None for a task without milestones."""
        if self.milestones_total == 0:
            return None
        return Fraction(100 * self.milestones_done, self.milestones_total)

    @property
    def figures_zh(self) -> str:
        """The figures that made the progress: `自报 60%，指标 50%，节点 1/2`."""
        parts = []
        if self.reported is not None:
            parts.append(f"自报 {format_percent(self.reported)}%")
        if self.targets is not None:
            parts.append(f"指标完成 {format_percent(self.targets)}%")
        if self.milestones_total:
            parts.append(f"节点完成 {self.milestones_done}/{self.milestones_total}")
        if not parts:
            return "尚未报送"
        if len(parts) > 1 and self.percent is not None:
            parts.append(f"综合 {format_percent(self.percent)}%")
        return "，".join(parts)


def format_percent(value: Fraction) -> str:
    """A percentage or point gap for people: whole numbers bare, else one decimal."""
    if value.denominator == 1:
        return str(value.numerator)
    tenths = math.floor(value * 10 + Fraction(1, 2))
    if tenths % 10 == 0:
        return str(tenths // 10)
    sign = "-" if tenths < 0 else ""
    tenths = abs(tenths)
    return f"{sign}{tenths // 10}.{tenths % 10}"


def task_progress(
    *,
    reported_percent: float | None,
    targets: Sequence[IndicatorProgress],
    milestones: Sequence[MilestoneProgress],
    weights: ProgressWeights,
) -> TaskProgress:
    """A task's progress (docs/domain.md §5 Progress): the weighted mean of the figures it has.

    The figures are the lead unit's reported percent (None before any report), the mean
    attainment of the targets that have an actual, and the share of milestones done. A
    figure the task lacks, or whose weight is 0, is left out and the weights renormalise over
    the rest, so a target with no actual yet does not pull progress to 0 and the reported
    percent stands alone when nothing else is known. None when no figure is present.
    """
    reported = _fraction(reported_percent, "percent") if reported_percent is not None else None
    attained = _mean(targets)
    done = sum(1 for m in milestones if m.done)
    share = Fraction(100 * done, len(milestones)) if milestones else None
    figures = [
        (reported, weights.reported),
        (attained, weights.targets),
        (share, weights.milestones),
    ]
    total_weight = Fraction(0)
    weighted = Fraction(0)
    for value, weight in figures:
        if value is None or weight == 0:
            continue
        w = _fraction(weight, "weight")
        total_weight += w
        weighted += value * w
    return TaskProgress(
        percent=weighted / total_weight if total_weight else None,
        reported=reported,
        targets=attained,
        milestones_done=done,
        milestones_total=len(milestones),
    )
