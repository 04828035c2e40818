"""The escalation policy: which level starts when, who hears about it, and how often."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from shared.reloader import FileReloader
from shared.workcal import WorkCalendar
from shared.yamlmarks import Loc, MarkedFileError, Problem, load_model, read_marked

DEFAULT_POLICY_PATH = Path(__file__).with_name("default_policy.yaml")
# The same ladder with every recipient on the local inbox: used outside production when no
# policy file is configured, so the local stack escalates with no SMTP relay or robots.
LOCAL_POLICY_PATH = Path(__file__).with_name("local_policy.yaml")


class RecipientRole(StrEnum):
    """Who a level speaks to; names are resolved per task (units, leaders) or by the policy."""

    RESPONSIBLE_UNITS = "responsible_units"  # lead units and co-units (责任单位)
    LEAD_UNITS = "lead_units"  # lead units only (牵头单位)
    LEAD_UNIT_LEADERSHIP = "lead_unit_leadership"  # the lead units' leadership (牵头单位领导)
    SUPERVISING_OFFICE = "supervising_office"  # 督查室
    SUPERVISING_LEADER = "supervising_leader"  # the task's 分管领导
    # Each co-unit whose part report is missing (配合单位未报送), alone: one notice per
    # missing part, whatever the level's `when` and the task's light (engine.py).
    CO_UNIT_MISSING = "co_unit_missing"


class ChannelKind(StrEnum):
    """A delivery channel."""

    EMAIL = "email"
    WEBHOOK = "webhook"
    WECOM = "wecom"
    DINGTALK = "dingtalk"
    INBOX = "inbox"  # stored and served by the notifier's API; needs no contact


# The lights a trigger can wait for (values of shared.vocabulary.Light; blue and grey stop
# escalation, green starts nothing). Spelled as strings so a bad policy reads 'yellow' or 'red'.
TriggerLight = Literal["yellow", "red"]


class PolicyError(MarkedFileError):
    """The policy file is malformed; the message names the file, line and column."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("escalation policy", problems)


def _inconsistent(loc: Loc, message: str) -> PydanticCustomError:
    # The loader adds ctx["loc"] to the model's own location to find the line.
    return PydanticCustomError("policy_inconsistent", message, {"loc": loc})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class Trigger(_Strict):
    """One way a level can start; every field that is set must hold."""

    light: TriggerLight | None = None
    for_days: int = Field(default=0, ge=0, description="days in that light, Asia/Shanghai days")
    min_days_overdue: int | None = Field(default=None, ge=1)
    report_due_within_days: int | None = Field(default=None, ge=0)
    report_missing: bool = False

    @model_validator(mode="after")
    def _says_something(self) -> Self:
        if self.for_days and self.light is None:
            raise _inconsistent(("for_days",), "for_days needs a light")
        if (
            self.light is None
            and self.min_days_overdue is None
            and self.report_due_within_days is None
            and not self.report_missing
        ):
            raise _inconsistent(
                (),
                "a trigger needs at least one of light, min_days_overdue, "
                "report_due_within_days, report_missing",
            )
        return self


class RecipientRule(_Strict):
    """A role that receives a level, and the channels it receives it on."""

    role: RecipientRole
    channels: tuple[ChannelKind, ...] = Field(min_length=1)

    @field_validator("channels")
    @classmethod
    def _unique_channels(cls, channels: tuple[ChannelKind, ...]) -> tuple[ChannelKind, ...]:
        if len(set(channels)) != len(channels):
            raise ValueError("a channel is listed twice")
        return channels


