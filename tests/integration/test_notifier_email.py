"""E-mail delivery through a real SMTP server (aiosmtpd), and a missing contact made visible."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from prometheus_client import REGISTRY

from devtools.servers import Broker

from ..channels._servers import SmtpRecorder, free_port
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


@pytest.fixture
def smtp() -> Iterator[tuple[Controller, SmtpRecorder]]:
    recorder = SmtpRecorder()
    controller = Controller(recorder, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, recorder
    controller.stop()


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_email_digest_and_missing_contact(
    database_url: str,
    broker: Broker,
    tmp_path: Path,
    smtp: tuple[Controller, SmtpRecorder],
) -> None:
    controller, recorder = smtp
    # "The next day" below is a Saturday: the ladder at any hour (quiet hours: their own test).
    policy = write_policy(
        tmp_path / "policy.yaml",
        quiet_hours=False,
        channels={
            "responsible_units": "[inbox]",
            "lead_unit_leadership": "[email]",
            "supervising_office": "[email, inbox]",
            "supervising_leader": "[email]",
        },
    )
    contacts = tmp_path / "contacts.yaml"
    # The office has an address; 市住房城乡建设委 is not in the book at all.
    contacts.write_text(
        f"contacts:\n  - name: {OFFICE}\n    role: supervising_office\n"
        "    email: dcs@example.gov.cn\n",
        encoding="utf-8",
    )
    settings = notifier_settings(
        database_url,
        broker.bootstrap,
        policy_path=policy,
        contacts_path=contacts,
        smtp_host="127.0.0.1",
        smtp_port=controller.port,
        smtp_sender="duban@example.gov.cn",
    )
    missing_before = metric(
        "duban_notifier_missing_contacts_total", channel="email", role="lead_unit_leadership"
    )
    failed_before = metric("duban_notifier_deliveries_total", channel="email", outcome="failed")
    # The relay refuses the first attempt with a temporary error; the retry gets through.
    recorder.failures.append("451 4.3.0 try again later")
    with running_notifier(settings, start=sh(7, 1, 8)) as notifier:
        red: dict[str, Any] = {
            "light": "red",
            "red_since": sh(7, 1, 0, 0),
            "reasons": ("已逾期 1 天",),
        }
        notifier.publish(
            condition("T-A", at=sh(7, 1, 0, 0, 5), **red),
            condition("T-B", at=sh(7, 1, 0, 0, 5), title="推进城市更新", **red),
        )
        notifier.at(sh(7, 1, 9))

        # One e-mail to the office, listing both tasks.
        assert len(recorder.messages) == 1
        mail_from, rcpt_tos, mail = recorder.messages[0]
        assert (mail_from, rcpt_tos) == ("duban@example.gov.cn", ["dcs@example.gov.cn"])
        assert mail["Subject"] == "【督办】2 项重点工作已逾期，请于7月3日前报送进展"
        office_rows = notifier.notifications(recipient=OFFICE, channel="email")
        assert {r["status"] for r in office_rows} == {"delivered"}
        assert {r["attempts"] for r in office_rows} == {2}
        digest_id = office_rows[0]["digest_id"]
        assert mail["Message-ID"] == f"<{digest_id}@example.gov.cn>"
        plain = mail.get_body(preferencelist=("plain",))
        html = mail.get_body(preferencelist=("html",))
        assert plain is not None and html is not None
        text = plain.get_content()
        assert "T-A" in text and "T-B" in text and "推进城市更新" in text
        assert "已逾期 1 天" in text
        assert {r["status"] for r in notifier.notifications(recipient=OFFICE, channel="inbox")} == {
            "delivered"
        }

        # The lead unit's leadership has no e-mail contact: a failed row that says so.
        housing = notifier.notifications(recipient=HOUSING)
        assert len(housing) == 2
        assert {r["status"] for r in housing} == {"failed"}
        assert all(
            "no email contact for 市住房城乡建设委 (lead_unit_leadership)" in r["last_error"]
            for r in housing
        )
        assert (
            metric(
                "duban_notifier_missing_contacts_total",
                channel="email",
                role="lead_unit_leadership",
            )
            == missing_before + 1
        )
        assert (
            metric("duban_notifier_deliveries_total", channel="email", outcome="failed")
            == failed_before + 1
        )

        # Adding the contact (the file is re-read when it changes) reaches them next day.
        contacts.write_text(
            contacts.read_text(encoding="utf-8")
            + f"  - name: {HOUSING}\n    email: zjw@example.gov.cn\n",
            encoding="utf-8",
        )
        assert notifier.workers.reload_config()
        notifier.at(sh(7, 2, 9))
        assert [m[1] for m in recorder.messages[1:]] == [["zjw@example.gov.cn"]]
        assert recorder.messages[1][2]["Subject"].startswith("【督办】2 项重点工作已逾期")
