"""Every route × every caller × own/other object: the status, the rule, and nothing written.

Callers that may act are sent a request their rules refuse on the task's *state* (a 409 or
422 naming a state rule), so every cell leaves the record untouched and the matrix needs no
ordering: reaching the state rule proves the caller got past authorisation.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from httpx import Response

from shared import topics
from tests.conftest import SEEDS

from .conftest import (
    CLOSED,
    CO,
    FOURTH,
    LEAD,
    NOTIFIER_SNAPSHOT_QUERIES,
    OTHER,
    OTHER_LEAD,
    OWN,
    UNKNOWN,
    SecureStack,
    snapshot,
    topic_size,
)

pytestmark = pytest.mark.integration

DISTRICT_PLAN = SEEDS / "003_e1615011aa9b1423.txt"
UNAUTHENTICATED = ("anonymous", "malformed", "forged", "unknown", "expired", "revoked")
RELATED = ("unit_lead", "unit_co", "leader")  # have own and other tasks
STAFF = ("supervisor", "admin", "operator")
VISIBLE = {  # what each caller may list
    "unit_lead": {OWN, CLOSED},
    "unit_co": {OWN, CLOSED},
    "leader": {OWN, CLOSED},
    "supervisor": {OWN, OTHER, CLOSED, FOURTH},
    "admin": {OWN, OTHER, CLOSED, FOURTH},
}


@dataclass(frozen=True)
class Route:
    """One route, how to call it, and who may."""

    name: str
    method: str
    path: str
    body: dict[str, Any] | None = None
    on_task: bool = True
    own_task: str = OWN


READS = (
    Route("task", "GET", "/v1/tasks/{code}"),
    Route("timeline", "GET", "/v1/tasks/{code}/timeline"),
    Route("list", "GET", "/v1/tasks", on_task=False),
    Route("overdue", "GET", "/v1/tasks/overdue", on_task=False),
    Route("decisions", "GET", "/v1/decisions/pending", on_task=False),
)
OFFICE = (
    Route("returns", "POST", "/v1/tasks/{code}/returns", {"event_id": "", "comment": "请补充。"}),
    Route("accept", "POST", "/v1/tasks/{code}/reports/{event_id}/accept", {"comment": ""}),
    Route("grant", "POST", "/v1/tasks/{code}/extension-requests/grant", {"comment": ""}),
    Route("refuse", "POST", "/v1/tasks/{code}/extension-requests/refuse", {"comment": ""}),
    Route("close", "POST", "/v1/tasks/{code}/close", {"comment": "核验。"}),
    Route("reopen", "POST", "/v1/tasks/{code}/reopen", {"comment": ""}),
)
LEAD_UNIT = (
    # The lead unit asks for its own due date: refused as not later (422), nothing stored.
    Route(
        "extension",
        "POST",
        "/v1/tasks/{code}/extension-requests",
        {"new_due": "2022-06-30", "reason": "需要更多时间。"},
    ),
    # S-003 is closed: the lead unit's completion request is refused on state (409).
    Route(
        "completion",
        "POST",
        "/v1/tasks/{code}/completion-requests",
        {"summary": "已完成。"},
        own_task=CLOSED,
    ),
)
ADMIN = (
    Route("catalog", "POST", "/v1/catalog/imports", on_task=False),
    Route("keys.list", "GET", "/v1/keys", on_task=False),
    Route(
        "keys.create",
        "POST",
        "/v1/keys",
        {"role": "unit", "unit": "不存在的单位", "label": "matrix"},
        on_task=False,
    ),
    Route("keys.show", "GET", "/v1/keys/{admin_key_id}", on_task=False),
    Route("keys.revoke", "POST", "/v1/keys/aaaaaaaa/revoke", on_task=False),
    Route("ops", "GET", "/v1/ops/status", on_task=False),
)
ROUTES = (*READS, *OFFICE, *LEAD_UNIT, *ADMIN)

OFFICE_RULES = {
    "returns": "only_supervisor_returns_reports",
    "accept": "only_supervisor_accepts_reports",
    "grant": "only_supervisor_decides_extensions",
    "refuse": "only_supervisor_decides_extensions",
    "close": "only_supervisor_closes",
    "reopen": "only_supervisor_reopens",
}
OFFICE_STATE_RULES = {
    "returns": "only_latest_report_can_be_returned",
    "accept": "no_report_to_accept",
    "grant": "no_pending_extension",
    "refuse": "no_pending_extension",
    "close": "close_without_completion_request",
    "reopen": "reopen_requires_closed",
}
LEAD_RULES = {
    "extension": ("extension_not_later", "co_unit_cannot_request_extension"),
    "completion": ("task_closed", "co_unit_cannot_request_completion"),
}
LEAD_OTHERS = {
    "extension": "only_lead_unit_requests_extension",
    "completion": "only_lead_unit_requests_completion",
}


@dataclass(frozen=True)
class Expected:
    """The answer a cell must get; `rule` is the body's code when one is named."""

    status: int
    rule: str | None = None
    hidden: bool = False


