"""SMTP e-mail against a real local SMTP server (aiosmtpd)."""

from __future__ import annotations

from email.header import decode_header, make_header
from email.parser import BytesHeaderParser
from email.policy import compat32

from aiosmtpd.controller import Controller

from services.notifier.channels.base import OutboundMessage
from services.notifier.channels.email import EmailChannel, SmtpSettings
from services.notifier.channels.retry import RetryPolicy

from ._servers import SmtpRecorder, free_port

FAST = RetryPolicy(max_attempts=3, initial_wait=0.01, max_wait=0.05, jitter=0.01)
SUBJECT = "【督办】3 项重点工作已逾期，请于7月7日前报送进展"
NOTIFICATION_ID = "0b7d3c57-44e0-5c3b-9d4e-0c1f0a6e8a11"


def settings(port: int) -> SmtpSettings:
    return SmtpSettings(
        host="127.0.0.1",
        port=port,
        sender="duban@example.gov.cn",
        sender_name="市政府办公厅督查室",
        timeout=5.0,
    )


def message(to: str = "zjw@example.gov.cn", subject: str = SUBJECT) -> OutboundMessage:
    return OutboundMessage(
        notification_id=NOTIFICATION_ID,
        recipient="市住房城乡建设委",
        subject=subject,
        text="市住房城乡建设委：\n\n推进老旧小区改造，已逾期 5 天。",
        markdown="",
        html="<p>市住房城乡建设委：</p><p>推进老旧小区改造，&lt;已逾期&gt; 5 天。</p>",
        address=to,
    )


def test_sends_multipart_mail_with_chinese_subject(
    smtp_server: tuple[Controller, SmtpRecorder],
) -> None:
    controller, recorder = smtp_server
    result = EmailChannel(settings(controller.port), retry=FAST).send(message())
    assert result.ok, result.error
    assert result.attempts == 1
    [(mail_from, rcpt_tos, mail)] = recorder.messages
    assert mail_from == "duban@example.gov.cn"
    assert rcpt_tos == ["zjw@example.gov.cn"]

    assert mail["Subject"] == SUBJECT
    sender = mail["From"].addresses[0]
    assert (sender.display_name, sender.addr_spec) == ("市政府办公厅督查室", "duban@example.gov.cn")
    to = mail["To"].addresses[0]
    assert (to.display_name, to.addr_spec) == ("市住房城乡建设委", "zjw@example.gov.cn")
    assert mail["Message-ID"] == f"<{NOTIFICATION_ID}@example.gov.cn>"
    assert mail["X-Duban-Notification-Id"] == NOTIFICATION_ID
    assert mail["Date"] is not None

    assert mail.get_content_type() == "multipart/alternative"
    plain = mail.get_body(preferencelist=("plain",))
    html = mail.get_body(preferencelist=("html",))
    assert plain is not None and html is not None
    assert "推进老旧小区改造，已逾期 5 天。" in plain.get_content()
    assert "&lt;已逾期&gt;" in html.get_content()
    assert plain.get_content_charset() == "utf-8"


def test_headers_are_encoded_ascii_on_the_wire(
    smtp_server: tuple[Controller, SmtpRecorder],
) -> None:
    controller, recorder = smtp_server
    assert EmailChannel(settings(controller.port), retry=FAST).send(message()).ok
    [raw] = recorder.raw
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    head.decode("ascii")  # raises if any header went out unencoded
    headers = BytesHeaderParser(policy=compat32).parsebytes(raw)
    raw_subject = headers["Subject"]
    assert "=?utf-8?" in raw_subject.lower()
    assert str(make_header(decode_header(raw_subject))) == SUBJECT


def test_message_id_is_stable_across_builds() -> None:
    channel = EmailChannel(settings(25), retry=FAST)
    first, second = channel.build(message()), channel.build(message())
    assert first["Message-ID"] == second["Message-ID"]


def test_newline_in_subject_cannot_inject_headers(
    smtp_server: tuple[Controller, SmtpRecorder],
) -> None:
    controller, recorder = smtp_server
    evil = "【督办】推进\r\nBcc: victim@example.com\r\n工作"
    result = EmailChannel(settings(controller.port), retry=FAST).send(message(subject=evil))
    assert result.ok, result.error
    [(_, rcpt_tos, mail)] = recorder.messages
    assert rcpt_tos == ["zjw@example.gov.cn"]
    assert mail["Bcc"] is None


def test_temporary_refusal_is_retried(smtp_server: tuple[Controller, SmtpRecorder]) -> None:
    controller, recorder = smtp_server
    recorder.failures.append("451 4.3.0 请稍后重试")
    result = EmailChannel(settings(controller.port), retry=FAST).send(message())
    assert result.ok, result.error
    assert result.attempts == 2
    assert len(recorder.messages) == 1


def test_permanent_refusal_is_not_retried(smtp_server: tuple[Controller, SmtpRecorder]) -> None:
    controller, recorder = smtp_server
    recorder.failures += ["554 5.7.1 rejected", "250 OK"]
    result = EmailChannel(settings(controller.port), retry=FAST).send(message())
    assert not result.ok
    assert (result.attempts, result.status_code) == (1, 554)
    assert recorder.messages == []


def test_unreachable_server_fails_after_retries() -> None:
    result = EmailChannel(settings(free_port()), retry=FAST).send(message())
    assert not result.ok
    assert result.attempts == 3
    assert "SMTP connection failed" in str(result.error)


def test_bad_address_is_permanent(smtp_server: tuple[Controller, SmtpRecorder]) -> None:
    controller, recorder = smtp_server
    result = EmailChannel(settings(controller.port), retry=FAST).send(message(to="not an address"))
    assert not result.ok
    assert result.attempts == 1
    assert recorder.messages == []
