"""Hostile input: each class gets a 4xx naming the field and the reason, and nothing written.

NUL bytes, control characters, bidirectional overrides, lone surrogates, invalid and
over-long UTF-8, non-JSON numbers, deep nesting, over-long strings and lists, mass
assignment; SQL, template and HTML payloads are data: stored and returned verbatim.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from httpx import Response

from shared import topics
from tests.integration.stack import wait_until

from .conftest import NOTIFIER_SNAPSHOT_QUERIES, OTHER, OWN, SecureStack, snapshot, topic_size

pytestmark = pytest.mark.integration

GOOD: dict[str, Any] = {"task_code": OWN, "percent": 40, "summary": "按计划推进。"}


def report(
    secured: SecureStack,
    *,
    content: bytes | None = None,
    fields: dict[str, Any] | None = None,
    **more: Any,
) -> Response:
    """Post a report as the lead unit: `content` bytes as they are, or GOOD with fields."""
    merged = {**GOOD, **(fields or {}), **more}
    body = content if content is not None else json.dumps(merged).encode("utf-8")
    response: Response = secured.intake.post(
        "/v1/reports",
        content=body,
        headers={**secured.auth("unit_lead"), "Content-Type": "application/json"},
    )
    return response


def published(secured: SecureStack, broker: Any) -> int:
    """Messages on the progress-reports topic so far."""
    return topic_size(broker.bootstrap, topics.PROGRESS_REPORTS)


def problem(response: Response) -> dict[str, Any]:
    """The first problem of a 422, after checking it is one."""
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/json")
    detail = response.json()["detail"]
    assert isinstance(detail, list) and detail, detail
    first: dict[str, Any] = detail[0]
    return first


HOSTILE_TEXT = [
    pytest.param({"summary": "前\x00后"}, ["body", "summary"], "NUL", id="nul"),
    pytest.param({"blockers": "响铃\x07"}, ["body", "blockers"], "U+0007", id="control-bel"),
    pytest.param({"next_steps": "转义\x1b[31m红"}, ["body", "next_steps"], "U+001B", id="ansi"),
    pytest.param({"summary": "C1\x85"}, ["body", "summary"], "U+0085", id="c1-control"),
    pytest.param(
        {"indicators": [{"indicator": "新增\u202e就业", "value": 1}]},
        ["body", "indicators", 0, "indicator"],
        "U+202E",
        id="bidi-override",
    ),
    pytest.param(
        {"milestones": [{"milestone": "两行\n文字", "done": True}]},
        ["body", "milestones", 0, "milestone"],
        "U+000A",
        id="newline-in-single-line",
    ),
    pytest.param({"task_code": f"{OWN}\r\n"}, ["body", "task_code"], "U+000D", id="crlf-code"),
    pytest.param({"summary": "   \t "}, ["body", "summary"], "blank", id="blank"),
    pytest.param({"summary": "非字符\uffff"}, ["body", "summary"], "U+FFFF", id="noncharacter"),
]


@pytest.mark.parametrize(("fields", "loc", "reason"), HOSTILE_TEXT)
def test_intake_refuses_hostile_characters(
    secured: SecureStack,
    module_broker: Any,
    fields: dict[str, Any],
    loc: list[Any],
    reason: str,
) -> None:
    before = published(secured, module_broker)
    found = problem(report(secured, **fields))
    assert found["loc"] == loc
    assert reason in found["msg"]
    assert published(secured, module_broker) == before


def raw(*, percent: bytes = b"1", summary: bytes = b'"x"', extra: bytes = b"") -> bytes:
    """A report body written byte by byte."""
    return b'{"task_code": "SEC2022-001", "percent": %s, "summary": %s%s}' % (
        percent,
        summary,
        extra,
    )


UTF8, UNICODE, JSON = "utf8_invalid", "string_unicode", "json_invalid"
RAW_BODIES = [
    pytest.param(raw(summary=b'"\xff\xfe"'), UTF8, ["body"], id="invalid-utf8"),
    pytest.param(raw(summary=b'"\xc0\xaf"'), UTF8, ["body"], id="overlong-slash"),
    pytest.param(raw(summary=b'"a\xc0\x80b"'), UTF8, ["body"], id="overlong-nul"),
    pytest.param(raw(summary=b'"\xed\xa0\x80"'), UTF8, ["body"], id="cesu-surrogate"),
    pytest.param(raw(summary=b'"\xf4\x90\x80\x80"'), UTF8, ["body"], id="beyond-u10ffff"),
    pytest.param(raw().decode().encode("utf-16"), UTF8, ["body"], id="utf16"),
    pytest.param(raw(summary=b'"\\ud800"'), UNICODE, ["body", "summary"], id="lone-surrogate"),
    pytest.param(raw(extra=b', "\\udfff": 1'), UNICODE, ["body"], id="surrogate-key"),
    pytest.param(raw(percent=b"NaN"), JSON, ["body"], id="nan"),
    pytest.param(raw(percent=b"-Infinity"), JSON, ["body"], id="infinity"),
    pytest.param(raw(percent=b"1" + b"0" * 5000), JSON, ["body"], id="huge-integer"),
    pytest.param(raw(extra=b', "n": ' + b"[" * 5000 + b"]" * 5000), JSON, ["body"], id="deep"),
]


@pytest.mark.parametrize(("content", "kind", "loc"), RAW_BODIES)
def test_intake_refuses_malformed_bodies(
    secured: SecureStack, module_broker: Any, content: bytes, kind: str, loc: list[Any]
) -> None:
    before = published(secured, module_broker)
    found = problem(report(secured, content=content))
    assert (found["type"], found["loc"]) == (kind, loc)
    assert published(secured, module_broker) == before


def test_numbers_out_of_json_range_are_named_not_crashed(secured: SecureStack) -> None:
    # 1e999 is valid JSON syntax that Python reads as infinity.
    found = problem(report(secured, content=raw(percent=b"1e999")))
    assert found["loc"] == ["body", "percent"]
    json.dumps(found, allow_nan=False)  # the answer itself is strict JSON


ATTACHMENT = {"name": "a", "url": "https://example.org/a", "sha256": "0" * 64}
LIMITS = [
    pytest.param(
        {"summary": "\U00020000" * 5001}, ["body", "summary"], "string_too_long", id="astral"
    ),
    pytest.param({"task_code": "T" * 121}, ["body", "task_code"], "string_too_long", id="code"),
    pytest.param(
        {"indicators": [{"indicator": f"指标{i}", "value": i} for i in range(51)]},
        ["body", "indicators"],
        "too_long",
        id="many-indicators",
    ),
    pytest.param(
        {"attachments": [ATTACHMENT] * 21}, ["body", "attachments"], "too_long", id="attachments"
    ),
    pytest.param(
        {"indicators": [{"indicator": "x", "value": "1" * 30}]},
        ["body", "indicators", 0, "value"],
        "decimal_max_digits",
        id="long-decimal",
    ),
    pytest.param(
        {"attachments": [{**ATTACHMENT, "url": "javascript:alert(1)"}]},
        ["body", "attachments", 0, "url"],
        "url_scheme",
        id="javascript-url",
    ),
]


@pytest.mark.parametrize(("fields", "loc", "kind"), LIMITS)
def test_intake_limits_lengths_and_lists(
    secured: SecureStack, module_broker: Any, fields: dict[str, Any], loc: list[Any], kind: str
) -> None:
    before = published(secured, module_broker)
    found = problem(report(secured, **fields))
    assert (found["loc"], found["type"]) == (loc, kind)
    assert published(secured, module_broker) == before


def test_intake_body_limit_is_checked_before_reading(secured: SecureStack) -> None:
    response = report(secured, summary="长" * 200_000)  # 600 KB of UTF-8
    assert response.status_code == 413, response.text
    assert "过大" in response.json()["detail"]


@pytest.mark.parametrize("field", ["unit", "key_id", "role", "status", "event_id", "occurred_at"])
def test_intake_takes_no_identity_or_state_from_the_body(
    secured: SecureStack, module_broker: Any, field: str
) -> None:
    before = published(secured, module_broker)
    found = problem(report(secured, fields={field: "市财政局"}))
    assert (found["type"], found["loc"]) == ("extra_forbidden", ["body", field])
    assert published(secured, module_broker) == before


@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param(
            "Bearer dbn_unit_\xe9\xe9\xe9\xe9_secret_abcdef".encode("latin-1"), id="latin1"
        ),
        pytest.param(b"Bearer " + b"dbn_unit_" + b"A" * 10_000, id="very-long"),
        pytest.param(b"Bearer dbn_unit_x\x01y_secret_abcdef", id="control"),
        pytest.param(b"Basic dXNlcjpwYXNz", id="basic-scheme"),
    ],
)
def test_hostile_authorization_headers_get_401(secured: SecureStack, authorization: bytes) -> None:
    for client, path in ((secured.intake, "/v1/reports"), (secured.tracker, f"/v1/tasks/{OWN}")):
        headers = {"Authorization": authorization}
        response = (
            client.post(path, json=GOOD, headers=headers)
            if path == "/v1/reports"
            else client.get(path, headers=headers)
        )
        assert response.status_code in (401, 403), response.text
        assert response.status_code == 401 or path == "/v1/reports"
        assert "detail" in response.json()


# --- tracker ---------------------------------------------------------------------------


def act(secured: SecureStack, who: str, path: str, body: Any) -> Response:
    """POST a workflow action."""
    response: Response = secured.tracker.post(path, json=body, headers=secured.auth(who))
    return response


CLOSE = f"/v1/tasks/{OWN}/close"
RETURN = f"/v1/tasks/{OWN}/returns"
EXTEND = f"/v1/tasks/{OWN}/extension-requests"
NIL = "00000000-0000-0000-0000-000000000000"
TRACKER_BODIES = [
    pytest.param(CLOSE, "supervisor", {"comment": "核验\x00通过"}, "comment", "NUL", id="nul"),
    pytest.param(
        RETURN,
        "supervisor",
        {"event_id": NIL, "comment": "\u2066隔离\u2069"},
        "comment",
        "U+2066",
        id="bidi",
    ),
    pytest.param(
        EXTEND, "unit_lead", {"new_due": "2022-09-30", "reason": "\x08退格"}, "reason", "U+0008"
    ),
    pytest.param(EXTEND, "unit_lead", {"new_due": "2022-09-30", "reason": "  "}, "reason", "blank"),
    pytest.param(
        EXTEND,
        "unit_lead",
        {"new_due": "2022-09-30", "reason": "x" * 2001},
        "reason",
        "at most 2000",
    ),
]


@pytest.mark.parametrize(("path", "who", "body", "field", "reason"), TRACKER_BODIES)
def test_tracker_refuses_hostile_text(
    secured: SecureStack, path: str, who: str, body: Any, field: str, reason: str
) -> None:
    before = snapshot(secured.session_factory)
    found = problem(act(secured, who, path, body))
    assert found["loc"] == ["body", field] and reason in found["msg"]
    assert snapshot(secured.session_factory) == before


@pytest.mark.parametrize(
    ("path", "who", "field"),
    [
        (f"/v1/tasks/{OWN}/extension-requests", "unit_lead", "status"),
        (f"/v1/tasks/{OWN}/extension-requests", "unit_lead", "unit"),
        (f"/v1/tasks/{OWN}/extension-requests", "unit_lead", "actor_role"),
        (f"/v1/tasks/{OWN}/close", "supervisor", "closed_at"),
        (f"/v1/tasks/{OWN}/close", "supervisor", "status"),
        ("/v1/keys", "admin", "key_hash"),
    ],
)
def test_tracker_bodies_refuse_mass_assignment(
    secured: SecureStack, path: str, who: str, field: str
) -> None:
    bodies = {
        "extension-requests": {"new_due": "2022-09-30", "reason": "需要时间。"},
        "close": {"comment": ""},
        "keys": {"role": "operator"},
    }
    body = next(v for k, v in bodies.items() if path.endswith(k))
    before = snapshot(secured.session_factory)
    found = problem(act(secured, who, path, {**body, field: "closed"}))
    # A key request's fields sit under its role: ["body", "operator", "key_hash"].
    assert found["type"] == "extra_forbidden"
    assert found["loc"][0] == "body" and found["loc"][-1] == field
    assert snapshot(secured.session_factory) == before


@pytest.mark.parametrize(
    ("path", "loc", "kind"),
    [
        ("/v1/tasks/%00", ["path", "code"], "value_error"),
        ("/v1/tasks/A%0AB/timeline", ["path", "code"], "value_error"),
        ("/v1/tasks/" + "X" * 121, ["path", "code"], "string_too_long"),
        ("/v1/tasks?unit=%00", ["query", "unit"], "value_error"),
        ("/v1/tasks?section=" + "节" * 201, ["query", "section"], "string_too_long"),
        ("/v1/tasks?leader=%E2%80%AE", ["query", "leader"], "value_error"),
        ("/v1/tasks?status=closed%27%20OR%201%3D1", ["query", "status"], "enum"),
        ("/v1/tasks?limit=201", ["query", "limit"], "less_than_equal"),
        ("/v1/tasks?limit=0", ["query", "limit"], "greater_than_equal"),
        ("/v1/tasks?offset=100001", ["query", "offset"], "less_than_equal"),
        (f"/v1/tasks/{OWN}/timeline?limit=100000", ["query", "limit"], "less_than_equal"),
        ("/v1/keys?limit=1000", ["query", "limit"], "less_than_equal"),
    ],
)
def test_tracker_refuses_hostile_paths_and_queries(
    secured: SecureStack, path: str, loc: list[Any], kind: str
) -> None:
    who = "admin" if path.startswith("/v1/keys") else "supervisor"
    found = problem(secured.tracker.get(path, headers=secured.auth(who)))
    assert (found["loc"], found["type"]) == (loc, kind)


@pytest.mark.parametrize(
    "payload",
    [
        "' OR '1'='1",
        "SEC2022-001' OR 1=1 --",
        "'; DROP TABLE tracker.tasks; --",
        "SEC2022-001\\",
        "%",
        "_",
    ],
)
def test_sql_injection_reads_as_a_literal(secured: SecureStack, payload: str) -> None:
    office = secured.auth("supervisor")
    response = secured.tracker.get("/v1/tasks", params={"unit": payload}, headers=office)
    assert response.status_code == 200 and response.json()["total"] == 0
    response = secured.tracker.get("/v1/tasks", params={"leader": payload}, headers=office)
    assert response.status_code == 200 and response.json()["total"] == 0
    response = secured.tracker.get("/v1/tasks", params={"section": payload}, headers=office)
    assert response.status_code == 200 and response.json()["total"] == 0
    code = payload.replace("%", "%25").replace("/", "%2F")
    response = secured.tracker.get(f"/v1/tasks/{code}", headers=office)
    # A task code never holds `%` (a path segment refuses it, naming the character).
    assert response.status_code == (422 if "%" in payload else 404), response.text
    response = report(secured, task_code=payload)
    assert response.status_code == 404, response.text
    assert secured.tracker.get("/v1/tasks", headers=office).json()["total"] == 4


def test_catalog_upload_refuses_nul_and_unknown_form_fields(secured: SecureStack) -> None:
    office = secured.auth("supervisor")
    before = snapshot(secured.session_factory)
    nul = "2022年重点工作\n一、任务\x00\n".encode("utf-16")
    response = secured.tracker.post(
        "/v1/catalog/imports", files={"file": ("a.txt", nul, "text/plain")}, headers=office
    )
    assert response.status_code == 422, response.text
    assert response.json()["detail"]["field"] == "file"
    assert "NUL" in response.json()["detail"]["message"]
    response = secured.tracker.post(
        "/v1/catalog/imports",
        files={"file": ("a.txt", b"x", "text/plain")},
        data={"dry_run": "true", "unit": "市财政局"},
        headers=office,
    )
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", "unit"]
    assert snapshot(secured.session_factory) == before


def test_payloads_are_data_stored_and_returned_verbatim(
    secured: SecureStack, module_broker: Any
) -> None:
    """SQL, template and HTML payloads are kept as written and only ever served as JSON."""
    payloads = {
        "summary": "<script>alert('x')</script><img src=x onerror=alert(1)> &amp; ",
        "blockers": "{{ 7*7 }} ${7*7} {% for x in y %} #{7*7} <%= 7*7 %>",
        "next_steps": "'); DROP TABLE tracker.reports; -- \" OR 1=1 /* */",
    }
    response = report(secured, fields=payloads)
    assert response.status_code == 202, response.text
    event_id = response.json()["event_id"]
    office = secured.auth("supervisor")

    def stored() -> dict[str, Any] | None:
        task = secured.tracker.get(f"/v1/tasks/{OWN}", headers=office)
        found = [r for r in task.json()["reports"] if r["event_id"] == event_id]
        return found[0] if found else None

    stored_report = wait_until(stored, timeout=30, what="the report to be applied")
    for field, text in payloads.items():
        assert stored_report[field] == text.strip()
    response = secured.tracker.get(f"/v1/tasks/{OWN}", headers=office)
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert response.headers["cache-control"] == "no-store"
    # The tables the payload names are still there.
    assert secured.tracker.get("/v1/tasks", headers=office).json()["total"] == 4
    assert secured.tracker.get(f"/v1/tasks/{OTHER}", headers=office).status_code == 200


NOTIFIER_NUL = [
    pytest.param(
        "POST", f"/v1/tasks/{OWN}/snoozes", {"reason": "前\x00后"}, ["body", "reason"], id="reason"
    ),
    pytest.param(
        "POST", f"/v1/tasks/{OWN}/acknowledgements", {"note": "\x00"}, ["body", "note"], id="note"
    ),
    pytest.param(
        "GET", "/v1/notifications?recipient=%00", None, ["query", "recipient"], id="recipient"
    ),
    pytest.param("GET", "/v1/notifications?task=A%00", None, ["query", "task"], id="task"),
    pytest.param("GET", "/v1/tasks/A%00B/escalations", None, ["path", "code"], id="path-code"),
]


@pytest.mark.parametrize(("method", "path", "fields", "loc"), NOTIFIER_NUL)
def test_notifier_answers_nul_with_422_naming_the_field(
    notifier_secured: SecureStack,
    method: str,
    path: str,
    fields: dict[str, Any] | None,
    loc: list[Any],
) -> None:
    """A NUL is bad input (422 naming the field), never "database unavailable" (503)."""
    secured = notifier_secured
    before = snapshot(secured.session_factory, NOTIFIER_SNAPSHOT_QUERIES)
    headers = secured.auth("supervisor")
    if method == "GET":
        response = secured.notifier.get(path, headers=headers)
    else:
        good = {"until": "2022-06-01T00:00:00+08:00", "reason": "核实中。", "level": 2}
        response = secured.notifier.post(path, json={**good, **(fields or {})}, headers=headers)
    found = problem(response)
    assert found["loc"] == loc
    assert "NUL" in found["msg"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert snapshot(secured.session_factory, NOTIFIER_SNAPSHOT_QUERIES) == before