def expected(route: Route, caller: str, obj: str) -> Expected:
    """The access rules, written out independently of the code under test."""
    if caller in UNAUTHENTICATED:
        return Expected(401)
    if route.name == "ops":
        return (
            Expected(200) if caller in ("operator", "admin") else Expected(403, "role_not_allowed")
        )
    if route.name.startswith("keys."):
        if caller != "admin":
            return Expected(403, "role_not_allowed")
        return Expected({"keys.create": 422, "keys.revoke": 404}.get(route.name, 200))
    if route.name == "catalog":
        ok = caller in ("admin", "supervisor")
        return Expected(200) if ok else Expected(403, "role_not_allowed")
    if caller == "operator":
        return Expected(403, "role_not_allowed")
    if route.name == "decisions":  # the office's queue: the office, and leaders for theirs
        ok = caller in ("supervisor", "admin", "leader")
        return Expected(200) if ok else Expected(403, "role_not_allowed")
    if not route.on_task:
        return Expected(200)
    if caller in RELATED and obj == "other":
        return Expected(404, hidden=True)
    if route in READS:
        return Expected(200)
    if route.name in OFFICE_RULES:
        if caller == "supervisor":
            return Expected(409, OFFICE_STATE_RULES[route.name])
        return Expected(403, OFFICE_RULES[route.name])
    state_rule, co_rule = LEAD_RULES[route.name]
    if caller == "unit_lead":
        return Expected(422 if route.name == "extension" else 409, state_rule)
    if caller == "unit_co":
        return Expected(403, co_rule)
    return Expected(403, LEAD_OTHERS[route.name])


def cells() -> list[Any]:
    """Every (route, caller, object) with its id."""
    found = []
    for route in ROUTES:
        for caller in (*UNAUTHENTICATED, *RELATED, *STAFF):
            objects = (
                ("own", "other") if route.on_task and caller not in UNAUTHENTICATED else ("own",)
            )
            for obj in objects:
                found.append(pytest.param(route, caller, obj, id=f"{route.name}-{caller}-{obj}"))
    return found


def call(secured: SecureStack, route: Route, caller: str, obj: str) -> Response:
    """Send the route's request as `caller` about its own or another's task."""
    code = (route.own_task if obj == "own" else OTHER) if route.on_task else ""
    path = route.path.format(
        code=code, admin_key_id=secured.key_ids["admin"], event_id=uuid.uuid4()
    )
    headers = secured.auth(caller)
    response: Response
    if route.name == "catalog":
        response = secured.tracker.post(
            path,
            files={"file": (DISTRICT_PLAN.name, DISTRICT_PLAN.read_bytes(), "text/plain")},
            data={"dry_run": "true"},
            headers=headers,
        )
        return response
    body = dict(route.body) if route.body is not None else None
    if body is not None and "event_id" in body:
        body["event_id"] = str(uuid.uuid4())
    if route.method == "GET":
        response = secured.tracker.get(path, headers=headers)
    else:
        response = secured.tracker.post(path, json=body, headers=headers)
    return response