class Level(_Strict):
    """One escalation level (催办, 督办, 通报)."""

    level: int = Field(ge=1)
    name: str = Field(min_length=1, max_length=10, description="short Chinese name, e.g. 督办")
    action: str = Field(min_length=1, description="what the recipient is asked to do, in Chinese")
    when: tuple[Trigger, ...] = Field(min_length=1, description="any one of these starts it")
    wait_before_next_days: int = Field(
        default=0,
        ge=0,
        description="the next level waits this long after this one first went out; 0: no wait",
    )
    repeat_every_days: int = Field(default=3, ge=1)
    max_repeats: int | None = Field(default=None, ge=0, description="None: while it holds")
    respond_within_days: int = Field(default=3, ge=0)
    recipients: tuple[RecipientRule, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_roles(self) -> Self:
        seen: set[RecipientRole] = set()
        for index, rule in enumerate(self.recipients):
            if rule.role in seen:
                raise _inconsistent(("recipients", index, "role"), "role listed twice")
            seen.add(rule.role)
        return self


class InhibitRule(_Strict):
    """While a task shows `if_light`, the listed levels are not sent for it."""

    if_light: TriggerLight
    suppress_levels: tuple[int, ...] = Field(min_length=1)


class QuietHours(_Strict):
    """When the listed levels may go out: working hours, on working days only by default.

    A notice of such a level planned outside them is recorded at once, held, and sent when
    they next open (`release_at`); other levels go out at any time.
    """

    working_days_only: bool = Field(
        default=True, description="only on China's working days (shared/workcal.py, 调休 included)"
    )
    start: dt.time = Field(default=dt.time(8, 30), description="opens, local time ('08:30')")
    end: dt.time = Field(default=dt.time(18, 0), description="closes, local time ('18:00')")
    levels: tuple[int, ...] = Field(default=(1, 2), description="the levels held to these hours")

    @field_validator("start", "end", mode="before")
    @classmethod
    def _quoted_time(cls, value: object) -> object:
        # YAML 1.1 reads an unquoted 8:30 as the number 510 (base 60).
        if isinstance(value, int) and not isinstance(value, bool):
            raise ValueError("write the time in quotes, e.g. '08:30'")
        return value

    @field_validator("start", "end")
    @classmethod
    def _wall_clock(cls, value: dt.time) -> dt.time:
        if value.tzinfo is not None:
            raise ValueError("a time of day in the policy's time zone, with no offset")
        return value

    @model_validator(mode="after")
    def _opens_before_closing(self) -> Self:
        if not self.start < self.end:
            raise _inconsistent(("end",), "quiet hours: end must be later than start")
        return self

    def holds(self, level: int) -> bool:
        """Whether notices of this level wait for the hours."""
        return level in self.levels

    def release_at(
        self, level: int, at: dt.datetime, *, zone: ZoneInfo, calendar: WorkCalendar
    ) -> dt.datetime:
        """When a notice of `level` planned at `at` may go: `at` itself if the level is not
        held or the hours are open, else the next opening (a working day's `start`)."""
        if at.tzinfo is None or at.utcoffset() is None:
            raise ValueError(f"at must be timezone-aware, got {at!r}")
        if not self.holds(level):
            return at
        if self.working_days_only:
            return calendar.working_time(at, self.start, self.end, zone=zone)
        local = at.astimezone(zone)
        if self.start <= local.time() < self.end:
            return at
        day = local.date() if local.time() < self.start else local.date() + dt.timedelta(days=1)
        return dt.datetime.combine(day, self.start, tzinfo=zone)


class EscalationPolicy(_Strict):
    """The whole escalation policy (docs/domain.md §6 Escalation)."""

    version: Literal[1]
    timezone: str = "Asia/Shanghai"
    supervising_office: str = Field(min_length=1)
    window_hours: int = Field(default=24, description="dedupe and digest window, divides 24")
    rearm_after_hours: int = Field(
        default=72, ge=1, description="an acknowledgement with no report after this re-arms"
    )
    higher_level_supersedes: bool = Field(
        default=True,
        description="a recipient hears only the highest level active for a task",
    )
    inhibit: tuple[InhibitRule, ...] = ()
    quiet_hours: QuietHours | None = Field(
        default=None, description="hours the listed levels wait for; absent: any time"
    )
    levels: tuple[Level, ...] = Field(min_length=1)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {name!r}") from exc
        return name

    @field_validator("window_hours")
    @classmethod
    def _divides_day(cls, hours: int) -> int:
        # Windows must tile the local day so every task shares the same window starts.
        if hours < 1 or 24 % hours:
            raise ValueError("window_hours must divide 24 (1, 2, 3, 4, 6, 8, 12 or 24)")
        return hours

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        for index, level in enumerate(self.levels):
            if level.level != index + 1:
                raise _inconsistent(
                    ("levels", index, "level"),
                    f"levels must be numbered 1, 2, 3… in order; expected {index + 1}",
                )
            if level.repeat_every_days * 24 < self.window_hours:
                raise _inconsistent(
                    ("levels", index, "repeat_every_days"),
                    "repeat_every_days is shorter than the window",
                )
        numbers = {level.level for level in self.levels}
        if self.quiet_hours is not None:
            for pos, number in enumerate(self.quiet_hours.levels):
                if number not in numbers:
                    raise _inconsistent(("quiet_hours", "levels", pos), f"no level {number}")
        for index, rule in enumerate(self.inhibit):
            for pos, number in enumerate(rule.suppress_levels):
                if number not in numbers:
                    raise _inconsistent(
                        ("inhibit", index, "suppress_levels", pos), f"no level {number}"
                    )
        return self

    @property
    def zone(self) -> ZoneInfo:
        """The time zone that windows and day counts use."""
        return ZoneInfo(self.timezone)

    @property
    def fingerprint(self) -> str:
        """A hash of the policy's meaning; comments and layout do not change it."""
        # A policy without quiet hours hashes as it did before they existed.
        unset = {"quiet_hours"} if self.quiet_hours is None else set()
        canonical = json.dumps(
            self.model_dump(mode="json", exclude=unset),
            ensure_ascii=False,
            sort_keys=True,
            separators=(",", ":"),
        )
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def level(self, number: int) -> Level:
        """The level with this number."""
        return self.levels[number - 1]


def parse_policy(text: str, source: str = "<policy>") -> EscalationPolicy:
    """Validate policy YAML text; raise PolicyError naming the line of each problem."""
    _, policy = load_model(
        text, source, EscalationPolicy, PolicyError, not_mapping="the policy must be a YAML mapping"
    )
    return policy


def load_policy(path: str | Path) -> EscalationPolicy:
    """Load and validate a policy file; raise PolicyError naming file, line and column."""
    return parse_policy(*read_marked(path, PolicyError))


class PolicyReloader(FileReloader[EscalationPolicy]):
    """The policy in force, reloaded when its file changes (see FileReloader).

    A malformed file raises PolicyError. An edit that changes only comments or layout (same
    fingerprint) is not a change.
    """

    def __init__(self, path: str | Path) -> None:
        super().__init__(path, load_policy, same=lambda a, b: a.fingerprint == b.fingerprint)

    @property
    def policy(self) -> EscalationPolicy:
        """The policy in force."""
        return self.value


@lru_cache(maxsize=1)
def default_policy() -> EscalationPolicy:
    """The shipped policy, docs/domain.md §6 Escalation."""
    return load_policy(DEFAULT_POLICY_PATH)


@lru_cache(maxsize=1)
def local_policy() -> EscalationPolicy:
    """The development policy: the shipped ladder, delivered to the local inbox."""
    return load_policy(LOCAL_POLICY_PATH)


def policy_summary(policy: EscalationPolicy) -> dict[str, Any]:
    """A short description for start-up logs."""
    quiet = policy.quiet_hours
    return {
        "fingerprint": policy.fingerprint[:12],
        "levels": [f"{level.level} {level.name}" for level in policy.levels],
        "timezone": policy.timezone,
        "quiet_hours": (
            None
            if quiet is None
            else f"levels {list(quiet.levels)} {quiet.start:%H:%M}-{quiet.end:%H:%M}"
            + (" on working days" if quiet.working_days_only else " every day")
        ),
    }
