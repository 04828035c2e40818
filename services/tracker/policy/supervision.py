"""The supervision policy file: validated YAML, errors with file:line, reloaded on change.

The same style as the notifier's escalation policy (services/notifier/escalation/policy.py):
a pydantic model over `shared.yamlmarks`, a `shared.reloader.FileReloader`, and a
fingerprint of the policy's meaning that the timeline records with every light it lit.
"""

from __future__ import annotations

import hashlib
import json
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.tracker.domain.lights import LightPolicy
from services.tracker.domain.progress import ProgressWeights
from shared.reloader import FileReloader
from shared.vocabulary import Cadence, DeadlineKind
from shared.workcal import WorkCalendar, standard_calendar
from shared.yamlmarks import MarkedFileError, Problem, load_marked

DEFAULT_SUPERVISION_POLICY_PATH = Path(__file__).with_name("default_supervision.yaml")


class SupervisionPolicyError(MarkedFileError):
    """The supervision policy file is malformed; the message names the file, line and column."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("supervision policy", problems)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Lights(_Strict):
    """When a task turns yellow (docs/domain.md §5)."""

    due_soon_days: int = Field(default=15, ge=0, le=366)
    behind_schedule_points: float = Field(default=20, ge=0, lt=100)
    pro_rata_kinds: tuple[DeadlineKind, ...] = (DeadlineKind.COMPLETE, DeadlineKind.PROGRESS)
    blockers_are_yellow: bool = True
    light_milestones: bool = True
    unreported_counts_as_zero: bool = True


class Weights(_Strict):
    """How much each progress figure counts; a figure a task lacks is left out."""

    reported: float = Field(default=1, ge=0)
    targets: float = Field(default=1, ge=0)
    milestones: float = Field(default=1, ge=0)


class Progress(_Strict):
    """How a task's progress is made of its figures."""

    weights: Weights = Weights()


class Targets(_Strict):
    """How numeric targets are read."""

    about_band_percent: float = Field(default=5, ge=0, lt=100)


class Reports(_Strict):
    """When periodic reports fall due (docs/domain.md §4)."""

    continuous_default_cadence: Cadence | None = Cadence.MONTHLY
    due_day: int = Field(default=5, ge=1, le=31)
    week_due_days: int = Field(default=1, ge=0, le=7)
    grace_days: int = Field(default=0, ge=0, le=31)
    move_to_working_day: bool = True


class SupervisionPolicy(_Strict):
    """The whole supervision policy."""

    version: Literal[1]
    lights: Lights = Lights()
    progress: Progress = Progress()
    targets: Targets = Targets()
    reports: Reports = Reports()

    @property
    def fingerprint(self) -> str:
        """A hash of the policy's meaning; comments and layout do not change it."""
        canonical = json.dumps(
            self.model_dump(mode="json"), ensure_ascii=False, sort_keys=True, separators=(",", ":")
        )
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    @property
    def short_fingerprint(self) -> str:
        """The first 12 hex digits: the version the timeline and the logs name."""
        return self.fingerprint[:12]

    def light_policy(self, calendar: WorkCalendar | None = None) -> LightPolicy:
        """The rules as the pure domain takes them; `calendar` is the working calendar."""
        weights = self.progress.weights
        return LightPolicy(
            due_soon_days=self.lights.due_soon_days,
            behind_schedule_points=self.lights.behind_schedule_points,
            pro_rata_kinds=frozenset(self.lights.pro_rata_kinds),
            default_continuous_cadence=self.reports.continuous_default_cadence,
            report_due_day=self.reports.due_day,
            week_due_days=self.reports.week_due_days,
            report_grace_days=self.reports.grace_days,
            blockers_are_yellow=self.lights.blockers_are_yellow,
            light_milestones=self.lights.light_milestones,
            missing_percent_counts_as_zero=self.lights.unreported_counts_as_zero,
            weights=ProgressWeights(
                reported=weights.reported, targets=weights.targets, milestones=weights.milestones
            ),
            about_band_percent=self.targets.about_band_percent,
            calendar=(calendar or standard_calendar())
            if self.reports.move_to_working_day
            else None,
            version=self.short_fingerprint,
        )


