"""Importing the official documents into the catalog: CLI and upload API, on real Postgres."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from services.tracker.api import create_app
from services.tracker.catalog.parsing import parse_document
from services.tracker.catalog.readers import read_document_text
from services.tracker.importer import import_document
from services.tracker.keys import create_key
from services.tracker.orm import Document, PlanGoal, Report, Task
from services.tracker.settings import TrackerSettings
from shared.clock import FixedClock
from shared.db import UnitOfWork, make_engine, make_session_factory

from ..conftest import ROOT, SEEDS

pytestmark = pytest.mark.integration

TABLE = SEEDS / "002_97a1c385b29df4f9.txt"
INLINE = SEEDS / "000_bcc200c0878c4b07.txt"


def duban(*args: str, database_url: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DUBAN_LOG_LEVEL": "WARNING"}
    if database_url:
        env["DATABASE_URL"] = database_url
    return subprocess.run(
        [sys.executable, "-m", "services.tracker.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
        check=False,
    )


def count(database_url: str, model: Any) -> int:
    factory = make_session_factory(make_engine(database_url, pool_size=1))
    with UnitOfWork(factory) as uow:
        return int(uow.session.execute(select(func.count()).select_from(model)).scalar_one())


def test_cli_dry_run_prints_the_documented_json_and_writes_nothing(database_url: str) -> None:
    result = duban("import", str(TABLE), "--dry-run", "--json", database_url=database_url)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["document"] == {"title": data["document"]["title"], "year": 2022, "format": "txt"}
    assert len(data["tasks"]) == 138
    first = data["tasks"][0]
    assert set(first) == {
        "code",
        "section",
        "item",
        "text",
        "lead_units",
        "co_units",
        "leaders",
        "deadline",
        "milestones",
        "targets",
    }
    assert set(first["deadline"]) == {"text", "kind", "due", "cadence"}
    assert all(set(w) == {"line", "message"} for w in data["warnings"])
    assert count(database_url, Task) == 0


def test_cli_import_writes_the_catalog_and_reimport_changes_nothing(database_url: str) -> None:
    result = duban("import", str(INLINE), database_url=database_url)
    assert result.returncode == 0, result.stderr
    assert "新增 170 项" in result.stdout
    assert count(database_url, Task) == 170
    again = duban("import", str(INLINE), "--json", database_url=database_url)
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)["import"]
    assert (summary["added"], summary["changed"], summary["unchanged"]) == ([], [], 170)
    assert count(database_url, Task) == 170


def test_cli_refuses_a_file_that_is_not_a_task_document(database_url: str, tmp_path: Path) -> None:
    page = tmp_path / "news.txt"
    page.write_text("今日天气晴，最高气温二十五度。\n市民出行请注意防晒。\n", "utf-8")
    result = duban("import", str(page), database_url=database_url)
    assert result.returncode == 2
    assert "错误" in result.stderr
    assert count(database_url, Task) == 0 and count(database_url, Document) == 0


def test_an_edited_document_updates_what_changed_and_keeps_reports(database_url: str) -> None:
    factory = make_session_factory(make_engine(database_url, pool_size=1))
    clock = FixedClock(dt.datetime(2022, 5, 10, tzinfo=dt.UTC))
    text, fmt = read_document_text(TABLE.read_bytes(), TABLE.name)
    original = parse_document(text, fmt=fmt)
    with UnitOfWork(factory) as uow:
        import_document(uow.session, original, now=clock.now())
        uow.commit()
    target = original.tasks[4]
    edited_text = text.replace(target.text, target.text.rstrip("。") + "，并做好总结评估。", 1)
    edited = parse_document(edited_text, fmt=fmt)
    assert edited.code == original.code
    with UnitOfWork(factory) as uow:
        task = uow.session.execute(select(Task).where(Task.code == target.code)).scalar_one()
        unit = task.assignments[0].unit
        uow.session.add(
            Report(
                event_id=uuid.uuid4(),
                task_id=task.id,
                unit_id=unit.id,
                role="lead",
                period=None,
                percent=10,
                summary="已启动。",
                payload={},
                submitted_at=clock.now(),
            )
        )
        uow.commit()
    with UnitOfWork(factory) as uow:
        result = import_document(uow.session, edited, now=clock.now())
        uow.commit()
    assert result.added == []
    assert result.changed == [(target.code, ["text"])]
    assert len(result.unchanged) == 137
    with UnitOfWork(factory) as uow:
        task = uow.session.execute(select(Task).where(Task.code == target.code)).scalar_one()
        assert task.text.endswith("并做好总结评估。")
        reports = uow.session.execute(
            select(func.count()).select_from(Report).where(Report.task_id == task.id)
        )
        assert reports.scalar_one() == 1


def _upload_client(database_url: str) -> tuple[TestClient, dict[str, str]]:
    factory = make_session_factory(make_engine(database_url, pool_size=1))
    clock = FixedClock(dt.datetime(2022, 5, 10, tzinfo=dt.UTC))
    with UnitOfWork(factory) as uow:
        admin = create_key(
            uow.session, role="admin", unit_name=None, label="t", expires_at=None, now=clock.now()
        ).plaintext
        uow.commit()
    app = create_app(TrackerSettings(database_url=database_url), factory, clock, run_workers=False)
    return TestClient(app), {"Authorization": f"Bearer {admin}"}


def test_upload_api_dry_run_then_import(database_url: str) -> None:
    client, auth = _upload_client(database_url)
    with client:
        files = {"file": (TABLE.name, TABLE.read_bytes(), "text/plain")}
        dry = client.post(
            "/v1/catalog/imports", files=files, data={"dry_run": "true"}, headers=auth
        )
        assert dry.status_code == 200, dry.text
        assert len(dry.json()["tasks"]) == 138 and dry.json()["import"] is None
        assert count(database_url, Task) == 0
        real = client.post("/v1/catalog/imports", files=files, headers=auth)
        assert real.status_code == 200, real.text
        assert len(real.json()["import"]["added"]) == 138
        assert count(database_url, Task) == 138
        bad = client.post(
            "/v1/catalog/imports",
            headers=auth,
            files={"file": ("a.pdf", b"%PDF-1.4", "application/pdf")},
        )
        assert bad.status_code == 422 and bad.json()["detail"]["field"] == "file"
        none = client.post("/v1/catalog/imports", files=files)
        assert none.status_code == 401


def test_five_year_plan_goals_are_stored(database_url: str) -> None:
    plan = SEEDS / "004_8569dfe363b645b1.txt"
    result = duban("import", str(plan), database_url=database_url)
    assert result.returncode == 0, result.stderr
    assert count(database_url, PlanGoal) == 52
    factory = make_session_factory(make_engine(database_url, pool_size=1))
    with UnitOfWork(factory) as uow:
        years = uow.session.execute(select(PlanGoal.start_year, PlanGoal.end_year)).first()
    assert tuple(years or ()) == (2026, 2030)
