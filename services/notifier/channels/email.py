"""SMTP e-mail: multipart/alternative plain text and HTML, Chinese subject lines."""

from __future__ import annotations

import smtplib
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from zoneinfo import ZoneInfo

from services.notifier.channels.base import (
    DeliveryResult,
    OutboundMessage,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from services.notifier.channels.retry import RetryPolicy, send_with_retries

SHANGHAI = ZoneInfo("Asia/Shanghai")


@dataclass(frozen=True)
class SmtpSettings:
    """How to reach the mail relay and who the mail is from."""

    host: str
    port: int
    sender: str
    sender_name: str = "督办系统"
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    use_ssl: bool = False
    timeout: float = 10.0
    message_id_domain: str | None = None

    def __post_init__(self) -> None:
        if self.starttls and self.use_ssl:
            raise ValueError("choose STARTTLS or implicit TLS, not both")
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together")


def _one_line(value: str) -> str:
    # A newline in a header value is header injection; task titles come from documents.
    return " ".join(value.split())


def _address(display_name: str, addr_spec: str) -> Address:
    try:
        return Address(display_name=_one_line(display_name), addr_spec=addr_spec.strip())
    except (ValueError, IndexError) as exc:
        raise PermanentDeliveryError(f"bad e-mail address {addr_spec!r}: {exc}") from exc


def message_id_for(notification_id: str, domain: str) -> str:
    """A Message-ID derived from the notification id, identical on every retry."""
    return f"<{notification_id}@{domain}>"


class EmailChannel:
    """Sends `message` to `message.address` through an SMTP relay."""

    def __init__(
        self,
        settings: SmtpSettings,
        *,
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._retry = retry or RetryPolicy()
        self._clock = clock

    def build(self, message: OutboundMessage) -> EmailMessage:
        """The MIME message: plain text first, HTML as the preferred alternative."""
        settings = self._settings
        sender = _address(settings.sender_name, settings.sender)
        domain = settings.message_id_domain or sender.domain or "duban.invalid"
        mail = EmailMessage()
        mail["Subject"] = _one_line(message.subject)
        mail["From"] = sender
        mail["To"] = _address(message.recipient, message.address)
        mail["Date"] = format_datetime(datetime.fromtimestamp(self._clock(), tz=SHANGHAI))
        mail["Message-ID"] = message_id_for(message.notification_id, domain)
        mail["X-Duban-Notification-Id"] = message.notification_id
        # Tells mail servers and out-of-office responders this is automated.
        mail["Auto-Submitted"] = "auto-generated"
        mail.set_content(message.text, charset="utf-8")
        mail.add_alternative(message.html, subtype="html", charset="utf-8")
        return mail

    def attempt(self, message: OutboundMessage) -> int:
        """One SMTP transaction; raises a DeliveryError on failure."""
        mail = self.build(message)
        settings = self._settings
        try:
            smtp: smtplib.SMTP
            if settings.use_ssl:
                smtp = smtplib.SMTP_SSL(
                    settings.host,
                    settings.port,
                    timeout=settings.timeout,
                    context=ssl.create_default_context(),
                )
            else:
                smtp = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout)
            with smtp:
                if settings.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if settings.username is not None and settings.password is not None:
                    smtp.login(settings.username, settings.password)
                smtp.send_message(mail)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            detail = f"recipient refused: {exc.recipients!r}"
            if codes and all(400 <= code < 500 for code in codes):
                raise TransientDeliveryError(detail, codes[0]) from exc
            raise PermanentDeliveryError(detail, codes[0] if codes else None) from exc
        except smtplib.SMTPResponseException as exc:
            detail = f"SMTP {exc.smtp_code}: {exc.smtp_error!r}"
            if 400 <= exc.smtp_code < 500:
                raise TransientDeliveryError(detail, exc.smtp_code) from exc
            raise PermanentDeliveryError(detail, exc.smtp_code) from exc
        except smtplib.SMTPNotSupportedError as exc:
            raise PermanentDeliveryError(f"SMTP server lacks a feature: {exc}") from exc
        except (smtplib.SMTPException, OSError) as exc:
            # Disconnects, refused connections and socket timeouts: the relay may recover.
            raise TransientDeliveryError(f"SMTP connection failed: {exc!r}") from exc
        return 250

    def send(self, message: OutboundMessage) -> DeliveryResult:
        """Deliver with retries; failures come back as a result, not an exception."""
        return send_with_retries(self.attempt, message, self._retry)
