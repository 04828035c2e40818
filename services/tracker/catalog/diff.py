"""What a re-import would change: compare the stored catalog with a freshly parsed document.

Pure: the caller loads the stored entries for this document (codes start with
`ParsedDocument.code + "-"`) as JSON-like dicts, the same shape `to_json_dict` gives, and
decides what to write. Importing the same document again yields only `unchanged`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from services.tracker.catalog.model import (
    ParsedDocument,
    ParsedTask,
    PlanGoal,
    goal_to_json_dict,
    task_to_json_dict,
)

TASK_FIELDS = (
    "section",
    "item",
    "text",
    "lead_units",
    "co_units",
    "leaders",
    "deadline",
    "milestones",
    "targets",
)
GOAL_FIELDS = ("section", "item", "title", "text", "start_year", "end_year")


@dataclass(frozen=True)
class CatalogDiff:
    """Codes added, changed (with the fields that changed), unchanged and removed."""

    added: list[str] = field(default_factory=list)
    changed: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    @property
    def is_noop(self) -> bool:
        """True when applying the import would change nothing."""
        return not (self.added or self.changed or self.removed)

    def to_json_dict(self) -> dict[str, Any]:
        """The diff as JSON for the CLI and the upload response."""
        return {
            "added": list(self.added),
            "changed": [{"code": code, "fields": list(fields)} for code, fields in self.changed],
            "unchanged": list(self.unchanged),
            "removed": list(self.removed),
        }


Entry = Mapping[str, Any] | ParsedTask | PlanGoal


def _as_dict(entry: Entry) -> Mapping[str, Any]:
    if isinstance(entry, ParsedTask):
        return task_to_json_dict(entry)
    if isinstance(entry, PlanGoal):
        return goal_to_json_dict(entry)
    return entry


def _changed_fields(
    stored: Mapping[str, Any], parsed: Mapping[str, Any], fields: tuple[str, ...]
) -> tuple[str, ...]:
    # Only fields the store keeps are compared: a store without "targets" is not "changed".
    return tuple(
        name
        for name in fields
        if name in stored and _comparable(stored[name]) != _comparable(parsed.get(name))
    )


def _comparable(value: Any) -> Any:
    # Tuples from dataclasses and lists from JSON compare equal; dict order is irrelevant.
    if isinstance(value, list | tuple):
        return [_comparable(item) for item in value]
    if isinstance(value, Mapping):
        return {key: _comparable(item) for key, item in value.items()}
    return value


def diff_catalog(existing: Mapping[str, Entry], parsed: ParsedDocument) -> CatalogDiff:
    """Compare stored entries (code → task/goal dict) for this document with a new parse."""
    fresh: dict[str, tuple[Mapping[str, Any], tuple[str, ...]]] = {
        task.code: (task_to_json_dict(task), TASK_FIELDS) for task in parsed.tasks
    }
    fresh.update({goal.code: (goal_to_json_dict(goal), GOAL_FIELDS) for goal in parsed.goals})
    diff = CatalogDiff()
    for code, (entry, fields) in fresh.items():
        if code not in existing:
            diff.added.append(code)
            continue
        changed = _changed_fields(_as_dict(existing[code]), entry, fields)
        if changed:
            diff.changed.append((code, changed))
        else:
            diff.unchanged.append(code)
    diff.removed.extend(code for code in existing if code not in fresh)
    return diff
