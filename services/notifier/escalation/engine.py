"""Pure escalation planning: which notification goes to whom, on which channel, in which window.

Nothing here reads a clock, a database or the network: the caller passes the task conditions,
what was already sent, acknowledgements, snoozes, the policy and `now`, and gets back the
same plan every time it asks with the same inputs. That is what makes replays and restarts
safe: a plan re-computed after a crash yields the same notification ids.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from services.notifier.escalation.policy import (
    ChannelKind,
    EscalationPolicy,
    Level,
    RecipientRole,
    Trigger,
)
from shared.vocabulary import FINISHED_STATUSES, Light, TaskStatus
from shared.workcal import WorkCalendar, standard_calendar

# Completion awaiting sign-off (blue) and closure (grey) end escalation whatever else holds.
STOP_LIGHTS = frozenset({Light.BLUE, Light.GREY})

# Fixed forever: changing it would change every notification id and defeat idempotency.
NOTIFICATION_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:duban:notifier:escalation")


def _require_aware(name: str, value: datetime | None) -> None:
    if value is not None and (value.tzinfo is None or value.utcoffset() is None):
        raise ValueError(f"{name} must be timezone-aware, got {value!r}")


@dataclass(frozen=True)
class Recipient:
    """Someone a notification is addressed to: a role and a unit, office or leader name."""

    role: RecipientRole
    name: str


@dataclass(frozen=True)
class MissingPart:
    """A co-unit's part report missing since `due_at` (the end of its last on-time day)."""

    unit: str
    period: str
    due_at: datetime

    def __post_init__(self) -> None:
        _require_aware(f"missing part {self.unit} {self.period}: due_at", self.due_at)


@dataclass(frozen=True)
class TaskCondition:
    """What the tracker knows about one task right now.

    `report_due_at` is the due time of the earliest required progress report not yet
    received; `last_report_at` is when the latest report arrived (it decides whether an
    acknowledgement re-arms). `due_at`, when given, is the completion deadline in force.
    `extended` means an extension has been granted and the new deadline has not passed.
    `missing_parts` are the co-units' part reports missing now.
    """

    task_id: str
    task_title: str
    light: str
    status: str
    reasons_zh: tuple[str, ...] = ()
    days_overdue: int = 0
    red_since: datetime | None = None
    yellow_since: datetime | None = None
    report_due_at: datetime | None = None
    lead_units: tuple[str, ...] = ()
    co_units: tuple[str, ...] = ()
    leaders: tuple[str, ...] = ()
    extended: bool = False
    last_report_at: datetime | None = None
    due_at: datetime | None = None
    missing_parts: tuple[MissingPart, ...] = ()

    def __post_init__(self) -> None:
        if not self.task_id:
            raise ValueError("task_id is empty")
        if self.light not in tuple(Light):
            raise ValueError(f"task {self.task_id}: unknown light {self.light!r}")
        if self.status not in tuple(TaskStatus):
            raise ValueError(f"task {self.task_id}: unknown status {self.status!r}")
        if self.days_overdue < 0:
            raise ValueError(f"task {self.task_id}: days_overdue is negative")
        for name in ("red_since", "yellow_since", "report_due_at", "last_report_at", "due_at"):
            _require_aware(f"task {self.task_id}: {name}", getattr(self, name))
        # Without the start of the light there is no episode to dedupe against, and the
        # task would be re-notified every window.
        if self.light == Light.RED and self.red_since is None:
            raise ValueError(f"task {self.task_id}: red without red_since")
        if self.light == Light.YELLOW and self.yellow_since is None:
            raise ValueError(f"task {self.task_id}: yellow without yellow_since")
        for name in ("reasons_zh", "lead_units", "co_units", "leaders", "missing_parts"):
            object.__setattr__(self, name, tuple(getattr(self, name)))


