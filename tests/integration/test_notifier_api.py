"""The notifier API: who sees what, 签收 and snoozes, and what bad input gets."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from devtools.servers import Broker

from .test_notifier_support import (
    OFFICE,
    Notifier,
    condition,
    notifier_settings,
    running_notifier,
    sh,
    shape,
)

pytestmark = pytest.mark.integration

HOUSING = "市住房城乡建设委"
CIVIL = "市民政局"


def red_tasks(notifier: Notifier) -> None:
    """T-A (lead 市住房城乡建设委) and T-B (lead 市民政局) red since 1 July, 督办 delivered."""
    notifier.publish(
        condition("T-A", at=sh(7, 1, 0, 0, 5), light="red", red_since=sh(7, 1, 0, 0)),
        condition(
            "T-B",
            at=sh(7, 1, 0, 0, 5),
            light="red",
            red_since=sh(7, 1, 0, 0),
            lead=CIVIL,
            co=(),
            leaders=("李副市长",),
            title="完善养老服务体系",
        ),
    )
    notifier.at(sh(7, 1, 9))


def post(notifier: Notifier, path: str, body: Any, who: str) -> tuple[int, Any]:
    response = notifier.client.post(path, json=body, headers=notifier.headers(who))
    return response.status_code, response.json()


def test_reading_the_log(database_url: str, broker: Broker) -> None:
    with running_notifier(
        notifier_settings(database_url, broker.bootstrap), start=sh(7, 1, 8)
    ) as notifier:
        red_tasks(notifier)
        client = notifier.client
        assert client.get("/v1/notifications").status_code == 401
        bad_key = client.get("/v1/notifications", headers={"Authorization": "Bearer dbn_x"})
        assert bad_key.status_code == 401

        everything = notifier.notifications()
        assert {r["recipient"] for r in everything} == {HOUSING, CIVIL, OFFICE}
        # A unit sees only what was sent to it, and may not ask for another unit's.
        mine = notifier.notifications(HOUSING)
        assert {(r["recipient"], tuple(r["task_codes"])) for r in mine} == {(HOUSING, ("T-A",))}
        response = client.get(
            "/v1/notifications", params={"recipient": OFFICE}, headers=notifier.headers(HOUSING)
        )
        assert response.status_code == 403
        assert response.json()["detail"] == {
            "code": "other_recipient",
            "message": "单位密钥只能查看发给本单位的通知",
            "field": "recipient",
        }

        # Filters and paging.
        assert len(notifier.notifications(task="T-B")) == 2
        assert len(notifier.notifications(level=2, channel="inbox", status="delivered")) == 4
        assert notifier.notifications(level=3) == []
        assert notifier.notifications(status="failed") == []
        page = notifier.get("/v1/notifications", limit=3, offset=0)
        assert (page["total"], len(page["items"]), page["limit"]) == (4, 3, 3)
        rest = notifier.get("/v1/notifications", limit=3, offset=3)
        assert len(rest["items"]) == 1
        assert {r["id"] for r in page["items"] + rest["items"]} == {r["id"] for r in everything}

        for params, field in (
            ({"status": "sent"}, "status"),
            ({"channel": "sms"}, "channel"),
            ({"level": 0}, "level"),
            ({"limit": 1000}, "limit"),
        ):
            response = client.get("/v1/notifications", params=params, headers=notifier.headers())
            assert response.status_code == 422, params
            assert response.json()["detail"][0]["loc"] == ["query", field]

        digest_id = mine[0]["digest_id"]
        assert notifier.get(f"/v1/digests/{digest_id}", HOUSING)["recipient"] == HOUSING
        other = client.get(f"/v1/digests/{digest_id}", headers=notifier.headers(CIVIL))
        assert other.status_code == 404


def test_acknowledgements(database_url: str, broker: Broker) -> None:
    with running_notifier(
        notifier_settings(database_url, broker.bootstrap), start=sh(7, 1, 8)
    ) as notifier:
        red_tasks(notifier)
        path = "/v1/tasks/T-A/acknowledgements"

        status, body = post(notifier, path, {"level": 2, "signed_by": "张三"}, HOUSING)
        assert status == 422 and body["detail"][0]["loc"] == ["body", "signed_by"]
        status, body = post(notifier, path, {}, HOUSING)
        assert status == 422 and body["detail"][0]["loc"] == ["body", "level"]
        status, body = post(notifier, path, {"level": 0}, HOUSING)
        assert status == 422 and body["detail"][0]["loc"] == ["body", "level"]
        status, body = post(notifier, path, {"level": 4}, HOUSING)
        assert (status, body["detail"]["code"], body["detail"]["field"]) == (
            422,
            "unknown_level",
            "level",
        )
        # Not the unit's task; nothing of that level delivered; the operator does not sign.
        status, body = post(notifier, path, {"level": 2}, CIVIL)
        assert (status, body["detail"]["code"]) == (403, "not_responsible")
        status, body = post(notifier, path, {"level": 1}, HOUSING)
        assert (status, body["detail"]["code"]) == (409, "nothing_to_acknowledge")
        status, body = post(notifier, path, {"level": 2}, "operator")
        assert (status, body["detail"]["code"]) == (403, "not_allowed")
        status, body = post(notifier, "/v1/tasks/T-X/acknowledgements", {"level": 2}, HOUSING)
        assert (status, body["detail"]["code"]) == (404, "unknown_task")
        assert notifier.get("/v1/tasks/T-A/escalations")["acknowledgements"] == []

        notifier.clock.set(sh(7, 1, 10))
        status, body = post(notifier, path, {"level": 2, "note": "  已收悉  "}, HOUSING)
        assert status == 201, body
        assert (body["level"], body["by_role"], body["by_name"], body["note"]) == (
            2,
            "unit",
            HOUSING,
            "已收悉",
        )
        # The office signs too (B's 督办).
        status, body = post(notifier, "/v1/tasks/T-B/acknowledgements", {"level": 2}, "supervisor")
        assert (status, body["by_name"]) == (201, OFFICE)

        # Day 3: both acknowledged, so no repeats (no report yet; re-armed after 72 hours).
        before = len(notifier.notifications())
        notifier.at(sh(7, 4, 9))
        assert len(notifier.notifications()) == before
        notifier.at(sh(7, 4, 11))  # 73 hours after the 签收 with no report: re-armed
        rearmed = notifier.notifications()[before:]
        assert shape(rearmed) == {
            (2, "lead_unit_leadership", HOUSING, "T-A"),
            (2, "lead_unit_leadership", CIVIL, "T-B"),
            (2, "supervising_office", OFFICE, "T-A"),
            (2, "supervising_office", OFFICE, "T-B"),
        }
        assert {r["sequence"] for r in rearmed} == {2}


def test_snoozes(database_url: str, broker: Broker) -> None:
    with running_notifier(
        notifier_settings(database_url, broker.bootstrap), start=sh(7, 1, 8)
    ) as notifier:
        red_tasks(notifier)
        path = "/v1/tasks/T-A/snoozes"
        good = {"until": "2022-07-06T00:00:00+08:00", "reason": "已批准延期申请，待系统更新"}

        status, body = post(notifier, path, good, HOUSING)
        assert (status, body["detail"]["code"]) == (403, "office_only")
        for bad, field in (
            ({**good, "until": "2022-07-06T00:00:00"}, "until"),  # no time zone
            ({**good, "reason": "   "}, "reason"),
            ({"until": good["until"]}, "reason"),
            ({**good, "by": "督查室"}, "by"),
        ):
            status, body = post(notifier, path, bad, "supervisor")
            assert status == 422, bad
            assert body["detail"][0]["loc"] == ["body", field], body
        status, body = post(
            notifier, path, {**good, "until": "2022-06-30T00:00:00+08:00"}, "supervisor"
        )
        assert (status, body["detail"]["code"], body["detail"]["field"]) == (
            422,
            "until_not_future",
            "until",
        )
        status, body = post(
            notifier, path, {**good, "until": "2023-07-06T00:00:00+08:00"}, "supervisor"
        )
        assert (status, body["detail"]["code"]) == (422, "until_too_far")
        status, body = post(notifier, "/v1/tasks/T-X/snoozes", good, "supervisor")
        assert (status, body["detail"]["code"]) == (404, "unknown_task")

        status, body = post(notifier, path, good, "supervisor")
        assert status == 201, body
        assert (body["level"], body["by_name"], body["reason"]) == (None, OFFICE, good["reason"])
        status, body = post(
            notifier,
            "/v1/tasks/T-B/snoozes",
            {**good, "until": "2022-07-05T00:00:00+08:00", "level": 2},
            "supervisor",
        )
        assert status == 201, body

        before = len(notifier.notifications())
        notifier.at(sh(7, 4, 9))  # both snoozed: no repeats
        assert len(notifier.notifications()) == before
        notifier.at(sh(7, 5, 9))  # B's snooze has ended, A's has not
        assert shape(notifier.notifications()[before:]) == {
            (2, "lead_unit_leadership", CIVIL, "T-B"),
            (2, "supervising_office", OFFICE, "T-B"),
        }
        before = len(notifier.notifications())
        notifier.at(sh(7, 6, 9))  # A's snooze has ended
        assert shape(notifier.notifications()[before:]) == {
            (2, "lead_unit_leadership", HOUSING, "T-A"),
            (2, "supervising_office", OFFICE, "T-A"),
        }

        timeline = notifier.get("/v1/tasks/T-A/escalations", HOUSING)
        assert [s["reason"] for s in timeline["snoozes"]] == [good["reason"]]
        assert {n["recipient"] for n in timeline["notifications"]} == {HOUSING}
        response = notifier.client.get("/v1/tasks/T-A/escalations", headers=notifier.headers(CIVIL))
        assert (response.status_code, response.json()["detail"]["code"]) == (
            403,
            "not_responsible",
        )


def delete(notifier: Notifier, path: str, who: str) -> tuple[int, Any]:
    response = notifier.client.delete(path, headers=notifier.headers(who))
    return response.status_code, response.json()


def test_cancelling_a_snooze(database_url: str, broker: Broker) -> None:
    with running_notifier(
        notifier_settings(database_url, broker.bootstrap), start=sh(7, 1, 8)
    ) as notifier:
        red_tasks(notifier)
        good = {"until": "2022-07-10T00:00:00+08:00", "reason": "等待审计结论"}
        status, body = post(notifier, "/v1/tasks/T-A/snoozes", good, "supervisor")
        assert status == 201, body
        path = f"/v1/tasks/T-A/snoozes/{body['id']}"
        before = len(notifier.notifications(task="T-A"))
        notifier.at(sh(7, 4, 9))  # the 督办 repeat is due, but snoozed
        assert len(notifier.notifications(task="T-A")) == before

        status, body = delete(notifier, path, HOUSING)
        assert (status, body["detail"]["code"]) == (403, "office_only")
        status, body = delete(notifier, "/v1/tasks/T-A/snoozes/not-a-uuid", "supervisor")
        assert (status, body["detail"][0]["loc"]) == (422, ["path", "snooze_id"])
        unknown = "/v1/tasks/T-A/snoozes/00000000-0000-4000-8000-000000000000"
        status, body = delete(notifier, unknown, "supervisor")
        assert (status, body["detail"]["code"]) == (404, "unknown_snooze")
        status, body = delete(notifier, path.replace("T-A", "T-B"), "supervisor")
        assert (status, body["detail"]["code"]) == (404, "unknown_snooze")

        notifier.clock.set(sh(7, 4, 9, 30))
        status, body = delete(notifier, path, "supervisor")
        assert status == 200, body
        cancelled_at = dt.datetime.fromisoformat(body["cancelled_at"])
        assert (cancelled_at, body["cancelled_by"]) == (sh(7, 4, 9, 30), OFFICE)
        status, again = delete(notifier, path, "supervisor")
        assert (status, again["detail"]["code"]) == (409, "snooze_already_cancelled")

        # The next tick plans what the snooze was holding back.
        notifier.at(sh(7, 4, 9, 31))
        assert shape(notifier.notifications(task="T-A")[before:]) == {
            (2, "lead_unit_leadership", HOUSING, "T-A"),
            (2, "supervising_office", OFFICE, "T-A"),
        }
        (shown,) = notifier.get("/v1/tasks/T-A/escalations")["snoozes"]
        assert (shown["cancelled_by"], shown["reason"]) == (OFFICE, good["reason"])
