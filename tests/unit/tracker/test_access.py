"""The access rules as predicates: who sees a task, their role towards it, who may act."""

from __future__ import annotations

import pytest

from services.tracker import access
from services.tracker.domain.workflow import Role, RuleViolation

from .fakes import CO, LEAD, LEADER, OTHER, OTHER_LEADER, make_task, principal

CALLERS = {
    "lead": (principal("unit", unit_name=LEAD), True, Role.LEAD_UNIT),
    "co": (principal("unit", unit_name=CO), True, Role.CO_UNIT),
    "unrelated": (principal("unit", unit_name=OTHER), False, None),
    "supervisor": (principal("supervisor"), True, Role.SUPERVISOR),
    "leader": (principal("leader", leader=LEADER), True, Role.SUPERVISING_LEADER),
    "other_leader": (principal("leader", leader=OTHER_LEADER), False, None),
    "leader_without_name": (principal("leader"), False, None),
    "admin": (principal("admin"), True, None),
    "operator": (principal("operator"), False, None),
}


@pytest.mark.parametrize("name", sorted(CALLERS))
def test_who_sees_a_task_and_in_which_role(name: str) -> None:
    who, sees, role = CALLERS[name]
    task = make_task()
    assert access.may_see(who, task) is sees
    assert access.role_towards(who, task) is role


@pytest.mark.parametrize("name", sorted(CALLERS))
def test_a_task_without_units_or_leaders_is_the_offices_only(name: str) -> None:
    who, _, _ = CALLERS[name]
    task = make_task(lead=(), co=(), leaders=())
    assert access.may_see(who, task) is (who.role in ("supervisor", "admin"))


def test_a_leader_named_empty_sees_nothing_even_where_the_name_list_holds_an_empty_name() -> None:
    assert not access.may_see(principal("leader"), make_task(leaders=("",)))


OFFICE_RULE = {"code": "only_supervisor_closes", "message_zh": "只有督查室可以销号"}


@pytest.mark.parametrize("name", sorted(CALLERS))
def test_only_the_office_passes_the_office_guard(name: str) -> None:
    who, _, role = CALLERS[name]
    task = make_task()
    if role is Role.SUPERVISOR:
        access.require_office(who, task, **OFFICE_RULE)
        return
    with pytest.raises(RuleViolation) as raised:
        access.require_office(who, task, **OFFICE_RULE)
    assert (raised.value.code, raised.value.http_status) == ("only_supervisor_closes", 403)


@pytest.mark.parametrize("name", sorted(CALLERS))
def test_only_the_lead_unit_passes_the_lead_unit_guard(name: str) -> None:
    who, _, role = CALLERS[name]
    task = make_task()
    rule = {"co_unit_code": "co_no", "other_code": "other_no", "what_zh": "申请延期"}
    if role is Role.LEAD_UNIT:
        access.require_lead_unit(who, task, **rule)
        return
    with pytest.raises(RuleViolation) as raised:
        access.require_lead_unit(who, task, **rule)
    expected = ("co_no", "配合单位不能申请延期，请由牵头单位办理")
    if role is not Role.CO_UNIT:
        expected = ("other_no", "只有牵头单位可以申请延期")
    assert (raised.value.code, raised.value.message_zh) == expected
    assert raised.value.http_status == 403


PERMISSIONS = {
    "READ_TASKS": (access.READ_TASKS, {"unit", "supervisor", "leader", "admin"}),
    "IMPORT_CATALOG": (access.IMPORT_CATALOG, {"admin", "supervisor"}),
    "MANAGE_KEYS": (access.MANAGE_KEYS, {"admin"}),
    "READ_OPERATIONS": (access.READ_OPERATIONS, {"operator", "admin"}),
}


@pytest.mark.parametrize("role", ["unit", "supervisor", "leader", "admin", "operator"])
@pytest.mark.parametrize("permission", sorted(PERMISSIONS))
def test_service_wide_permissions(permission: str, role: str) -> None:
    rule, holders = PERMISSIONS[permission]
    assert rule.allows(principal(role, unit_name=LEAD if role == "unit" else None)) is (
        role in holders
    )


def test_permission_messages_name_the_roles_needed() -> None:
    assert access.IMPORT_CATALOG.message_zh == "该操作需要 admin/supervisor 角色"
    assert access.MANAGE_KEYS.message_zh == "该操作需要 admin 角色"
    assert access.READ_OPERATIONS.message_zh == "该操作需要 operator/admin 角色"
    assert access.READ_TASKS.message_zh == "该角色不能查看任务数据"
