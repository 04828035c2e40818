"""API keys: format, shown once, stored hashed, admin API and CLI, expiry, revocation at intake."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from services.tracker.cli import app as cli
from shared.apikeys import ROLES, SECRET_BITS, hash_key, issue_key, parse_key, redact
from shared.db import UnitOfWork
from tests.integration.stack import wait_until

from .conftest import LEAD, LEADER, OTHER, OWN, SecureStack

pytestmark = pytest.mark.integration

KEY_SHAPE = re.compile(
    r"^dbn_(unit|supervisor|leader|admin|operator)_[a-z2-7]{8}_[a-z2-7]{32}_[a-z2-7]{6}$"
)


def test_key_format_secret_and_checksum() -> None:
    assert SECRET_BITS >= 128
    seen = set()
    for role in ROLES:
        issued = issue_key(role)
        assert KEY_SHAPE.match(issued.plaintext), issued.plaintext
        assert parse_key(issued.plaintext) == (role, issued.key_id)
        assert issued.key_hash == hash_key(issued.plaintext) and len(issued.key_hash) == 64
        assert issued.plaintext not in redact(issued.plaintext)
        seen.add(issued.plaintext)
        body, checksum = issued.plaintext.rsplit("_", 1)
        wrong = "a" if checksum[0] != "a" else "b"
        assert parse_key(f"{body}_{wrong}{checksum[1:]}") is None
        assert parse_key(issued.plaintext.replace("dbn_", "xyz_", 1)) is None
    assert len(seen) == len(ROLES)
    assert parse_key("dbn_unit_" + "é" * 60) is None
    assert parse_key("dbn_unit_aaaaaaaa_" + "a" * 500 + "_aaaaaa") is None
    with pytest.raises(ValueError, match="unknown role"):
        issue_key("root")


def report_status(secured: SecureStack, key: str) -> int:
    """Intake's answer to a good report from the lead unit's task with this key."""
    response = secured.intake.post(
        "/v1/reports",
        json={"task_code": OWN, "percent": 10, "summary": "推进中。"},
        headers={"Authorization": f"Bearer {key}"},
    )
    return int(response.status_code)


def admin(secured: SecureStack, method: str, path: str, body: Any = None) -> Any:
    """Call the key API as the admin."""
    response = secured.tracker.request(method, path, json=body, headers=secured.auth("admin"))
    return response


def test_admin_api_creates_lists_and_revokes_and_intake_follows(secured: SecureStack) -> None:
    created = admin(secured, "POST", "/v1/keys", {"role": "unit", "unit": LEAD, "label": "接口"})
    assert created.status_code == 201, created.text
    new = created.json()
    assert created.headers["cache-control"] == "no-store"
    assert KEY_SHAPE.match(new["key"]) and new["state"] == "active"
    expires = dt.datetime.fromisoformat(new["expires_at"])
    assert expires - secured.stack.clock.now() == dt.timedelta(days=365)

    # Only the hash is stored: the secret appears in no column of any key row.
    with UnitOfWork(secured.session_factory) as uow:
        rows = uow.session.execute(text("SELECT t::text FROM tracker.api_keys t")).scalars().all()
    secret = new["key"].split("_")[3]
    assert not any(secret in row for row in rows)
    assert any(hash_key(new["key"]) in row for row in rows)

    listed = admin(secured, "GET", "/v1/keys?limit=200").json()
    mine = [k for k in listed["items"] if k["key_id"] == new["key_id"]]
    assert mine and "key" not in mine[0] and "key_hash" not in mine[0]
    assert new["key"] not in admin(secured, "GET", "/v1/keys?limit=200").text

    own = {"Authorization": f"Bearer {new['key']}"}
    assert secured.tracker.get(f"/v1/tasks/{OWN}", headers=own).status_code == 200
    wait_until(lambda: report_status(secured, new["key"]) == 202, timeout=10, what="intake")

    revoked = admin(secured, "POST", f"/v1/keys/{new['key_id']}/revoke")
    assert revoked.status_code == 200 and revoked.json()["state"] == "revoked"
    assert secured.tracker.get(f"/v1/tasks/{OWN}", headers=own).status_code == 401
    # Tracker → outbox → broker → intake's directory follower: refused within seconds.
    wait_until(lambda: report_status(secured, new["key"]) == 401, timeout=10, what="revocation")
    again = admin(secured, "POST", f"/v1/keys/{new['key_id']}/revoke")
    assert again.status_code == 200
    first, second = (dt.datetime.fromisoformat(r.json()["revoked_at"]) for r in (revoked, again))
    assert first == second

    actions = [
        (r["action"], r["object"], r["outcome"])
        for r in secured.audit_rows(0)
        if r["object"] == new["key_id"]
    ]
    assert ("create", new["key_id"], "ok") in actions
    assert actions.count(("revoke", new["key_id"], "ok")) == 2


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"role": "unit", "unit": "不存在的单位"}, ["body", "unit"]),
        ({"role": "leader", "leader": "不存在的领导"}, ["body", "leader"]),
        ({"role": "unit"}, ["body", "unit", "unit"]),
        ({"role": "root"}, ["body"]),
        ({"role": "operator", "unit": LEAD}, ["body", "operator", "unit"]),
        ({"role": "admin", "expires_in_days": 0}, ["body", "admin", "expires_in_days"]),
        ({"role": "admin", "expires_in_days": 3651}, ["body", "admin", "expires_in_days"]),
        ({"role": "admin", "label": "标签\x00"}, ["body", "admin", "label"]),
    ],
)
def test_admin_api_refuses_keys_that_do_not_fit_their_role(
    secured: SecureStack, body: dict[str, Any], loc: list[Any]
) -> None:
    before = admin(secured, "GET", "/v1/keys?limit=1").json()["total"]
    response = admin(secured, "POST", "/v1/keys", body)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == loc
    assert admin(secured, "GET", "/v1/keys?limit=1").json()["total"] == before


def test_leader_key_reads_only_its_own_tasks(secured: SecureStack) -> None:
    created = admin(secured, "POST", "/v1/keys", {"role": "leader", "leader": LEADER})
    assert created.status_code == 201, created.text
    headers = {"Authorization": f"Bearer {created.json()['key']}"}
    assert secured.tracker.get(f"/v1/tasks/{OWN}", headers=headers).status_code == 200
    assert secured.tracker.get(f"/v1/tasks/{OTHER}", headers=headers).status_code == 404
    codes = {t["code"] for t in secured.tracker.get("/v1/tasks", headers=headers).json()["items"]}
    assert OWN in codes and OTHER not in codes
    # Leaders read; they neither report nor act.
    assert report_status(secured, created.json()["key"]) in (401, 403)


def test_expired_keys_stop_working_at_both_services(secured: SecureStack) -> None:
    clock = secured.stack.clock
    with UnitOfWork(secured.session_factory) as uow:
        from services.tracker.keys import create_key

        issued = create_key(
            uow.session,
            role="unit",
            unit_name=LEAD,
            label="short-lived",
            expires_at=clock.now() + dt.timedelta(hours=1),
            now=clock.now(),
        )
        uow.commit()
    headers = {"Authorization": f"Bearer {issued.plaintext}"}
    assert secured.tracker.get(f"/v1/tasks/{OWN}", headers=headers).status_code == 200
    wait_until(lambda: report_status(secured, issued.plaintext) == 202, timeout=10, what="intake")

    clock.advance(dt.timedelta(hours=1))
    response = secured.tracker.get(f"/v1/tasks/{OWN}", headers=headers)
    assert response.status_code == 401 and "过期" in response.json()["detail"]
    response = secured.intake.post(
        "/v1/reports",
        json={"task_code": OWN, "percent": 10, "summary": "推进中。"},
        headers=headers,
    )
    assert response.status_code == 401 and "过期" in response.json()["detail"]
    shown = admin(secured, "GET", f"/v1/keys/{issued.key_id}").json()
    assert shown["state"] == "expired"


def test_cli_creates_lists_and_revokes_and_intake_follows(
    secured: SecureStack, module_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", module_database_url)
    runner = CliRunner()
    created = runner.invoke(cli, ["keys", "create", "--role", "unit", "--unit", LEAD])
    assert created.exit_code == 0, created.output
    key = re.search(r"key:\s+(\S+)", created.output)
    key_id = re.search(r"key_id:\s+(\S+)", created.output)
    assert key and key_id
    wait_until(lambda: report_status(secured, key.group(1)) == 202, timeout=10, what="intake")

    listed = runner.invoke(cli, ["keys", "list"])
    assert listed.exit_code == 0 and key_id.group(1) in listed.output
    assert key.group(1) not in listed.output

    refused = runner.invoke(cli, ["keys", "create", "--role", "leader"])
    assert refused.exit_code == 2 and "leader" in refused.output

    revoked = runner.invoke(cli, ["keys", "revoke", key_id.group(1)])
    assert revoked.exit_code == 0, revoked.output
    wait_until(lambda: report_status(secured, key.group(1)) == 401, timeout=10, what="revocation")

    records = [r for r in secured.audit_rows(0) if r["object"] == key_id.group(1)]
    assert [(r["action"], r["method"]) for r in records] == [
        ("keys.create", "CLI"),
        ("keys.revoke", "CLI"),
    ]


def test_no_secret_reaches_the_logs_or_the_audit_log(
    secured: SecureStack, capfd: pytest.CaptureFixture[str]
) -> None:
    created = admin(secured, "POST", "/v1/keys", {"role": "unit", "unit": LEAD})
    key = created.json()["key"]
    wait_until(lambda: report_status(secured, key) == 202, timeout=10, what="intake")
    forged = key[:-6] + ("aaaaaa" if not key.endswith("aaaaaa") else "bbbbbb")
    assert report_status(secured, forged) == 401
    assert (
        secured.tracker.get("/v1/tasks", headers={"Authorization": f"Bearer {forged}"}).status_code
        == 401
    )
    assert report_status(secured, secured.keys["revoked"]) == 401
    admin(secured, "POST", f"/v1/keys/{created.json()['key_id']}/revoke")
    wait_until(lambda: report_status(secured, key) == 401, timeout=10, what="revocation")

    logged = capfd.readouterr()
    secrets = [k.split("_")[3] for k in (key, forged, secured.keys["revoked"])]
    for secret in secrets:
        assert secret not in logged.out and secret not in logged.err
    assert created.json()["key_id"] in logged.out + logged.err, "the audit trail names the key"
    with UnitOfWork(secured.session_factory) as uow:
        audit = " ".join(
            uow.session.execute(text("SELECT t::text FROM tracker.audit_log t")).scalars()
        )
    assert not any(secret in audit for secret in secrets)
