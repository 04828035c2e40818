"""WeCom (企业微信) group robot, markdown messages."""

from __future__ import annotations

from services.notifier.channels._http import HttpChannel, json_body, robot_errcode, truncate_utf8
from services.notifier.channels.base import OutboundMessage

# WeCom refuses markdown content over 4096 bytes; a cut digest beats a refused one.
MAX_CONTENT_BYTES = 4096
TRUNCATED_MARKER = "\n\n……（内容过长，其余事项请登录督办系统查看）"
# -1: system busy; 45009: rate limit; 45033: too many concurrent calls.
TRANSIENT_ERRCODES = frozenset({-1, 45009, 45033})


def wecom_payload(message: OutboundMessage) -> dict[str, object]:
    """The robot's markdown message body."""
    content = truncate_utf8(message.markdown, MAX_CONTENT_BYTES, TRUNCATED_MARKER)
    return {"msgtype": "markdown", "markdown": {"content": content}}


class WeComChannel(HttpChannel):
    """Posts markdown to a WeCom group robot at `message.address` (the robot's send URL)."""

    def attempt(self, message: OutboundMessage) -> int:
        """One POST; HTTP 200 with errcode 0 is the only success."""
        body = json_body(wecom_payload(message))
        response = self._poster.post(
            message.address, body, {"Content-Type": "application/json; charset=utf-8"}
        )
        robot_errcode(response, TRANSIENT_ERRCODES, "WeCom")
        return response.status_code
