"""Bad input gets a 4xx naming the problem, and nothing reaches the broker."""

from __future__ import annotations

import json
import time

import pytest

from devtools.servers import Broker
from shared import topics

from .stack import running_stack
from .test_chain import topic_size

pytestmark = pytest.mark.integration

GOOD = {"task_code": "T2022-001", "percent": 40, "summary": "按计划推进。"}


def test_bad_reports_are_refused_and_nothing_is_published(
    database_url: str, broker: Broker
) -> None:
    with running_stack(database_url, broker.bootstrap) as stack:
        key = stack.keys["市发展改革委"]
        auth = {"Authorization": f"Bearer {key}"}

        def post(
            body: object = GOOD, headers: dict[str, str] | None = None, raw: bytes | None = None
        ) -> tuple[int, dict[str, object]]:
            response = stack.intake.post(
                "/v1/reports",
                content=raw if raw is not None else json.dumps(body).encode(),
                headers={
                    "Content-Type": "application/json",
                    **(auth if headers is None else headers),
                },
            )
            return response.status_code, response.json()

        status, body = post({**GOOD, "task_code": "T2099-999"})
        assert status == 404 and "T2099-999" in str(body["detail"])

        status, body = post({**GOOD, "task_code": "T2022-002"})  # 市工业和信息化局's task
        assert status == 403 and "不是该任务的责任单位" in str(body["detail"])

        status, body = post(headers={})
        assert status == 401 and "缺少" in str(body["detail"])

        forged = key[:-6] + ("aaaaaa" if not key.endswith("aaaaaa") else "bbbbbb")
        status, body = post(headers={"Authorization": f"Bearer {forged}"})
        assert status == 401 and "无效" in str(body["detail"])

        status, body = post(headers={"Authorization": "Bearer dbn_unit_nothing_here_x"})
        assert status == 401

        status, body = post(raw=b'{"task_code": "T2022-001", "percent": ')
        assert status == 422 and body["detail"][0]["type"] == "json_invalid"  # type: ignore[index]

        status, body = post({**GOOD, "percent": 150})
        assert status == 422
        assert body["detail"][0]["loc"] == ["body", "percent"]  # type: ignore[index]

        status, body = post({**GOOD, "unit": "市财政局"})  # the acting unit comes from the key
        assert status == 422
        assert body["detail"][0]["loc"] == ["body", "unit"]  # type: ignore[index]

        status, body = post({k: v for k, v in GOOD.items() if k != "summary"})
        assert status == 422 and body["detail"][0]["loc"] == ["body", "summary"]  # type: ignore[index]

        status, body = post(raw=b'{"summary": "' + b"x" * (10 * 1024 * 1024) + b'"}')
        assert status == 413 and "过大" in str(body["detail"])

        status, body = post(headers={**auth, "Idempotency-Key": "x" * 500})
        assert status == 422 and body["detail"][0]["loc"] == ["header", "idempotency-key"]  # type: ignore[index]

        time.sleep(1)
        assert topic_size(broker.bootstrap, topics.PROGRESS_REPORTS) == 0

        status, _ = post()
        assert status == 202
        assert topic_size(broker.bootstrap, topics.PROGRESS_REPORTS) == 1


def test_broker_unreachable_gives_503_with_retry_after(database_url: str, broker: Broker) -> None:
    with running_stack(database_url, broker.bootstrap) as stack:
        broker.stop()
        started = time.monotonic()
        response = stack.intake.post(
            "/v1/reports",
            json=GOOD,
            headers={
                "Authorization": f"Bearer {stack.keys['市发展改革委']}",
                "Idempotency-Key": "retry-me",
            },
        )
        assert response.status_code == 503, response.text
        assert int(response.headers["Retry-After"]) > 0
        assert "Idempotency-Key" in response.json()["detail"]
        # Liveness, not speed: the producer gives up after its 5 s max_block, not 60 s.
        assert time.monotonic() - started < 25