@pytest.mark.parametrize(("route", "caller", "obj"), cells())
def test_tracker_route(secured: SecureStack, route: Route, caller: str, obj: str) -> None:
    want = expected(route, caller, obj)
    before = snapshot(secured.session_factory)
    last_audit = secured.last_audit_id()

    response = call(secured, route, caller, obj)

    assert response.status_code == want.status, response.text
    body = response.json()
    if want.rule is not None:
        assert body["detail"]["code"] == want.rule, body
    if response.status_code == 200 and route.name in ("list", "overdue"):
        assert {item["code"] for item in body["items"]} <= VISIBLE[caller]
    if response.status_code == 200 and route.name == "decisions":
        assert {item["task_code"] for item in body["items"]} <= VISIBLE[caller]
    if response.status_code == 200 and route.name == "list":
        assert {item["code"] for item in body["items"]} == VISIBLE[caller]
    assert snapshot(secured.session_factory) == before, "a refused request changed the record"

    records = secured.audit_rows(last_audit)
    if want.status in (401, 403) or want.hidden or (route.method == "POST" and want.status >= 400):
        assert len(records) == 1, records
        (record,) = records
        outcome = "denied" if want.status in (401, 403) else "hidden" if want.hidden else "refused"
        assert (record["outcome"], record["status"]) == (outcome, want.status)
        assert record["method"] == route.method
        assert record["route"].startswith("/v1/")
        assert record["client"] == "testclient"
        if caller in secured.key_ids:
            assert record["key_id"] == secured.key_ids[caller]
        if caller not in UNAUTHENTICATED:
            assert record["role"] is not None
        if route.on_task:
            expected_object = route.own_task if obj == "own" else OTHER
            assert record["object"] == expected_object
    else:
        assert records == [], "a read or an allowed no-op was audited as a write"


INTAKE_CALLERS = (*UNAUTHENTICATED, *RELATED, *STAFF)


def intake_expected(caller: str, obj: str) -> int:
    """Intake's answer: only a unit responsible for the task may report on it."""
    if caller in UNAUTHENTICATED:
        return 401
    if caller in ("unit_lead", "unit_co") and obj == "own":
        return 202
    return 403


@pytest.mark.parametrize(
    ("caller", "obj"),
    [
        pytest.param(c, o, id=f"report-{c}-{o}")
        for c in INTAKE_CALLERS
        for o in (("own",) if c in UNAUTHENTICATED else ("own", "other"))
    ],
)
def test_intake_report(secured: SecureStack, module_broker: Any, caller: str, obj: str) -> None:
    size: Callable[[], int] = lambda: topic_size(module_broker.bootstrap, topics.PROGRESS_REPORTS)  # noqa: E731
    before = size()
    response = secured.intake.post(
        "/v1/reports",
        json={"task_code": OWN if obj == "own" else OTHER, "percent": 10, "summary": "推进中。"},
        headers=secured.auth(caller),
    )
    want = intake_expected(caller, obj)
    assert response.status_code == want, response.text
    assert size() == before + (1 if want == 202 else 0)


@pytest.mark.parametrize("route", [r for r in ROUTES if r.on_task], ids=lambda r: r.name)
def test_unknown_and_invisible_tasks_look_the_same(secured: SecureStack, route: Route) -> None:
    """A unit cannot tell another unit's task from one that does not exist."""
    answers = []
    for code in (OTHER, UNKNOWN):
        last_audit = secured.last_audit_id()
        body = dict(route.body) if route.body else None
        if body and "event_id" in body:
            body["event_id"] = str(uuid.uuid4())
        path = route.path.format(code=code, event_id=uuid.uuid4())
        headers = secured.auth("unit_lead")
        response = (
            secured.tracker.get(path, headers=headers)
            if route.method == "GET"
            else secured.tracker.post(path, json=body, headers=headers)
        )
        text = response.text.replace(code, "<code>")
        answers.append((response.status_code, text, sorted(response.headers.keys())))
        outcomes = [r["outcome"] for r in secured.audit_rows(last_audit)]
        # The audit log, unlike the caller, knows which was which.
        if code == OTHER:
            assert outcomes == ["hidden"]
        else:
            assert outcomes == ([] if route.method == "GET" else ["refused"])
    assert answers[0] == answers[1]
    assert answers[0][0] == 404


# --- the notifier -------------------------------------------------------------------------

NOTIFIER_UNITS = ("unit_lead", "unit_co")  # units responsible for OWN, not for OTHER
NOTIFIER_CALLERS = (*UNAUTHENTICATED, *NOTIFIER_UNITS, "leader", *STAFF)
PAST = "2022-05-01T00:00:00+08:00"  # before the stack's clock: every snooze is refused


@dataclass(frozen=True)
class NotifierRoute:
    """One notifier route: how to call it about own or other, and whether it writes."""

    name: str
    method: str
    path: str
    body: dict[str, Any] | None = None