@dataclass(frozen=True)
class SentRecord:
    """A notification that was delivered (on at least one channel)."""

    task_id: str
    level: int
    recipient: Recipient
    sent_at: datetime

    def __post_init__(self) -> None:
        _require_aware("sent_at", self.sent_at)


@dataclass(frozen=True)
class Ack:
    """An acknowledgement (签收) of a level for a task."""

    task_id: str
    level: int
    by: str
    at: datetime

    def __post_init__(self) -> None:
        _require_aware("at", self.at)


@dataclass(frozen=True)
class Snooze:
    """Silence a task (or one of its levels) until `until`, for a recorded reason."""

    task_id: str
    until: datetime
    reason: str
    level: int | None = None

    def __post_init__(self) -> None:
        _require_aware("until", self.until)
        if not self.reason.strip():
            raise ValueError(f"snooze of task {self.task_id} needs a reason")


@dataclass(frozen=True)
class PlannedNotification:
    """One notification due now: one task, one level, one recipient, one channel, one window."""

    notification_id: uuid.UUID
    recipient: Recipient
    level: int
    channel: ChannelKind
    task_ids: tuple[str, ...]
    window_start: datetime
    level_name: str = ""
    action: str = ""
    sequence: int = 1  # 1 for the first of this level in the episode, 2 for the first repeat…
    respond_by: date | None = None
    # Held by quiet hours: not sent before this instant (its window is the one it goes in).
    not_before: datetime | None = None


@dataclass(frozen=True)
class RecipientGap:
    """A level that should have gone to a role but the task names nobody in it."""

    task_id: str
    level: int
    role: RecipientRole


@dataclass(frozen=True)
class Plan:
    """Everything `evaluate` decided for one tick."""

    notifications: tuple[PlannedNotification, ...]
    gaps: tuple[RecipientGap, ...]
    window_start: datetime
    policy_fingerprint: str


@dataclass(frozen=True)
class Digest:
    """One message to one recipient on one channel for one window, listing several tasks."""

    digest_id: uuid.UUID
    recipient: Recipient
    channel: ChannelKind
    window_start: datetime
    items: tuple[PlannedNotification, ...] = field(default_factory=tuple)

    @property
    def task_ids(self) -> tuple[str, ...]:
        """Task ids in the order the message lists them."""
        return tuple(dict.fromkeys(task for item in self.items for task in item.task_ids))

    @property
    def notification_ids(self) -> tuple[uuid.UUID, ...]:
        """The ids of the notifications this digest carries."""
        return tuple(item.notification_id for item in self.items)

    @property
    def level(self) -> int:
        """The highest level in the digest; it sets the tone of the subject line."""
        return max(item.level for item in self.items)

    @property
    def level_name(self) -> str:
        """The name of the highest level in the digest."""
        top = self.level
        return next(item.level_name for item in self.items if item.level == top)

    @property
    def respond_by(self) -> date | None:
        """The earliest reply date among the items."""
        dates = [item.respond_by for item in self.items if item.respond_by is not None]
        return min(dates) if dates else None


def window_start(moment: datetime, policy: EscalationPolicy) -> datetime:
    """The start of the policy window holding `moment`, in the policy's time zone."""
    _require_aware("moment", moment)
    local = moment.astimezone(policy.zone)
    hour = local.hour - local.hour % policy.window_hours
    return local.replace(hour=hour, minute=0, second=0, microsecond=0)


def notification_id(task_id: str, level: int, recipient: Recipient, window: datetime) -> uuid.UUID:
    """The deterministic id of a notification: same task, level, recipient, window → same id."""
    key = "|".join((task_id, str(level), recipient.role.value, recipient.name, window.isoformat()))
    return uuid.uuid5(NOTIFICATION_NAMESPACE, key)


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone)


