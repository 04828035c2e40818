"""Versioned event schemas exchanged over Kafka.

Every event is a frozen pydantic model with an explicit `schema_version`; one JSON example
per event type and version lives in `shared/examples/` and is tested against every consumer.

Producers build events strictly (a field the model does not define is an error), so they emit
exactly their schema. Consumers read tolerantly: within a `schema_version` they ignore fields
they do not know, so a producer may add an optional field without breaking consumers still on
older code; an unknown version, or a required field missing or invalid, is refused.
docs/events.md says how an event evolves.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    StringConstraints,
    TypeAdapter,
)

from shared.textguard import MULTI_LINE, OPTIONAL_MULTI_LINE, SINGLE_LINE
from shared.vocabulary import Light, PrincipalRole, TaskStatus

EXAMPLES_DIR = Path(__file__).parent / "examples"

ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Period = Annotated[str, StringConstraints(pattern=r"^\d{4}-(0[1-9]|1[0-2]|Q[1-4])$")]
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class Frozen(BaseModel):
    """Immutable model that rejects unknown fields when built (the producer's side).

    The `decode_*` functions below override that with `extra="ignore"`: a consumer skips
    fields added after its code was written.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")


# The report's own text fields refuse hostile characters (`shared.textguard`): intake's
# request validates them with the same types, so every event intake publishes passes them.
ReportLine = Annotated[str, Field(max_length=200), SINGLE_LINE]
ReportText = Annotated[str, Field(max_length=5000), OPTIONAL_MULTI_LINE]


class IndicatorValue(Frozen):
    """A reported value for one of the task's numeric targets."""

    indicator: ReportLine
    value: Decimal = Field(ge=0, max_digits=20, decimal_places=4)


class MilestoneUpdate(Frozen):
    """Progress on one milestone of the task (matched by its text)."""

    milestone: ReportLine
    done: bool


class Attachment(Frozen):
    """A supporting document, by link and content hash."""

    name: ReportLine
    url: HttpUrl
    sha256: Sha256


class ProgressReport(Frozen):
    """What a unit reports about a task: the fields and limits of intake's request body and of
    the `progress_report.submitted` event, defined once."""

    period: Period | None = Field(default=None, description="报告期 (YYYY-MM 或 YYYY-Qn)")
    percent: int = Field(ge=0, le=100, description="完成进度 (0-100)")
    summary: Annotated[str, Field(max_length=5000, description="进展情况"), MULTI_LINE]
    blockers: ReportText | None = Field(default=None, description="梗阻障碍")
    next_steps: ReportText | None = Field(default=None, description="下一步工作")
    indicators: list[IndicatorValue] = Field(default_factory=list, max_length=50)
    milestones: list[MilestoneUpdate] = Field(default_factory=list, max_length=50)
    attachments: list[Attachment] = Field(default_factory=list, max_length=20)
    cites: list[uuid.UUID] = Field(
        default_factory=list,
        max_length=50,
        description="牵头单位汇总报告引用的配合单位报送 (their event ids)",
    )


class EventBase(Frozen):
    """Fields every event carries."""

    event_id: uuid.UUID
    occurred_at: AwareDatetime


class ProgressReportSubmitted(EventBase):
    """A unit submitted a progress report; published by intake."""

    event_type: Literal["progress_report.submitted"] = "progress_report.submitted"
    schema_version: Literal[1] = 1
    task_code: ShortText
    unit: ShortText
    key_id: ShortText
    report: ProgressReport


class MissingPart(Frozen):
    """A co-unit's part report missing past its last on-time day."""

    unit: ShortText
    period: ShortText = Field(description="报告期 (2022-10, 2022-Q3, 2022-H1, 2022-W05 …)")
    due_at: AwareDatetime = Field(description="The end of its last on-time day")


class TaskConditionChanged(EventBase):
    """Something escalation depends on changed: light, status, due date or the report owed.

    Carries the whole condition, so a consumer needs only the latest event of each task.
    Published by tracker.
    """

    event_type: Literal["task.condition_changed"] = "task.condition_changed"
    schema_version: Literal[1] = 1
    task_code: ShortText
    title: str
    section: str | None
    light: Light
    previous_light: Light | None
    light_since: AwareDatetime
    reasons: list[str]
    status: TaskStatus
    due: dt.date | None
    original_due: dt.date | None
    days_overdue: int = Field(ge=0)
    red_since: AwareDatetime | None
    report_due_at: AwareDatetime | None = Field(
        description="When the earliest report not yet received is (or was) due"
    )
    last_report_at: AwareDatetime | None
    lead_units: list[str]
    co_units: list[str]
    leaders: list[str]
    # Added within version 1 (optional): co-unit parts missing now.
    missing_parts: list[MissingPart] = Field(default_factory=list)


class TaskActionRecorded(EventBase):
    """A unit or the office acted on a task (退回, 接受, 延期, 申请销号, 销号, 重新启用…).

    Published by tracker for the timeline and downstream consumers; the condition change it
    may cause follows as its own `task.condition_changed`.
    """

    event_type: Literal["task.action_recorded"] = "task.action_recorded"
    schema_version: Literal[1] = 1
    task_code: ShortText
    action: Literal[
        "report_returned",
        "report_accepted",
        "extension_requested",
        "extension_granted",
        "extension_refused",
        "completion_requested",
        "closed",
        "reopened",
    ]
    actor_role: str
    actor_unit: str | None
    details: dict[str, Any]


class ApiKeyPublished(EventBase):
    """An API key's hash and scope, for intake's authentication; keyed `key:<key_id>`."""

    event_type: Literal["directory.api_key"] = "directory.api_key"
    schema_version: Literal[1] = 1
    key_id: ShortText
    key_hash: Sha256
    role: PrincipalRole
    unit: str | None
    expires_at: AwareDatetime | None
    revoked: bool


class TaskAssignmentPublished(EventBase):
    """Which units answer for a task, for intake's authorisation; keyed `task:<code>`."""

    event_type: Literal["directory.task_assignment"] = "directory.task_assignment"
    schema_version: Literal[1] = 1
    task_code: ShortText
    lead_units: list[str]
    co_units: list[str]
    accepting_reports: bool


DirectoryEvent = Annotated[
    ApiKeyPublished | TaskAssignmentPublished, Field(discriminator="event_type")
]

_directory_event_adapter: TypeAdapter[DirectoryEvent] = TypeAdapter(DirectoryEvent)


# How consumers read: ignore unknown fields at every level (additive changes are compatible).
TOLERANT: Literal["ignore"] = "ignore"


class UnsupportedEvent(ValueError):
    """The message is well-formed JSON but not an event type/version this consumer knows."""


def _check_envelope(data: Any, known: dict[str, set[int]]) -> None:
    """Refuse what this consumer cannot read; `decode_*` then ignore fields it does not know."""
    if not isinstance(data, dict):
        raise UnsupportedEvent("message is not a JSON object")
    event_type, version = data.get("event_type"), data.get("schema_version")
    if event_type not in known:
        raise UnsupportedEvent(f"unknown event_type {event_type!r}")
    if version not in known[event_type]:
        raise UnsupportedEvent(f"unsupported schema_version {version!r} for {event_type}")


def decode_report_event(raw: bytes) -> ProgressReportSubmitted:
    """Parse a message from the progress-reports topic; raises on anything unusable."""
    data = json.loads(raw)
    _check_envelope(data, {"progress_report.submitted": {1}})
    return ProgressReportSubmitted.model_validate(data, extra=TOLERANT)


TaskEvent = TaskConditionChanged | TaskActionRecorded
_task_event_adapter: TypeAdapter[TaskEvent] = TypeAdapter(
    Annotated[TaskEvent, Field(discriminator="event_type")]
)


def decode_task_event(raw: bytes) -> TaskEvent:
    """Parse a message from the task-events topic; raises on anything unusable."""
    data = json.loads(raw)
    _check_envelope(data, {"task.condition_changed": {1}, "task.action_recorded": {1}})
    return _task_event_adapter.validate_python(data, extra=TOLERANT)


def decode_directory_event(raw: bytes) -> ApiKeyPublished | TaskAssignmentPublished:
    """Parse a message from the directory topic; raises on anything unusable."""
    data = json.loads(raw)
    _check_envelope(data, {"directory.api_key": {1}, "directory.task_assignment": {1}})
    return _directory_event_adapter.validate_python(data, extra=TOLERANT)


def encode(event: BaseModel) -> bytes:
    """Serialise an event to its wire form (UTF-8 JSON, Chinese kept readable)."""
    return event.model_dump_json().encode("utf-8")


def new_event_id() -> uuid.UUID:
    """A fresh random event id."""
    return uuid.uuid4()
