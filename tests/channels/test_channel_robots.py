"""WeCom and DingTalk group robots against a local server that checks what they send."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable

from services.notifier.channels.base import OutboundMessage
from services.notifier.channels.dingtalk import DingTalkChannel
from services.notifier.channels.retry import RetryPolicy
from services.notifier.channels.wecom import MAX_CONTENT_BYTES, WeComChannel

from ._servers import LocalHttpServer, Reply, Responder, SeenRequest

FAST = RetryPolicy(max_attempts=3, initial_wait=0.01, max_wait=0.05, jitter=0.01)
MARKDOWN = (
    "### 【督办】1 项重点工作已逾期\n\n**1. 推进老旧小区改造**\n\n- 当前状态：**红灯**，已逾期 5 天"
)
SUBJECT = "【督办】1 项重点工作已逾期，请于7月7日前报送进展"
DING_SECRET = "SEC0123456789abcdef"
NOW = 1_656_640_000.123


def message(url: str, *, secret: str | None = None, markdown: str = MARKDOWN) -> OutboundMessage:
    return OutboundMessage(
        notification_id="n-1",
        recipient="市住房城乡建设委",
        subject=SUBJECT,
        text="正文",
        markdown=markdown,
        html="<p>正文</p>",
        address=url,
        secret=secret,
    )


def fixed(at: float) -> Callable[[], float]:
    return lambda: at


def errcode(code: int, msg: str = "ok") -> Reply:
    return Reply(200, json.dumps({"errcode": code, "errmsg": msg}).encode())


def wecom_checker(seen: SeenRequest, index: int) -> Reply:
    """Answers like WeCom: errcode 0 only for a well-formed markdown message."""
    if seen.query.get("key") != ["robot-key"]:
        return errcode(93000, "invalid webhook url")
    try:
        body = json.loads(seen.body.decode("utf-8"))
    except ValueError:
        return errcode(44004, "invalid json")
    content = body.get("markdown", {}).get("content")
    if body.get("msgtype") != "markdown" or not isinstance(content, str):
        return errcode(40008, "invalid message type")
    if len(content.encode("utf-8")) > MAX_CONTENT_BYTES:
        return errcode(40058, "content exceed max length")
    return errcode(0)


def test_wecom_markdown(http_server: Callable[[Responder], LocalHttpServer]) -> None:
    server = http_server(wecom_checker)
    with WeComChannel(timeout=2.0, retry=FAST) as channel:
        result = channel.send(message(server.url + "/cgi-bin/webhook/send?key=robot-key"))
    assert result.ok, result.error
    [seen] = server.requests
    assert json.loads(seen.body) == {"msgtype": "markdown", "markdown": {"content": MARKDOWN}}


def test_wecom_errcode_is_a_failure(http_server: Callable[[Responder], LocalHttpServer]) -> None:
    server = http_server(wecom_checker)
    with WeComChannel(timeout=2.0, retry=FAST) as channel:
        result = channel.send(message(server.url + "/cgi-bin/webhook/send?key=wrong"))
    assert not result.ok
    assert result.attempts == 1  # a wrong key will not fix itself
    assert "93000" in str(result.error)


def test_wecom_rate_limit_is_retried(http_server: Callable[[Responder], LocalHttpServer]) -> None:
    def limited(seen: SeenRequest, index: int) -> Reply:
        return errcode(45009, "api freq out of limit") if index == 0 else wecom_checker(seen, index)

    server = http_server(limited)
    with WeComChannel(timeout=2.0, retry=FAST) as channel:
        result = channel.send(message(server.url + "/send?key=robot-key"))
    assert result.ok and result.attempts == 2


def test_wecom_long_digest_is_cut_to_fit(
    http_server: Callable[[Responder], LocalHttpServer],
) -> None:
    server = http_server(wecom_checker)
    long_markdown = MARKDOWN + "\n\n" + "- 推进老旧小区改造，已逾期 5 天\n" * 400
    with WeComChannel(timeout=2.0, retry=FAST) as channel:
        result = channel.send(message(server.url + "/send?key=robot-key", markdown=long_markdown))
    assert result.ok, result.error
    content = json.loads(server.requests[0].body)["markdown"]["content"]
    assert len(content.encode("utf-8")) <= MAX_CONTENT_BYTES
    assert content.endswith("请登录督办系统查看）")


def test_wecom_non_json_answer_is_a_failure(
    http_server: Callable[[Responder], LocalHttpServer],
) -> None:
    server = http_server(lambda seen, index: Reply(200, b"<html>proxy</html>", "text/html"))
    with WeComChannel(timeout=2.0, retry=FAST) as channel:
        result = channel.send(message(server.url + "/send?key=robot-key"))
    assert not result.ok
    assert "not JSON" in str(result.error)


def dingtalk_checker(secret: str) -> Responder:
    """Answers like DingTalk: verifies timestamp+sign and the markdown body."""

    def check(seen: SeenRequest, index: int) -> Reply:
        if seen.query.get("access_token") != ["tok"]:
            return errcode(300001, "token is not exist")
        timestamp = seen.query.get("timestamp", [""])[0]
        sign = seen.query.get("sign", [""])[0]  # parse_qs has already URL-decoded it
        string_to_sign = f"{timestamp}\n{secret}".encode()
        expected = base64.b64encode(
            hmac.new(secret.encode(), string_to_sign, hashlib.sha256).digest()
        ).decode()
        if not timestamp or not hmac.compare_digest(sign, expected):
            return errcode(310000, "sign not match")
        body = json.loads(seen.body.decode("utf-8"))
        markdown = body.get("markdown", {})
        if (
            body.get("msgtype") != "markdown"
            or not markdown.get("title")
            or not markdown.get("text")
        ):
            return errcode(40035, "missing markdown title or text")
        return errcode(0)

    return check


def test_dingtalk_signed_markdown(http_server: Callable[[Responder], LocalHttpServer]) -> None:
    server = http_server(dingtalk_checker(DING_SECRET))
    with DingTalkChannel(timeout=2.0, retry=FAST, clock=lambda: NOW) as channel:
        result = channel.send(
            message(server.url + "/robot/send?access_token=tok", secret=DING_SECRET)
        )
    assert result.ok, result.error
    [seen] = server.requests
    assert seen.query["timestamp"] == ["1656640000123"]  # milliseconds
    body = json.loads(seen.body)
    assert body == {"msgtype": "markdown", "markdown": {"title": SUBJECT, "text": MARKDOWN}}


def test_dingtalk_sign_is_url_encoded_on_the_wire(
    http_server: Callable[[Responder], LocalHttpServer],
) -> None:
    server = http_server(dingtalk_checker(DING_SECRET))
    # Several timestamps, so that some signatures contain '+', '/' or '='.
    for offset in range(12):
        with DingTalkChannel(timeout=2.0, retry=FAST, clock=fixed(NOW + offset)) as channel:
            result = channel.send(
                message(server.url + "/robot/send?access_token=tok", secret=DING_SECRET)
            )
        assert result.ok, result.error
    raw_signs = [
        part.split("=", 1)[1]
        for seen in server.requests
        for part in seen.raw_query.split("&")
        if part.startswith("sign=")
    ]
    assert len(raw_signs) == 12
    assert all(not set(raw) & set("+/=") for raw in raw_signs)
    assert any("%" in raw for raw in raw_signs)


def test_dingtalk_wrong_secret_is_a_failure(
    http_server: Callable[[Responder], LocalHttpServer],
) -> None:
    server = http_server(dingtalk_checker(DING_SECRET))
    with DingTalkChannel(timeout=2.0, retry=FAST, clock=lambda: NOW) as channel:
        result = channel.send(
            message(server.url + "/robot/send?access_token=tok", secret="SECwrong")
        )
    assert not result.ok
    assert result.attempts == 1
    assert "310000" in str(result.error)


def test_dingtalk_busy_is_retried(http_server: Callable[[Responder], LocalHttpServer]) -> None:
    checker = dingtalk_checker(DING_SECRET)
    server = http_server(
        lambda seen, index: errcode(-1, "系统繁忙") if index < 2 else checker(seen, index)
    )
    with DingTalkChannel(timeout=2.0, retry=FAST, clock=lambda: NOW) as channel:
        result = channel.send(
            message(server.url + "/robot/send?access_token=tok", secret=DING_SECRET)
        )
    assert result.ok and result.attempts == 3


def test_dingtalk_http_error_is_retried_then_fails(
    http_server: Callable[[Responder], LocalHttpServer],
) -> None:
    server = http_server(lambda seen, index: Reply(502, b"bad gateway", "text/plain"))
    with DingTalkChannel(timeout=2.0, retry=FAST) as channel:
        result = channel.send(message(server.url + "/robot/send?access_token=tok"))
    assert not result.ok
    assert (result.attempts, result.status_code) == (3, 502)