def _trigger_start(
    trigger: Trigger, task: TaskCondition, now: datetime, zone: ZoneInfo
) -> datetime | None:
    """When the trigger's current stretch began, or None if it does not hold now."""
    today = now.astimezone(zone).date()
    starts: list[datetime] = []
    if trigger.light is not None:
        if task.light != trigger.light:
            return None
        since = task.red_since if trigger.light == "red" else task.yellow_since
        if since is None:
            return None
        since = min(since, now)
        if trigger.for_days == 0:
            starts.append(since)
        else:
            day = since.astimezone(zone).date() + timedelta(days=trigger.for_days)
            if today < day:
                return None
            starts.append(_midnight(day, zone))
    if trigger.min_days_overdue is not None:
        if task.days_overdue < trigger.min_days_overdue:
            return None
        if task.due_at is not None:
            # A deadline is stable; a day count from an older snapshot would drift the
            # episode start forward every day and re-send.
            day = task.due_at.astimezone(zone).date() + timedelta(days=trigger.min_days_overdue)
        else:
            day = today - timedelta(days=task.days_overdue - trigger.min_days_overdue)
        starts.append(_midnight(min(day, today), zone))
    if trigger.report_due_within_days is not None:
        if task.report_due_at is None:
            return None
        opens = task.report_due_at - timedelta(days=trigger.report_due_within_days)
        if now < opens:
            return None
        starts.append(opens)
    if trigger.report_missing:
        if task.report_due_at is None or now < task.report_due_at:
            return None
        starts.append(task.report_due_at)
    return max(starts) if starts else None


def _level_start(
    level: Level, task: TaskCondition, now: datetime, zone: ZoneInfo
) -> datetime | None:
    starts = [
        start
        for trigger in level.when
        if (start := _trigger_start(trigger, task, now, zone)) is not None
    ]
    return min(starts) if starts else None


def _recipients(role: RecipientRole, task: TaskCondition, policy: EscalationPolicy) -> list[str]:
    if role is RecipientRole.RESPONSIBLE_UNITS:
        names: Iterable[str] = (*task.lead_units, *task.co_units)
    elif role in (RecipientRole.LEAD_UNITS, RecipientRole.LEAD_UNIT_LEADERSHIP):
        names = task.lead_units
    elif role is RecipientRole.SUPERVISING_OFFICE:
        names = (policy.supervising_office,)
    elif role is RecipientRole.CO_UNIT_MISSING:
        names = ()  # planned from the missing parts themselves (_plan_missing_parts)
    else:
        names = task.leaders
    return [name for name in dict.fromkeys(names) if name]


def is_stopped(task: TaskCondition) -> bool:
    """Nothing escalates for this task whatever the policy says (completed, closed, extended)."""
    return task.extended or task.status in FINISHED_STATUSES or task.light in STOP_LIGHTS


@dataclass
class _TaskContext:
    task: TaskCondition
    history: list[SentRecord]
    acks: list[Ack]
    snoozes: list[Snooze]


def release_at(
    level: int, now: datetime, policy: EscalationPolicy, calendar: WorkCalendar | None = None
) -> datetime:
    """When a notice of `level` planned at `now` may go out: `now`, unless the policy's quiet
    hours hold the level and are closed, then when they next open (the working calendar's
    next working day at `start` when they keep to working days)."""
    _require_aware("now", now)
    quiet = policy.quiet_hours
    if quiet is None:
        return now
    return quiet.release_at(level, now, zone=policy.zone, calendar=calendar or standard_calendar())


