"""Webhook delivery against a real local HTTP receiver that is down, then up."""

from __future__ import annotations

import datetime as dt
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select

from devtools.servers import Broker
from services.notifier.channels.webhook import verify_signature
from services.notifier.orm import DigestRow
from shared.db import UnitOfWork

from ..channels._servers import free_port
from .test_notifier_support import (
    OFFICE,
    condition,
    notifier_settings,
    running_notifier,
    sh,
    write_policy,
)

pytestmark = pytest.mark.integration

HOUSING = "市住房城乡建设委"
CIVIL = "市民政局"
SECRET = "webhook-test-secret"


@dataclass
class Post:
    """One POST as the receiver saw it."""

    path: str
    headers: dict[str, str]
    body: bytes
    status: int

    @property
    def key(self) -> str:
        return self.headers["Idempotency-Key"]

    @property
    def payload(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A webhook receiver on a fixed port; it can be started, stopped and started again.

    Like a real receiver it verifies the signature and accepts each Idempotency-Key once;
    paths listed in `refuse` answer 410 Gone.
    """

    port: int
    refuse: set[str] = field(default_factory=set)
    posts: list[Post] = field(default_factory=list)
    accepted: dict[str, Any] = field(default_factory=dict)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = dict(self.headers.items())
                status = 200
                if self.path in outer.refuse:
                    status = 410
                elif not verify_signature(SECRET, body, headers.get("X-Duban-Signature", "")):
                    status = 401
                with outer._lock:
                    outer.posts.append(Post(self.path, headers, body, status))
                    if status == 200:
                        outer.accepted.setdefault(headers["Idempotency-Key"], json.loads(body))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        self._server = server

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def contacts_file(tmp_path: Path, receiver: Receiver) -> Path:
    path = tmp_path / "contacts.yaml"
    path.write_text(
        "contacts:\n"
        f"  - name: {OFFICE}\n"
        "    role: supervising_office\n"
        f"    webhook_url: {receiver.url('/hook/office')}\n"
        f"    webhook_secret: {SECRET}\n"
        f"  - name: {HOUSING}\n"
        f"    webhook_url: {receiver.url('/hook/housing')}\n"
        f"    webhook_secret: {SECRET}\n"
        f"  - name: {CIVIL}\n"
        f"    webhook_url: {receiver.url('/hook/gone')}\n"
        f"    webhook_secret: {SECRET}\n",
        encoding="utf-8",
    )
    return path


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_receiver_down_then_up_gets_each_digest_once(
    database_url: str, broker: Broker, tmp_path: Path
) -> None:
    receiver = Receiver(free_port(), refuse={"/hook/gone"})
    policy = write_policy(
        tmp_path / "policy.yaml",
        channels={
            "responsible_units": "[inbox]",
            "lead_unit_leadership": "[webhook]",
            "supervising_office": "[webhook, inbox]",
            "supervising_leader": "[inbox]",
        },
    )
    settings = notifier_settings(
        database_url,
        broker.bootstrap,
        policy_path=policy,
        contacts_path=contacts_file(tmp_path, receiver),
        delivery_attempts=2,
        delivery_rounds=4,
        redelivery_backoff_seconds=60,
    )
    retries_before = metric("duban_notifier_delivery_retries_total", channel="webhook")
    failed_before = metric("duban_notifier_deliveries_total", channel="webhook", outcome="failed")
    try:
        with running_notifier(settings, start=sh(7, 1, 8)) as notifier:
            red: dict[str, Any] = {"light": "red", "red_since": sh(7, 1, 0, 0)}
            notifier.publish(
                condition("T-A", at=sh(7, 1, 0, 0, 5), **red),
                condition("T-B", at=sh(7, 1, 0, 0, 5), title="推进城市更新", **red),
                condition("T-C", at=sh(7, 1, 0, 0, 5), lead=CIVIL, title="完善养老服务体系", **red),
            )

            # The receiver is down: the first round fails (two attempts), nothing is recorded
            # as delivered, and the next round is scheduled a minute later.
            notifier.at(sh(7, 1, 9))
            webhook_rows = notifier.notifications(channel="webhook")
            assert len(webhook_rows) == 6  # 3 tasks × (lead unit leadership, office)
            assert {r["status"] for r in webhook_rows} == {"pending"}
            assert {r["attempts"] for r in webhook_rows} == {2}
            assert all("connection failed" in r["last_error"] for r in webhook_rows)
            with UnitOfWork(notifier.session_factory) as uow:
                sending = [
                    (d.status, d.rounds, d.next_attempt_at)
                    for d in uow.session.execute(select(DigestRow)).scalars()
                    if d.channel == "webhook"
                ]
            # Housing (T-A, T-B), civil (T-C), the office (all three).
            assert sending == [("sending", 1, sh(7, 1, 9, 1))] * 3
            assert {r["status"] for r in notifier.notifications(channel="inbox")} == {"delivered"}
            assert receiver.posts == []

            # Up again, but the next round is not due yet: nothing is sent.
            receiver.start()
            notifier.at(sh(7, 1, 9, 0, 30))
            assert receiver.posts == []
            # The round comes due: each digest is delivered once.
            notifier.at(sh(7, 1, 9, 1, 1))
            accepted = receiver.accepted
            assert sorted(p.path for p in receiver.posts) == [
                "/hook/gone",
                "/hook/housing",
                "/hook/office",
            ]
            assert len(accepted) == 2
            by_path = {p.path: p for p in receiver.posts}
            housing = by_path["/hook/housing"].payload
            assert housing["recipient"] == {"role": "lead_unit_leadership", "name": HOUSING}
            assert [t["task_id"] for t in housing["tasks"]] == ["T-A", "T-B"]
            assert housing["level_name"] == "督办"
            assert by_path["/hook/housing"].key == housing["notification_id"]
            office = by_path["/hook/office"].payload
            assert [t["task_id"] for t in office["tasks"]] == ["T-A", "T-B", "T-C"]

            rows = {(r["recipient"], r["task_codes"][0]): r for r in webhook_rows}
            after = {
                (r["recipient"], r["task_codes"][0]): r
                for r in notifier.notifications(channel="webhook")
            }
            assert set(after) == set(rows)
            for key, row in after.items():
                if key[0] == CIVIL:
                    # 410 Gone is permanent: failed at once, with the receiver's answer.
                    assert row["status"] == "failed"
                    assert "HTTP 410" in row["last_error"]
                    assert row["delivered_at"] is None
                else:
                    assert row["status"] == "delivered"
                    assert row["attempts"] == 3
                    assert dt.datetime.fromisoformat(row["delivered_at"]) == sh(7, 1, 9, 1, 1)
                    assert row["digest_id"] in accepted

            # Later ticks and dispatcher passes the same day send nothing again.
            notifier.at(sh(7, 1, 15))
            assert len(receiver.posts) == 3
            assert (
                metric("duban_notifier_deliveries_total", channel="webhook", outcome="failed")
                == failed_before + 1
            )
            # Round one: one retry per digest; round two: its first attempt is a retry too.
            assert metric("duban_notifier_delivery_retries_total", channel="webhook") == (
                retries_before + 3 + 3
            )
    finally:
        receiver.stop()