NOTIFIER_ROUTES = (
    NotifierRoute("notifications", "GET", "/v1/notifications"),
    NotifierRoute("digest", "GET", "/v1/digests/{digest_id}"),
    NotifierRoute("escalations", "GET", "/v1/tasks/{code}/escalations"),
    # No level-2 notice was delivered for these tasks: a 签收 that gets past its access
    # rules is refused on state (409), so nothing is stored.
    NotifierRoute("acknowledge", "POST", "/v1/tasks/{code}/acknowledgements", {"level": 2}),
    NotifierRoute(
        "snooze", "POST", "/v1/tasks/{code}/snoozes", {"until": PAST, "reason": "核实中。"}
    ),
    # Each task's snooze was cancelled in setup: a cancellation that gets past the office
    # rule is refused on state (409), so nothing changes.
    NotifierRoute("cancel_snooze", "DELETE", "/v1/tasks/{code}/snoozes/{snooze_id}"),
)


def notifier_expected(route: NotifierRoute, caller: str, obj: str) -> Expected:
    """The notifier's access rules, written out independently of the code under test."""
    if caller in UNAUTHENTICATED:
        return Expected(401)
    unit = caller in NOTIFIER_UNITS
    if route.name == "notifications":
        # `other` asks for another unit's notices, which only a unit may not see.
        return Expected(403, "other_recipient") if unit and obj == "other" else Expected(200)
    if route.name == "digest":
        return Expected(404, "unknown_digest")
    if route.name == "escalations":
        return Expected(403, "not_responsible") if unit and obj == "other" else Expected(200)
    if route.name == "acknowledge":
        if caller == "operator":
            return Expected(403, "not_allowed")
        if unit and obj == "other":
            return Expected(403, "not_responsible")
        return Expected(409, "nothing_to_acknowledge")
    if caller in ("supervisor", "admin"):
        if route.name == "cancel_snooze":
            return Expected(409, "snooze_already_cancelled")
        return Expected(422, "until_not_future")
    return Expected(403, "office_only")


def notifier_cells() -> list[Any]:
    """Every (notifier route, caller, object) with its id."""
    return [
        pytest.param(route, caller, obj, id=f"notifier.{route.name}-{caller}-{obj}")
        for route in NOTIFIER_ROUTES
        for caller in NOTIFIER_CALLERS
        for obj in (
            ("own",) if caller in UNAUTHENTICATED or route.name == "digest" else ("own", "other")
        )
    ]


@pytest.fixture(scope="module")
def cancelled_snoozes(notifier_secured: SecureStack) -> dict[str, str]:
    """A snooze on OWN and one on OTHER, each cancelled by the office: their ids by task."""
    secured = notifier_secured
    until = (secured.stack.clock.now() + dt.timedelta(days=1)).isoformat()
    office = secured.auth("supervisor")
    ids: dict[str, str] = {}
    for code in (OWN, OTHER):
        response = secured.notifier.post(
            f"/v1/tasks/{code}/snoozes", json={"until": until, "reason": "核实中。"}, headers=office
        )
        assert response.status_code == 201, response.text
        ids[code] = response.json()["id"]
        response = secured.notifier.delete(f"/v1/tasks/{code}/snoozes/{ids[code]}", headers=office)
        assert response.status_code == 200, response.text
    return ids


def notifier_call(
    secured: SecureStack,
    route: NotifierRoute,
    caller: str,
    obj: str,
    snoozes: dict[str, str] | None = None,
) -> Response:
    """Send the route's request as `caller` about its own or another's task."""
    code = OWN if obj == "own" else OTHER
    snooze_id = (snoozes or {}).get(code, uuid.uuid4())
    path = route.path.format(code=code, digest_id=uuid.uuid4(), snooze_id=snooze_id)
    headers = secured.auth(caller)
    if route.method == "GET":
        params = (
            {"recipient": OTHER_LEAD} if route.name == "notifications" and obj == "other" else {}
        )
        response: Response = secured.notifier.get(path, params=params, headers=headers)
        return response
    if route.method == "DELETE":
        response = secured.notifier.delete(path, headers=headers)
        return response
    response = secured.notifier.post(path, json=route.body, headers=headers)
    return response