def _plan_task(
    ctx: _TaskContext,
    policy: EscalationPolicy,
    now: datetime,
    window: datetime,
    calendar: WorkCalendar | None = None,
) -> tuple[list[PlannedNotification], list[RecipientGap]]:
    task = ctx.task
    zone = policy.zone
    if is_stopped(task):
        return [], []
    if any(s.level is None and s.until > now for s in ctx.snoozes):
        return [], []

    inhibited = {
        number
        for rule in policy.inhibit
        if task.light == rule.if_light
        for number in rule.suppress_levels
    }
    engaged: dict[int, datetime] = {}
    for level in policy.levels:
        if level.level in inhibited:
            continue
        start = _level_start(level, task, now, zone)
        if start is not None:
            engaged[level.level] = start

    # The ladder: a level with a wait holds back the next one until it has itself gone out
    # (or been acknowledged) and the wait has passed, so nobody gets a 通报 that was not
    # preceded by a 督办 and time to act on it.
    deliverable: dict[int, datetime] = {}
    held_back: set[int] = set()
    for number in sorted(engaged):
        previous = number - 1
        if previous in held_back:
            held_back.add(number)
            continue
        if previous in engaged and policy.level(previous).wait_before_next_days > 0:
            since = engaged[previous]
            firsts = [r.sent_at for r in ctx.history if r.level == previous and r.sent_at >= since]
            firsts += [a.at for a in ctx.acks if a.level == previous and since <= a.at <= now]
            wait = timedelta(days=policy.level(previous).wait_before_next_days)
            if not firsts or window < window_start(min(firsts), policy) + wait:
                held_back.add(number)
                continue
        deliverable[number] = engaged[number]

    recipients_by_level: dict[int, list[Recipient]] = {}
    gaps: list[RecipientGap] = []
    for number in deliverable:
        level = policy.level(number)
        found: list[Recipient] = []
        for rule in level.recipients:
            if rule.role is RecipientRole.CO_UNIT_MISSING:
                continue
            names = _recipients(rule.role, task, policy)
            if not names:
                gaps.append(RecipientGap(task.task_id, number, rule.role))
            found += [Recipient(rule.role, name) for name in names]
        recipients_by_level[number] = found

    if policy.higher_level_supersedes:
        top: dict[Recipient, int] = {}
        for number, recipients in recipients_by_level.items():
            for recipient in recipients:
                top[recipient] = max(number, top.get(recipient, 0))
        recipients_by_level = {
            number: [r for r in recipients if top[r] == number]
            for number, recipients in recipients_by_level.items()
        }

    planned: list[PlannedNotification] = []
    for number, recipients in recipients_by_level.items():
        level = policy.level(number)
        start = deliverable[number]
        if any(s.level == number and s.until > now for s in ctx.snoozes):
            continue
        arm_start = _arm_start(ctx, number, start, now, policy)
        if arm_start is None:
            continue
        # Quiet hours: a held notice belongs to the window it will go out in, so every tick
        # until then plans the same notification (same id) instead of one per window.
        release = release_at(number, now, policy, calendar)
        held = release > now
        goes_in = window_start(release, policy) if held else window
        respond_by = _respond_by(level, task, now, goes_in)
        for recipient in recipients:
            sequence = _due_sequence(
                ctx, number, recipient, start, arm_start, level, goes_in, policy
            )
            if sequence is None:
                continue
            nid = notification_id(task.task_id, number, recipient, goes_in)
            for rule in level.recipients:
                if rule.role is not recipient.role:
                    continue
                planned += [
                    PlannedNotification(
                        notification_id=nid,
                        recipient=recipient,
                        level=number,
                        channel=channel,
                        task_ids=(task.task_id,),
                        window_start=goes_in,
                        level_name=level.name,
                        action=level.action,
                        sequence=sequence,
                        respond_by=respond_by,
                        not_before=release if held else None,
                    )
                    for channel in rule.channels
                ]
    planned += _plan_missing_parts(ctx, policy, now, window, recipients_by_level)
    return planned, gaps


