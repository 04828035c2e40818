"""The shared vocabulary: labels, and the places that must spell its values as strings."""

from __future__ import annotations

import json
from typing import get_args

from services.notifier.escalation.policy import TriggerLight, default_policy
from services.tracker.routes.keys import LeaderKeyRequest, StaffKeyRequest, UnitKeyRequest
from shared.events import EXAMPLES_DIR, TaskConditionChanged, encode
from shared.vocabulary import (
    DeadlineKind,
    EscalationLevel,
    Light,
    PrincipalRole,
    TaskStatus,
    UnitRole,
)


def test_labels() -> None:
    assert [light.label_zh for light in Light] == ["绿灯", "黄灯", "红灯", "蓝灯", "灰灯"]
    assert [s.label_zh for s in TaskStatus] == ["未启动", "推进中", "已退回", "申请销号", "已销号"]
    assert [r.label_zh for r in UnitRole] == ["牵头单位", "配合单位"]
    assert PrincipalRole.SUPERVISOR.label_zh == "督查室"
    assert [d.value for d in DeadlineKind] == [
        "complete",
        "progress",
        "continuous",
        "event",
        "unknown",
    ]


def test_the_shipped_ladder_is_the_one_the_vocabulary_names() -> None:
    levels = [(level.level, level.name) for level in default_policy().levels]
    assert levels == [(level.value, level.label_zh) for level in EscalationLevel]


def test_string_spellings_stay_within_the_vocabulary() -> None:
    # Spelled as string literals where pydantic would otherwise print enum reprs to users.
    assert set(get_args(TriggerLight)) == {Light.YELLOW, Light.RED}
    key_roles = {
        role
        for model in (UnitKeyRequest, LeaderKeyRequest, StaffKeyRequest)
        for role in get_args(model.model_fields["role"].annotation)
    }
    assert key_roles == set(PrincipalRole)


def test_events_carry_the_plain_strings() -> None:
    raw = (EXAMPLES_DIR / "task.condition_changed.v1.json").read_bytes()
    event = TaskConditionChanged.model_validate_json(raw)
    assert event.light is Light(json.loads(raw)["light"])
    assert isinstance(event.status, TaskStatus)
    wire = json.loads(encode(event))
    assert wire["light"] == json.loads(raw)["light"]
    assert wire["status"] == json.loads(raw)["status"]
