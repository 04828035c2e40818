"""The audit log records every write with who, what, when and from where; timeouts answer 503."""

from __future__ import annotations

import datetime as dt

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from services.tracker.api import create_app
from services.tracker.deps import SessionDep
from services.tracker.keys import create_key
from services.tracker.settings import TrackerSettings
from shared.apikeys import issue_key
from shared.clock import SHANGHAI, FixedClock
from shared.db import UnitOfWork, make_engine, make_session_factory
from tests.conftest import SEEDS

from .conftest import CO, LEAD, OWN, SecureStack

pytestmark = pytest.mark.integration


def test_a_workflow_write_is_audited_with_its_change(secured: SecureStack) -> None:
    last = secured.last_audit_id()
    response = secured.tracker.post(
        f"/v1/tasks/{OWN}/extension-requests",
        json={"new_due": "2022-09-30", "reason": "汛期施工受限。"},
        headers=secured.auth("unit_lead"),
    )
    assert response.status_code == 200, response.text
    (record,) = secured.audit_rows(last)
    assert record["action"] == "request_extension"
    assert record["outcome"] == "ok" and record["status"] == 200
    assert (record["key_id"], record["role"], record["unit"]) == (
        secured.key_ids["unit_lead"],
        "unit",
        LEAD,
    )
    assert (record["method"], record["route"], record["object"]) == (
        "POST",
        "/v1/tasks/{code}/extension-requests",
        OWN,
    )
    assert record["client"] == "testclient"
    assert record["at"] == secured.stack.clock.now()
    assert record["details"] == {"new_due": "2022-09-30", "reason": "汛期施工受限。"}

    # Refused on state: the change and an "ok" record roll back together; the refusal stays.
    last = secured.last_audit_id()
    again = secured.tracker.post(
        f"/v1/tasks/{OWN}/extension-requests",
        json={"new_due": "2022-10-31", "reason": "再次申请。"},
        headers=secured.auth("unit_lead"),
    )
    assert again.status_code == 409, again.text
    (record,) = secured.audit_rows(last)
    assert (record["outcome"], record["status"]) == ("refused", 409)
    assert record["details"] == {"rule": "extension_already_pending"}


def test_co_unit_refusal_names_the_rule(secured: SecureStack) -> None:
    last = secured.last_audit_id()
    response = secured.tracker.post(
        f"/v1/tasks/{OWN}/completion-requests",
        json={"summary": "完成。"},
        headers=secured.auth("unit_co"),
    )
    assert response.status_code == 403
    (record,) = secured.audit_rows(last)
    assert (record["outcome"], record["unit"]) == ("denied", CO)
    assert record["details"] == {"rule": "co_unit_cannot_request_completion"}


def test_catalog_import_is_audited(secured: SecureStack) -> None:
    last = secured.last_audit_id()
    plan = SEEDS / "003_e1615011aa9b1423.txt"
    response = secured.tracker.post(
        "/v1/catalog/imports",
        files={"file": (plan.name, plan.read_bytes(), "text/plain")},
        headers=secured.auth("admin"),
    )
    assert response.status_code == 200, response.text
    (record,) = secured.audit_rows(last)
    assert (record["action"], record["role"], record["outcome"]) == (
        "import_catalog",
        "admin",
        "ok",
    )
    assert record["object"] and record["object"].startswith(
        str(response.json()["document"]["year"])
    )
    assert record["details"]["tasks"] == len(response.json()["tasks"])


def test_a_runaway_query_is_cancelled_and_answered_503(database_url: str) -> None:
    factory = make_session_factory(make_engine(database_url, pool_size=1))
    clock = FixedClock(dt.datetime(2022, 5, 20, 10, tzinfo=SHANGHAI))
    with UnitOfWork(factory) as uow:
        key = create_key(
            uow.session, role="admin", unit_name=None, label="t", expires_at=None, now=clock.now()
        )
        uow.commit()
    settings = TrackerSettings(database_url=database_url, request_statement_timeout_ms=200)
    app = create_app(settings, factory, clock, run_workers=False)

    @app.get("/slow")
    def slow(db: SessionDep) -> dict[str, str]:
        db.execute(text("SELECT pg_sleep(5)"))
        return {"status": "finished"}

    with TestClient(app) as client:
        response = client.get("/slow")
        assert response.status_code == 503, response.text
        assert int(response.headers["Retry-After"]) >= 1
        assert "超时" in response.json()["detail"]
        # The pool's connection is usable again afterwards.
        headers = {"Authorization": f"Bearer {key.plaintext}"}
        assert client.get("/v1/keys", headers=headers).status_code == 200


def test_database_down_answers_503_and_readiness_says_why() -> None:
    url = "postgresql+psycopg://nobody@127.0.0.1:1/none"
    factory = make_session_factory(make_engine(url, pool_size=1))
    clock = FixedClock(dt.datetime(2022, 5, 20, 10, tzinfo=SHANGHAI))
    app = create_app(TrackerSettings(database_url=url), factory, clock, run_workers=False)
    with TestClient(app) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["database"].startswith("error")
        response = client.get("/v1/tasks", headers={"Authorization": "Bearer dbn_admin_x_y_z"})
        assert response.status_code == 401  # a malformed key needs no database
        well_formed = issue_key("admin").plaintext  # checked against the database: away
        response = client.get("/v1/tasks", headers={"Authorization": f"Bearer {well_formed}"})
        assert response.status_code == 503, response.text
        assert int(response.headers["Retry-After"]) >= 1
        assert "Traceback" not in response.text