def _plan_missing_parts(
    ctx: _TaskContext,
    policy: EscalationPolicy,
    now: datetime,
    window: datetime,
    hearing: dict[int, list[Recipient]],
) -> list[PlannedNotification]:
    """Notices to each co-unit whose part is missing, on each level naming `co_unit_missing`.

    One notice per missing part: a unit is sent one when a part of its has gone missing since
    the last it was sent about the task at this level (two parts missed a month apart, two
    notices; two missed in one window, one), never twice in a window, and not repeated for a
    part already chased; snoozes hold it back until they end. The level's `when`, repeats and
    acknowledgements and the light's `inhibit` do not apply: the part is the co-unit's,
    whatever the task's light. A unit that hears this level (or, with
    `higher_level_supersedes`, a higher one) about the task in another role now is not sent a
    second notice.
    """
    task = ctx.task
    by_unit: dict[str, list[MissingPart]] = defaultdict(list)
    for part in task.missing_parts:
        if part.due_at <= now:
            by_unit[part.unit].append(part)
    planned: list[PlannedNotification] = []
    for level in policy.levels:
        rule = next((r for r in level.recipients if r.role is RecipientRole.CO_UNIT_MISSING), None)
        if rule is None or not by_unit:
            continue
        if any(s.level == level.level and s.until > now for s in ctx.snoozes):
            continue
        respond_by = _respond_by(level, task, now, window)
        for unit, parts in by_unit.items():
            recipient = Recipient(RecipientRole.CO_UNIT_MISSING, unit)
            sent = [
                r.sent_at
                for r in ctx.history
                if r.level == level.level and r.recipient == recipient
            ]
            if any(window_start(at, policy) == window for at in sent):
                continue
            last = max(sent, default=None)
            if all(last is not None and part.due_at <= last for part in parts):
                continue  # every part missing has been chased already
            heard = {n for n, recipients in hearing.items() for r in recipients if r.name == unit}
            if level.level in heard or (
                policy.higher_level_supersedes and any(n > level.level for n in heard)
            ):
                continue
            # The how-manieth notice since the oldest part still missing went missing.
            oldest = min(part.due_at for part in parts)
            sequence = 1 + len({window_start(at, policy) for at in sent if at >= oldest})
            nid = notification_id(task.task_id, level.level, recipient, window)
            planned += [
                PlannedNotification(
                    notification_id=nid,
                    recipient=recipient,
                    level=level.level,
                    channel=channel,
                    task_ids=(task.task_id,),
                    window_start=window,
                    level_name=level.name,
                    action=level.action,
                    sequence=sequence,
                    respond_by=respond_by,
                )
                for channel in rule.channels
            ]
    return planned


def _arm_start(
    ctx: _TaskContext, number: int, start: datetime, now: datetime, policy: EscalationPolicy
) -> datetime | None:
    """Where the level's current run of sends began, or None while it is acknowledged."""
    acks = [a for a in ctx.acks if a.level == number and start <= a.at <= now]
    if not acks:
        return start
    latest = max(acks, key=lambda a: a.at)
    rearm_at = latest.at + timedelta(hours=policy.rearm_after_hours)
    reported = ctx.task.last_report_at is not None and ctx.task.last_report_at >= latest.at
    if reported or now < rearm_at:
        return None
    # Re-armed: the level starts afresh, as if it had just begun.
    return rearm_at


def _due_sequence(
    ctx: _TaskContext,
    number: int,
    recipient: Recipient,
    start: datetime,
    arm_start: datetime,
    level: Level,
    window: datetime,
    policy: EscalationPolicy,
) -> int | None:
    """The sequence number of the send due now, or None if nothing is due."""
    mine = [r for r in ctx.history if r.level == number and r.recipient == recipient]
    # One notification per task, level, recipient and window, even across a flapping
    # light that ended one episode and began another inside the window.
    if any(window_start(r.sent_at, policy) == window for r in mine):
        return None
    # Count windows, not records: one notification on two channels is still one send.
    episode = sorted({window_start(r.sent_at, policy) for r in mine if r.sent_at >= start})
    armed_from = window_start(arm_start, policy)
    current = [w for w in episode if w >= armed_from]
    if current:
        if level.max_repeats is not None and len(current) > level.max_repeats:
            return None
        if window < current[-1] + timedelta(days=level.repeat_every_days):
            return None
    return len(episode) + 1


