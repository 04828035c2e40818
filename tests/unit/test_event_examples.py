"""Every event example beside the schemas is accepted by every consumer of its topic."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from shared.directory import Directory
from shared.events import (
    EXAMPLES_DIR,
    ApiKeyPublished,
    ProgressReportSubmitted,
    TaskActionRecorded,
    TaskAssignmentPublished,
    TaskConditionChanged,
    UnsupportedEvent,
    decode_directory_event,
    decode_report_event,
    decode_task_event,
    encode,
)
from shared.vocabulary import Light
from tests.event_contract import UNKNOWN_FIELD, grown_example, with_unknown_fields

EXAMPLES = sorted(EXAMPLES_DIR.glob("*.json"))
MODELS: dict[str, type[BaseModel]] = {
    "progress_report.submitted": ProgressReportSubmitted,
    "task.condition_changed": TaskConditionChanged,
    "task.action_recorded": TaskActionRecorded,
    "directory.api_key": ApiKeyPublished,
    "directory.task_assignment": TaskAssignmentPublished,
}


# What each consumer decodes with, by event type.
DECODERS: dict[str, Callable[[bytes], BaseModel]] = {
    "progress_report.submitted": decode_report_event,
    "task.condition_changed": decode_task_event,
    "task.action_recorded": decode_task_event,
    "directory.api_key": decode_directory_event,
    "directory.task_assignment": decode_directory_event,
}


def test_every_event_type_has_an_example() -> None:
    names = {p.name for p in EXAMPLES}
    assert names == {f"{event_type}.v1.json" for event_type in MODELS}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_round_trips_through_its_model(path: Path) -> None:
    raw = path.read_bytes()
    data = json.loads(raw)
    model = MODELS[data["event_type"]]
    event = model.model_validate(data)
    assert path.name == f"{data['event_type']}.v{data['schema_version']}.json"
    assert model.model_validate_json(encode(event)) == event


def test_report_example_is_accepted_by_the_tracker_consumer() -> None:
    event = decode_report_event((EXAMPLES_DIR / "progress_report.submitted.v1.json").read_bytes())
    assert event.report.percent == 40
    assert event.unit == "市发展改革委"


def test_task_event_examples_are_accepted_by_the_notifier_consumer() -> None:
    event = decode_task_event((EXAMPLES_DIR / "task.condition_changed.v1.json").read_bytes())
    assert isinstance(event, TaskConditionChanged)
    assert event.light == "red" and event.days_overdue == 1
    action = decode_task_event((EXAMPLES_DIR / "task.action_recorded.v1.json").read_bytes())
    assert isinstance(action, TaskActionRecorded) and action.action == "extension_granted"


@pytest.mark.parametrize("name", ["directory.api_key.v1.json", "directory.task_assignment.v1.json"])
def test_directory_examples_are_accepted_by_the_directory_followers(name: str) -> None:
    directory = Directory()
    directory.apply(decode_directory_event((EXAMPLES_DIR / name).read_bytes()))
    assert directory.keys or directory.tasks


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_consumers_ignore_fields_added_within_a_version(path: Path) -> None:
    """A producer on newer code may add optional fields; consumers on older code read on."""
    grown = grown_example(path.name)
    assert UNKNOWN_FIELD.encode() in grown
    decode = DECODERS[json.loads(grown)["event_type"]]
    assert decode(grown) == decode(path.read_bytes())


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_consumers_still_refuse_a_missing_or_invalid_required_field(path: Path) -> None:
    data = with_unknown_fields(json.loads(path.read_bytes()))
    decode = DECODERS[data["event_type"]]
    missing = {key: value for key, value in data.items() if key != "event_id"}
    with pytest.raises(ValidationError, match="event_id"):
        decode(json.dumps(missing).encode())
    with pytest.raises(ValidationError, match="occurred_at"):
        decode(json.dumps({**data, "occurred_at": "2022-05-31 17:20"}).encode())  # no zone
    with pytest.raises(UnsupportedEvent, match="schema_version"):
        decode(json.dumps({**data, "schema_version": 2}).encode())


def test_unknown_version_and_type_are_refused_not_guessed() -> None:
    data = json.loads((EXAMPLES_DIR / "task.condition_changed.v1.json").read_bytes())
    with pytest.raises(UnsupportedEvent, match="schema_version"):
        decode_task_event(json.dumps({**data, "schema_version": 2}).encode())
    with pytest.raises(UnsupportedEvent, match="event_type"):
        decode_task_event(json.dumps({**data, "event_type": "task.deleted"}).encode())
    with pytest.raises(ValidationError):
        decode_task_event(json.dumps({**data, "light": "purple"}).encode())


def test_events_are_frozen_and_reject_unknown_fields() -> None:
    """Producers build events strictly: they emit exactly their schema."""
    data = json.loads((EXAMPLES_DIR / "task.condition_changed.v1.json").read_bytes())
    event = TaskConditionChanged.model_validate(data)
    with pytest.raises(ValidationError):
        event.light = Light.GREEN  # type: ignore[misc]
    with pytest.raises(ValidationError):
        TaskConditionChanged.model_validate({**data, "acting_unit": "市财政局"})