def parse_supervision_policy(text: str, source: str = "<policy>") -> SupervisionPolicy:
    """Validate policy YAML text; raise SupervisionPolicyError naming the line of each problem."""
    try:
        document = load_marked(text, source, "supervision policy")
    except MarkedFileError as exc:
        raise SupervisionPolicyError(list(exc.problems)) from exc
    if not isinstance(document.data, dict):
        raise SupervisionPolicyError([document.problem((), "the policy must be a YAML mapping")])
    try:
        policy = SupervisionPolicy.model_validate(document.data)
    except ValidationError as exc:
        raise SupervisionPolicyError(document.problems_from(exc)) from exc
    weights = policy.progress.weights
    if weights.reported + weights.targets + weights.milestones == 0:
        raise SupervisionPolicyError(
            [document.problem(("progress", "weights"), "at least one weight must be > 0")]
        )
    return policy


def load_supervision_policy(path: str | Path) -> SupervisionPolicy:
    """Load and validate a policy file; raise SupervisionPolicyError naming file and line."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SupervisionPolicyError([Problem(str(file), 1, 1, "", f"cannot read: {exc}")]) from exc
    return parse_supervision_policy(text, str(file))


@lru_cache(maxsize=1)
def default_supervision_policy() -> SupervisionPolicy:
    """The shipped policy."""
    return load_supervision_policy(DEFAULT_SUPERVISION_POLICY_PATH)


class SupervisionPolicyReloader(FileReloader[SupervisionPolicy]):
    """The policy in force, reloaded when its file changes (see FileReloader).

    A malformed file raises SupervisionPolicyError and the policy in force stays. An edit
    that changes only comments or layout (same fingerprint) is not a change.
    """

    def __init__(self, path: str | Path) -> None:
        super().__init__(
            path, load_supervision_policy, same=lambda a, b: a.fingerprint == b.fingerprint
        )


class PolicyInForce:
    """The light rules the tracker applies now: the policy file's, with the working calendar.

    One per process (`in_force()`): the consumer, the API and the scan read it; the
    workers' reload job replaces it when the file changes.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reloader: SupervisionPolicyReloader | None = None
        self._calendar: WorkCalendar = standard_calendar()
        self._policy = default_supervision_policy()
        self._rules = self._policy.light_policy(self._calendar)

    def install(self, path: str | Path | None, calendar: WorkCalendar) -> SupervisionPolicy:
        """Put the policy at `path` (None: the shipped one) in force; raises if it is bad."""
        reloader = SupervisionPolicyReloader(path or DEFAULT_SUPERVISION_POLICY_PATH)
        with self._lock:
            self._reloader = reloader
            self._calendar = calendar
            self._policy = reloader.value
            self._rules = self._policy.light_policy(calendar)
            return self._policy

    def refresh(self) -> bool:
        """Reload the file if it changed; True when the policy in force changed.

        Raises SupervisionPolicyError for a malformed edit; the policy in force stays.
        """
        with self._lock:
            if self._reloader is None or not self._reloader.refresh():
                return False
            self._policy = self._reloader.value
            self._rules = self._policy.light_policy(self._calendar)
            return True

    @property
    def policy(self) -> SupervisionPolicy:
        """The policy in force."""
        with self._lock:
            return self._policy

    @property
    def rules(self) -> LightPolicy:
        """The light rules in force."""
        with self._lock:
            return self._rules

    @property
    def calendar(self) -> WorkCalendar:
        """The working calendar in force."""
        with self._lock:
            return self._calendar


_IN_FORCE = PolicyInForce()


def in_force() -> PolicyInForce:
    """The process's policy in force."""
    return _IN_FORCE


def current_rules() -> LightPolicy:
    """The light rules in force now."""
    return _IN_FORCE.rules


def policy_summary(policy: SupervisionPolicy) -> dict[str, Any]:
    """A short description for logs."""
    return {
        "version": policy.short_fingerprint,
        "due_soon_days": policy.lights.due_soon_days,
        "behind_schedule_points": policy.lights.behind_schedule_points,
        "report_due_day": policy.reports.due_day,
    }