def _respond_by(level: Level, task: TaskCondition, now: datetime, window: datetime) -> date:
    respond_by = window.date() + timedelta(days=level.respond_within_days)
    if task.report_due_at is not None and task.report_due_at > now:
        respond_by = min(respond_by, task.report_due_at.astimezone(window.tzinfo).date())
    return respond_by


def evaluate(
    conditions: Iterable[TaskCondition],
    history: Iterable[SentRecord],
    acks: Iterable[Ack],
    snoozes: Iterable[Snooze],
    policy: EscalationPolicy,
    now: datetime,
    calendar: WorkCalendar | None = None,
) -> Plan:
    """Decide every notification due at `now`, and report roles that resolve to nobody.

    Levels the policy's quiet hours hold are planned while the hours are closed too, but
    for the window they open in and with `not_before` set (`calendar`: the working
    calendar; the package's standard one if not given)."""
    _require_aware("now", now)
    window = window_start(now, policy)
    by_task: dict[str, _TaskContext] = {}
    for task in conditions:
        if task.task_id in by_task:
            raise ValueError(f"task {task.task_id} appears twice in the conditions")
        by_task[task.task_id] = _TaskContext(task, [], [], [])
    grouped_history: dict[str, list[SentRecord]] = defaultdict(list)
    for record in history:
        grouped_history[record.task_id].append(record)
    for ack in acks:
        if ack.task_id in by_task:
            by_task[ack.task_id].acks.append(ack)
    for snooze in snoozes:
        if snooze.task_id in by_task:
            by_task[snooze.task_id].snoozes.append(snooze)

    notifications: list[PlannedNotification] = []
    gaps: list[RecipientGap] = []
    for task_id in sorted(by_task):
        ctx = by_task[task_id]
        ctx.history = grouped_history.get(task_id, [])
        planned, task_gaps = _plan_task(ctx, policy, now, window, calendar)
        notifications += planned
        gaps += task_gaps
    notifications.sort(
        key=lambda n: (
            n.recipient.role.value,
            n.recipient.name,
            n.channel.value,
            -n.level,
            n.task_ids,
        )
    )
    return Plan(tuple(notifications), tuple(gaps), window, policy.fingerprint)


def digest_id(
    recipient: Recipient,
    channel: ChannelKind,
    window: datetime,
    notification_ids: Iterable[uuid.UUID],
) -> uuid.UUID:
    """The deterministic id of a digest; it doubles as the delivery's idempotency key."""
    key = "|".join(
        (
            "digest",
            recipient.role.value,
            recipient.name,
            channel.value,
            window.isoformat(),
            ",".join(sorted(str(n) for n in notification_ids)),
        )
    )
    return uuid.uuid5(NOTIFICATION_NAMESPACE, key)


def group_into_digests(planned: Iterable[PlannedNotification]) -> list[Digest]:
    """One digest per recipient, channel and window, listing the highest levels first."""
    groups: dict[tuple[Recipient, ChannelKind, datetime], list[PlannedNotification]] = defaultdict(
        list
    )
    for item in planned:
        groups[(item.recipient, item.channel, item.window_start)].append(item)
    digests: list[Digest] = []
    for (recipient, channel, window), items in groups.items():
        ordered = tuple(sorted(items, key=lambda n: (-n.level, n.task_ids, str(n.notification_id))))
        digests.append(
            Digest(
                digest_id=digest_id(
                    recipient, channel, window, (n.notification_id for n in ordered)
                ),
                recipient=recipient,
                channel=channel,
                window_start=window,
                items=ordered,
            )
        )
    digests.sort(
        key=lambda d: (d.window_start, d.recipient.role.value, d.recipient.name, d.channel.value)
    )
    return digests


def sent_records(digest: Digest, sent_at: datetime) -> list[SentRecord]:
    """The history rows to store once `digest` has been delivered, and only then."""
    _require_aware("sent_at", sent_at)
    return [
        SentRecord(task_id, item.level, item.recipient, sent_at)
        for item in digest.items
        for task_id in item.task_ids
    ]