@pytest.mark.parametrize(("route", "caller", "obj"), notifier_cells())
def test_notifier_route(
    notifier_secured: SecureStack,
    cancelled_snoozes: dict[str, str],
    route: NotifierRoute,
    caller: str,
    obj: str,
) -> None:
    secured = notifier_secured
    want = notifier_expected(route, caller, obj)
    before = snapshot(secured.session_factory, NOTIFIER_SNAPSHOT_QUERIES)
    last_audit = secured.last_audit_id(schema="notifier")

    response = notifier_call(secured, route, caller, obj, cancelled_snoozes)

    assert response.status_code == want.status, response.text
    body = response.json()
    if want.rule is not None:
        assert body["detail"]["code"] == want.rule, body
    if response.status_code == 200 and route.name == "notifications" and caller in NOTIFIER_UNITS:
        unit = LEAD if caller == "unit_lead" else CO
        assert {item["recipient"] for item in body["items"]} <= {unit}
    after = snapshot(secured.session_factory, NOTIFIER_SNAPSHOT_QUERIES)
    assert after == before, "a refused request changed the record"

    records = secured.audit_rows(last_audit, schema="notifier")
    if want.status in (401, 403) or (route.method in ("POST", "DELETE") and want.status >= 400):
        assert len(records) == 1, records
        (record,) = records
        outcome = "denied" if want.status in (401, 403) else "refused"
        assert (record["outcome"], record["status"]) == (outcome, want.status)
        assert (record["method"], record["route"]) == (route.method, route.path)
        assert record["client"] == "testclient"
        assert record["details"] == ({"rule": want.rule} if want.rule else {})
        if caller in secured.key_ids:
            assert record["key_id"] == secured.key_ids[caller]
        if caller not in UNAUTHENTICATED:
            assert record["role"] is not None
        if "{code}" in route.path:
            assert record["object"] == (OWN if obj == "own" else OTHER)
    else:
        assert records == [], "a read was audited as a write"


def test_notifier_audits_a_snooze_with_the_change(notifier_secured: SecureStack) -> None:
    """A successful write is recorded in its own transaction, once, naming who and what."""
    secured = notifier_secured
    last_audit = secured.last_audit_id(schema="notifier")
    until = (secured.stack.clock.now() + dt.timedelta(days=1)).isoformat()
    response = secured.notifier.post(
        f"/v1/tasks/{FOURTH}/snoozes",
        json={"until": until, "reason": "核实中。"},
        headers=secured.auth("supervisor"),
    )
    assert response.status_code == 201, response.text
    (record,) = secured.audit_rows(last_audit, schema="notifier")
    assert (record["outcome"], record["status"], record["object"]) == ("ok", 201, FOURTH)
    assert (record["key_id"], record["role"]) == (secured.key_ids["supervisor"], "supervisor")
    assert record["action"] == "post_snooze"


def test_notifier_audits_a_snooze_cancellation(notifier_secured: SecureStack) -> None:
    """Cancelling is recorded once with the change; an unknown snooze is refused and audited."""
    secured = notifier_secured
    office = secured.auth("supervisor")
    until = (secured.stack.clock.now() + dt.timedelta(days=1)).isoformat()
    response = secured.notifier.post(
        f"/v1/tasks/{FOURTH}/snoozes", json={"until": until, "reason": "核实中。"}, headers=office
    )
    assert response.status_code == 201, response.text
    path = f"/v1/tasks/{FOURTH}/snoozes/{response.json()['id']}"
    last_audit = secured.last_audit_id(schema="notifier")
    before = snapshot(secured.session_factory, NOTIFIER_SNAPSHOT_QUERIES)
    response = secured.notifier.delete(path, headers=secured.auth("admin"))
    assert response.status_code == 200, response.text
    assert snapshot(secured.session_factory, NOTIFIER_SNAPSHOT_QUERIES) != before
    (record,) = secured.audit_rows(last_audit, schema="notifier")
    assert (record["outcome"], record["status"], record["object"]) == ("ok", 200, FOURTH)
    assert (record["key_id"], record["role"]) == (secured.key_ids["admin"], "admin")
    assert (record["action"], record["method"]) == ("cancel_snooze", "DELETE")

    last_audit = secured.last_audit_id(schema="notifier")
    response = secured.notifier.delete(f"/v1/tasks/{FOURTH}/snoozes/{uuid.uuid4()}", headers=office)
    assert (response.status_code, response.json()["detail"]["code"]) == (404, "unknown_snooze")
    (record,) = secured.audit_rows(last_audit, schema="notifier")
    assert (record["outcome"], record["status"]) == ("refused", 404)
    assert record["details"] == {"rule": "unknown_snooze"}
