"""DingTalk (钉钉) group robot, markdown messages, optional signing."""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import quote_plus

from services.notifier.channels._http import HttpChannel, json_body, robot_errcode, truncate_utf8
from services.notifier.channels.base import OutboundMessage

# DingTalk's documented limit is 20000 bytes; stay clear of it.
MAX_TEXT_BYTES = 18000
MAX_TITLE_CHARS = 64
TRUNCATED_MARKER = "\n\n……（内容过长，其余事项请登录督办系统查看）"
# -1: system busy; 130101 and 410100: sending too fast.
TRANSIENT_ERRCODES = frozenset({-1, 130101, 410100})


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk's `sign`: base64 HMAC-SHA256 of "timestamp\\nsecret" keyed by the secret."""
    string_to_sign = f"{timestamp_ms}\n{secret}".encode()
    digest = hmac.new(secret.encode("utf-8"), string_to_sign, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def signed_url(url: str, secret: str, timestamp_ms: int) -> str:
    """The robot URL with `timestamp` and the URL-encoded `sign` query parameters."""
    separator = "&" if "?" in url else "?"
    sign = quote_plus(dingtalk_sign(secret, timestamp_ms))
    return f"{url}{separator}timestamp={timestamp_ms}&sign={sign}"


def dingtalk_payload(message: OutboundMessage) -> dict[str, object]:
    """The robot's markdown message body."""
    title = " ".join(message.subject.split())[:MAX_TITLE_CHARS]
    text = truncate_utf8(message.markdown, MAX_TEXT_BYTES, TRUNCATED_MARKER)
    return {"msgtype": "markdown", "markdown": {"title": title, "text": text}}


class DingTalkChannel(HttpChannel):
    """Posts markdown to a DingTalk robot; signs when the contact has a secret."""

    def attempt(self, message: OutboundMessage) -> int:
        """One POST; HTTP 200 with errcode 0 is the only success."""
        url = message.address
        if message.secret:
            # Signed per attempt: DingTalk rejects timestamps more than an hour old.
            url = signed_url(url, message.secret, int(self._clock() * 1000))
        body = json_body(dingtalk_payload(message))
        response = self._poster.post(url, body, {"Content-Type": "application/json; charset=utf-8"})
        robot_errcode(response, TRANSIENT_ERRCODES, "DingTalk")
        return response.status_code
