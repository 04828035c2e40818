"""Progress roll-up: milestones and indicators into one task percentage.

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
    """A numeric target (新增就业4万人): progress is actual / target, within 0..100."""

    name: str
    target: float
    actual: float
    weight: float = 1

    def __post_init__(self) -> None:
        _check_weight(self.weight)
        if not math.isfinite(self.target) or self.target <= 0:
            raise ValueError(f"target of {self.name!r} must be > 0, got {self.target}")
        if not math.isfinite(self.actual):
            raise ValueError(f"actual of {self.name!r} must be finite, got {self.actual}")


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
        share = _fraction(node.actual, "actual") * 100 / _fraction(node.target, "target")
        return min(max(share, Fraction(0)), FULL)
    return _mean(node.children)


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


def task_progress(
    reported_percent: float, *, reported: bool, nodes: Sequence[ProgressNode]
) -> float | None:
    """A task's progress (docs/domain.md §5 Progress); None before any report.

    Once reported on, a task with milestones or numeric targets shows their roll-up; one
    without them shows the lead unit's reported percent.
    """
    if not reported:
        return None
    if nodes:
        return rolled_up_percent(nodes)
    return float(reported_percent)
