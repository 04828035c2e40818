"""Demo traffic for `make run`: a plausible year of reports and office actions, sent through
the real APIs, so the console shows a realistic mix of lights instead of everything late."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import time
from collections import Counter
from typing import Any

import httpx

from shared.clock import SHANGHAI


def _roll(code: str) -> float:
    """A stable pseudo-random number in [0, 1) per task, so every demo looks the same."""
    return int(hashlib.sha256(code.encode()).hexdigest()[:8], 16) / 0x1_0000_0000


def _expected_percent(start: dt.date, due: dt.date, today: dt.date) -> int:
    span = (due - start).days + 1
    return max(0, min(100, round(100 * (today - start).days / span)))


class DemoClient:
    """Talks to intake and tracker with the demo credentials."""

    def __init__(self, credentials: dict[str, Any], *, intake: str, tracker: str) -> None:
        self.units: dict[str, str] = credentials["units"]
        self.supervisor: str = credentials["supervisor"]
        self.intake = httpx.Client(base_url=intake, timeout=15)
        self.tracker = httpx.Client(base_url=tracker, timeout=15)

    def _call(self, client: httpx.Client, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """One request, waiting out rate limits (429) and broker outages (503)."""
        for _ in range(30):
            response = client.request(method, url, **kwargs)
            if response.status_code not in (429, 503):
                return response
            time.sleep(min(float(response.headers.get("Retry-After", "1")), 5.0))
        return response

    def tasks(self) -> list[dict[str, Any]]:
        """Every task, as the office sees it."""
        items: list[dict[str, Any]] = []
        while True:
            page = self._call(
                self.tracker,
                "GET",
                "/v1/tasks",
                params={"limit": 200, "offset": len(items)},
                headers=self._auth(self.supervisor),
            ).json()
            items += page["items"]
            if len(items) >= page["total"]:
                return items

    def task(self, code: str) -> dict[str, Any]:
        """One task with its milestones."""
        response = self._call(
            self.tracker, "GET", f"/v1/tasks/{code}", headers=self._auth(self.supervisor)
        )
        response.raise_for_status()
        task: dict[str, Any] = response.json()
        return task

    def report(
        self,
        unit: str,
        code: str,
        percent: int,
        summary: str,
        *,
        blockers: str | None = None,
        milestones: list[str] | None = None,
        period: str | None = None,
        key: str | None = None,
    ) -> None:
        """Submit a report and retry the same Idempotency-Key until accepted."""
        body = {
            "task_code": code,
            "percent": percent,
            "summary": summary,
            "blockers": blockers,
            "milestones": [{"milestone": m[:200], "done": True} for m in milestones or []],
        }
        if period is not None:
            body["period"] = period
        key = key or f"demo-{code}-{percent}"
        self._call(
            self.intake,
            "POST",
            "/v1/reports",
            json=body,
            headers={**self._auth(self.units[unit]), "Idempotency-Key": key},
        ).raise_for_status()

    def act(self, who: str, code: str, path: str, body: dict[str, Any]) -> None:
        """A workflow action on the tracker."""
        token = self.supervisor if who == "office" else self.units[who]
        self._call(
            self.tracker, "POST", f"/v1/tasks/{code}/{path}", json=body, headers=self._auth(token)
        ).raise_for_status()

    @staticmethod
    def _auth(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}


def _wait_applied(client: DemoClient, codes: set[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(t["last_report_at"] for t in client.tasks() if t["code"] in codes):
            return
        time.sleep(0.5)


# The report periods a request may name; parts of other cadences are matched by the tracker
# to the co-unit's oldest part owed.
_NAMED_PERIOD = re.compile(r"^\d{4}-(\d{2}|Q[1-4])$")


def _file_parts(client: DemoClient, task: dict[str, Any]) -> int:
    """Most co-units file the parts they owe; about one in seven leaves its latest one out,
    so the office sees a true 配合单位未报送 now and then."""
    filed = 0
    for entry in task.get("co_unit_parts", []):
        unit, missing = entry["unit"], [m["period"] for m in entry["missing"]]
        if unit not in client.units or not missing:
            continue
        if _roll(f"{task['code']}/{unit}") < 0.15:
            missing = missing[:-1]
        for period in missing:
            named = period if _NAMED_PERIOD.match(period) else None
            client.report(
                unit,
                task["code"],
                0,
                "本单位承担部分按计划推进。",
                period=named,
                # Idempotency keys are ASCII: the unit by a short hash of its name.
                key=f"demo-part-{task['code']}-{hashlib.sha256(unit.encode()).hexdigest()[:8]}-{period}",
            )
            filed += 1
    return filed


def seed(client: DemoClient, *, now: dt.datetime) -> Counter[str]:
    """Report on most tasks, finish and close some, leave a few late or silent."""
    today = now.astimezone(SHANGHAI).date()
    plan: Counter[str] = Counter()
    finishing: list[tuple[str, str, bool]] = []
    for summary in client.tasks():
        code, lead = summary["code"], next(iter(summary["lead_units"]), None)
        if lead not in client.units:
            continue
        task = client.task(code)
        plan["co_unit_parts"] += _file_parts(client, task)
        passed = [
            m["text"] for m in task["milestones"] if m["due"] and m["due"] < today.isoformat()
        ]
        due = dt.date.fromisoformat(task["due"]) if task["due"] else dt.date(today.year, 12, 31)
        expected = _expected_percent(dt.date(today.year, 1, 1), due, today)
        roll = _roll(code)
        if passed and _roll(code[::-1]) < 0.7:
            # A missed milestone (节点逾期) is what most often turns a task red in November.
            client.report(lead, code, max(0, expected - 10), "部分节点未能按期完成，正在追赶。")
            plan["milestone_missed"] += 1
        elif roll < 0.18 or due < today:
            client.report(lead, code, 100, "各项工作已完成，相关材料已报送。", milestones=passed)
            finishing.append((lead, code, roll < 0.12 or due < today))
            plan["closed" if finishing[-1][2] else "completion_requested"] += 1
        elif roll < 0.65:
            client.report(
                lead,
                code,
                min(100, expected + 3),
                "按序时进度推进，各项工作有序开展。",
                milestones=passed,
            )
            plan["on_track"] += 1
        elif roll < 0.78:
            client.report(
                lead, code, max(0, expected - 30), "前期手续办理较慢，进度滞后。", milestones=passed
            )
            plan["behind"] += 1
        elif roll < 0.86:
            client.report(
                lead,
                code,
                expected,
                "总体按计划推进。",
                milestones=passed,
                blockers="用地指标尚未落实，需市规划资源局协调。",
            )
            plan["blocked"] += 1
        else:
            plan["silent"] += 1
    _wait_applied(client, {code for _, code, _ in finishing})
    for lead, code, close in finishing:
        client.act(lead, code, "completion-requests", {"summary": "任务已完成，申请销号。"})
        if close:
            client.act("office", code, "close", {"comment": "经核验，予以销号。"})
    return plan
