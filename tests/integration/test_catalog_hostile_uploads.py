"""Hostile uploads through `duban import` and `POST /v1/catalog/imports`, on real Postgres.

Each hostile file (built by tests/unit/catalog/hostile.py, nothing binary committed) must
be refused with a one-line message naming the sheet, member or limit: exit code 2 from
the CLI, 413 (too large) or 422 (malformed) from the API, nothing written. A hard guard
fails a read that does not finish within GUARD_SECONDS (the CLI is killed; the upload
is waited for on a worker thread), and peak RSS is held under MEMORY_BOUND_MIB: the CLI
process's own maximum (wait4), the API's growth of this process's high-water mark. After
each refusal the service still answers a normal upload.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from services.tracker.orm import Document, Task

from ..conftest import ROOT
from ..unit.catalog import hostile
from .test_catalog_import import TABLE, _upload_client, count

pytestmark = pytest.mark.integration

GUARD_SECONDS = 10
MEMORY_BOUND_MIB = 500


@dataclass(frozen=True)
class Hostile:
    name: str
    build: Callable[[], bytes]
    status: int
    words: tuple[str, ...]


HOSTILE = [
    Hostile(
        "huge-dimension.xlsx",
        hostile.huge_dimension_xlsx,
        413,
        ("工作表“Sheet”", "A1:XFD1048576", "10000行"),
    ),
    Hostile("zip-bomb.xlsx", lambda: hostile.zip_bomb("xlsx"), 413, (hostile.SHEET, "压缩比")),
    Hostile("text-node.docx", hostile.text_node_docx, 413, (hostile.BODY, "200.0 MB")),
    Hostile("malformed.docx", hostile.malformed_docx, 422, (hostile.BODY, "不是有效的XML")),
    Hostile("malformed.xlsx", hostile.malformed_xlsx, 422, (hostile.SHEET, "不是有效的XML")),
    Hostile("entity-bomb.docx", hostile.entity_bomb_docx, 422, (hostile.BODY, "DTD")),
]
IDS = [case.name for case in HOSTILE]


@dataclass(frozen=True)
class Run:
    returncode: int
    stdout: str
    stderr: str
    max_rss_mib: int


def guarded_cli(*args: str, database_url: str) -> Run:
    """`duban …` in a child process, killed after GUARD_SECONDS; its own peak RSS."""
    env = {**os.environ, "DUBAN_LOG_LEVEL": "WARNING", "DATABASE_URL": database_url}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "services.tracker.cli", *args],
            stdout=out,
            stderr=err,
            env=env,
            cwd=ROOT,
        )
        killed = threading.Event()

        def kill() -> None:
            killed.set()
            process.kill()

        guard = threading.Timer(GUARD_SECONDS, kill)
        guard.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            guard.cancel()
        process.returncode = os.waitstatus_to_exitcode(status)
        assert not killed.is_set(), f"duban {' '.join(args)} ran past {GUARD_SECONDS} s"
        out.seek(0)
        err.seek(0)
        return Run(
            process.returncode,
            out.read().decode(),
            err.read().decode(),
            usage.ru_maxrss // 1024,  # KiB on Linux
        )


def guarded_upload(
    client: TestClient, auth: dict[str, str], name: str, data: bytes, **form: str
) -> tuple[httpx.Response, int]:
    """One upload on a worker thread, waited for at most GUARD_SECONDS; peak RSS growth."""
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        with hostile.peak_rss_growth() as growth:
            response = pool.submit(
                client.post,
                "/v1/catalog/imports",
                files={"file": (name, data, "application/octet-stream")},
                data=form,
                headers=auth,
            ).result(timeout=GUARD_SECONDS)
            return response, growth()
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def normal_upload_still_works(client: TestClient, auth: dict[str, str]) -> None:
    response, _ = guarded_upload(client, auth, TABLE.name, TABLE.read_bytes(), dry_run="true")
    assert response.status_code == 200, response.text
    assert len(response.json()["tasks"]) == 138


def nothing_written(database_url: str) -> bool:
    return count(database_url, Task) == 0 and count(database_url, Document) == 0


@pytest.mark.parametrize("case", HOSTILE, ids=IDS)
def test_cli_refuses_a_hostile_file_in_one_line(
    case: Hostile, database_url: str, tmp_path: Path
) -> None:
    path = hostile.write(tmp_path / case.name, case.build())
    run = guarded_cli("import", str(path), database_url=database_url)
    assert run.returncode == 2, run.stderr
    assert run.max_rss_mib < MEMORY_BOUND_MIB
    assert "Traceback" not in run.stderr
    (line,) = run.stderr.strip().splitlines()
    assert line.startswith(f"错误 (error): {case.name}: ")
    for word in case.words:
        assert word in line
    assert run.stdout == ""
    assert nothing_written(database_url)


@pytest.mark.parametrize("case", HOSTILE, ids=IDS)
def test_upload_refuses_a_hostile_file_and_stays_up(case: Hostile, database_url: str) -> None:
    client, auth = _upload_client(database_url)
    data = case.build()
    with client:
        response, growth = guarded_upload(client, auth, case.name, data)
        assert response.status_code == case.status, response.text
        detail = response.json()["detail"]
        assert detail["field"] == "file"
        assert "\n" not in detail["message"]
        for word in case.words:
            assert word in detail["message"]
        assert growth < MEMORY_BOUND_MIB
        assert nothing_written(database_url)
        normal_upload_still_works(client, auth)
    assert nothing_written(database_url)


@dataclass(frozen=True)
class Awkward:
    name: str
    build: Callable[[], bytes]
    tasks: list[tuple[str, str, list[str]]]  # item, section, lead units
    warnings: tuple[str, ...]  # each the start of a warning message


AWKWARD = [
    Awkward(
        "formulas-and-merges.xlsx",
        hostile.formulas_and_merges_xlsx,
        [("1", "一、稳增长", ["市财政局"]), ("2", "一、稳增长", ["市财政局"])],
        ("工作表“任务”单元格D3是公式（=DATE(2023,6,30)）但没有计算结果",),
    ),
    Awkward(
        "several-sheets.xlsx",
        hostile.several_sheets_xlsx,
        [("1", "一、稳增长", ["市财政局"]), ("2", "一、稳增长", ["市商务局"])],
        (
            "工作表“联系人”没有任务表头",
            "工作表“任务”第5行：该行没有序号，不是任务，已跳过",
            "工作表“任务”第6行：“合计”行不是任务，已跳过",
        ),
    ),
]


def check_read(body: dict[str, Any], case: Awkward) -> None:
    tasks = [(t["item"], t["section"], t["lead_units"]) for t in body["tasks"]]
    assert tasks == case.tasks
    messages = [w["message"] for w in body["warnings"]]
    for start in case.warnings:
        assert any(message.startswith(start) for message in messages), (start, messages)


@pytest.mark.parametrize("case", AWKWARD, ids=[case.name for case in AWKWARD])
def test_cli_imports_only_the_task_rows(case: Awkward, database_url: str, tmp_path: Path) -> None:
    path = hostile.write(tmp_path / case.name, case.build())
    run = guarded_cli("import", str(path), "--json", database_url=database_url)
    assert run.returncode == 0, run.stderr
    assert run.max_rss_mib < MEMORY_BOUND_MIB
    body = json.loads(run.stdout)
    check_read(body, case)
    assert len(body["import"]["added"]) == 2
    assert count(database_url, Task) == 2


@pytest.mark.parametrize("case", AWKWARD, ids=[case.name for case in AWKWARD])
def test_upload_imports_only_the_task_rows(case: Awkward, database_url: str) -> None:
    client, auth = _upload_client(database_url)
    with client:
        response, growth = guarded_upload(client, auth, case.name, case.build())
        assert response.status_code == 200, response.text
        assert growth < MEMORY_BOUND_MIB
        check_read(response.json(), case)
        assert len(response.json()["import"]["added"]) == 2
        normal_upload_still_works(client, auth)
    assert count(database_url, Task) == 2
