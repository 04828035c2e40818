"""Shared HTTP plumbing for the webhook and group-robot channels."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, Self

import httpx

from services.notifier.channels.base import (
    DeliveryResult,
    OutboundMessage,
    PermanentDeliveryError,
    TransientDeliveryError,
    classify_http_status,
)
from services.notifier.channels.retry import RetryPolicy, send_with_retries

USER_AGENT = "duban-notifier/0.1"


class HttpPoster:
    """Owns an httpx client; turns transport failures into Transient/Permanent errors."""

    def __init__(self, *, timeout: float, client: httpx.Client | None = None) -> None:
        self._owns_client = client is None
        # Redirects are not followed: a signed body must not be replayed to another host.
        self._client = client or httpx.Client(
            timeout=httpx.Timeout(timeout), follow_redirects=False
        )

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> httpx.Response:
        """POST once; raise TransientDeliveryError or PermanentDeliveryError on failure."""
        if not url:
            raise PermanentDeliveryError("no destination URL")
        try:
            response = self._client.post(
                url, content=body, headers={"User-Agent": USER_AGENT, **headers}
            )
        except httpx.TimeoutException as exc:
            raise TransientDeliveryError(f"timed out: {type(exc).__name__}") from exc
        except (httpx.NetworkError, httpx.RemoteProtocolError, httpx.ProxyError) as exc:
            raise TransientDeliveryError(f"connection failed: {exc!r}") from exc
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            raise PermanentDeliveryError(f"bad URL: {exc}") from exc
        except httpx.HTTPError as exc:
            raise PermanentDeliveryError(f"HTTP failure: {exc!r}") from exc
        classify_http_status(response.status_code, response.text)
        return response

    def close(self) -> None:
        """Close the client if this poster created it."""
        if self._owns_client:
            self._client.close()


def json_body(payload: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON; the exact bytes are what gets signed."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def robot_errcode(response: httpx.Response, transient_codes: frozenset[int], robot: str) -> None:
    """Check a WeCom/DingTalk robot answer: HTTP 200 with errcode 0 is the only success."""
    try:
        answer = response.json()
    except ValueError as exc:
        raise PermanentDeliveryError(
            f"{robot} answered something that is not JSON: {response.text[:200]}",
            response.status_code,
        ) from exc
    if not isinstance(answer, dict) or "errcode" not in answer:
        raise PermanentDeliveryError(
            f"{robot} answer has no errcode: {answer!r}"[:300], response.status_code
        )
    errcode = answer["errcode"]
    if errcode == 0:
        return
    detail = f"{robot} errcode {errcode}: {answer.get('errmsg', '')}"
    if errcode in transient_codes:
        raise TransientDeliveryError(detail, response.status_code)
    raise PermanentDeliveryError(detail, response.status_code)


def truncate_utf8(text: str, max_bytes: int, marker: str) -> str:
    """Cut text to fit a byte limit on a character boundary, ending with `marker`."""
    if len(text.encode("utf-8")) <= max_bytes:
        return text
    budget = max_bytes - len(marker.encode("utf-8"))
    cut = text.encode("utf-8")[: max(budget, 0)].decode("utf-8", errors="ignore")
    return cut + marker


class HttpChannel:
    """Base for HTTP channels: one attempt in `attempt`, retries and cleanup here.

    `clock` (seconds since the epoch) is for channels that sign or stamp their requests.
    """

    def __init__(
        self,
        *,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        client: httpx.Client | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._poster = HttpPoster(timeout=timeout, client=client)
        self._retry = retry or RetryPolicy()
        self._clock = clock

    def attempt(self, message: OutboundMessage) -> int:
        """One delivery attempt; raises a DeliveryError on failure."""
        raise NotImplementedError

    def send(self, message: OutboundMessage) -> DeliveryResult:
        """Deliver with retries; failures come back as a result, not an exception."""
        return send_with_retries(self.attempt, message, self._retry)

    def close(self) -> None:
        """Release the HTTP connection pool."""
        self._poster.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
