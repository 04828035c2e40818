"""Pure ASGI middleware of the edge: security headers, request counts and load shedding.

Pure ASGI rather than `BaseHTTPMiddleware`: no second task and no re-buffered body per
request, and streaming answers stay streaming.
"""

from __future__ import annotations

from collections.abc import Collection

from prometheus_client import Counter
from starlette.datastructures import MutableHeaders
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared import metrics
from shared.httpguard import retry_after_header

API_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
}


class SecurityHeaders:
    """Adds `API_HEADERS` to every answer under `prefix` that does not set them itself."""

    def __init__(self, app: ASGIApp, *, prefix: str = "/v1/") -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in API_HEADERS.items():
                    if name not in headers:
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


class RequestCounter:
    """Counts answers by route template (not the raw path) and status."""

    def __init__(self, app: ASGIApp, *, requests: Counter) -> None:
        self.app = app
        self.requests = requests

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def send_counted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_counted)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.requests.labels(route, str(status)).inc()


BUSY = "服务繁忙，请稍后重试 (too many requests in flight)"


class LoadShedder:
    """At most `limit` requests in flight in this process; past it, 503 with Retry-After.

    A refused request costs nothing but this answer: it reaches no route, no database and
    no audit record, so a saturated service keeps serving what it admitted instead of
    making everyone wait. The ops routes (`exempt`) are never refused, so readiness and
    metrics answer under any load. One process is one event loop: a plain count is exact.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        limit: int,
        retry_after: int,
        service: str,
        exempt: Collection[str] = (),
    ) -> None:
        self.app = app
        self.limit = limit
        self.exempt = frozenset(exempt)
        self.in_flight = 0
        self.gauge = metrics.HTTP_IN_FLIGHT.labels(service)
        self.shed = metrics.HTTP_SHED.labels(service, "in_flight")
        self.retry_after = retry_after

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            self.shed.inc()
            refusal = JSONResponse(
                {"detail": BUSY}, status_code=503, headers=retry_after_header(self.retry_after)
            )
            await refusal(scope, receive, send)
            return
        self.in_flight += 1
        self.gauge.inc()
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
            self.gauge.dec()
