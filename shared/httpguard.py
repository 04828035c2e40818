"""HTTP defences every API shares: body limits, strict JSON, safe error bodies.

`RequestGuard` sits in front of the app. It refuses a body over its limit before reading it
into memory, and holds a JSON body to RFC 8259: UTF-8 only (so invalid and over-long byte
sequences are refused), no NaN or Infinity, no lone surrogates, bounded nesting. What it
refuses gets the same 413/422 JSON bodies FastAPI gives, naming the body and the reason.
`shared.edge` installs it, with the rest of the edge, in every service's app.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_JSON_DEPTH = 32


# --- documented error bodies -------------------------------------------------------------


class FieldProblem(BaseModel):
    """One thing wrong with the request: where (`loc`), what (`msg`), which rule (`type`)."""

    loc: list[str | int]
    msg: str
    type: str
    ctx: dict[str, Any] | None = None


class RuleProblem(BaseModel):
    """A rule refused the request: `code` names the rule."""

    code: str
    message: str


class FieldMessage(BaseModel):
    """A whole field is unusable (an uploaded file, say): which, and why."""

    field: str
    message: str


class ErrorBody(BaseModel):
    """Every error answer: a `detail` naming the field or rule and the reason."""

    detail: str | RuleProblem | FieldMessage | list[FieldProblem] = Field(
        description="原因：字符串、规则 {code, message}、字段 {field, message}，或字段错误列表"
    )


ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "请求无法解析",
    401: "未认证：缺少、无效、已吊销或已过期的 API 密钥",
    403: "无权执行该操作（detail 指明规则）",
    404: "对象不存在或无权查看（二者不作区分）",
    409: "当前状态不允许（detail 指明规则）",
    413: "请求体过大",
    422: "参数不合法（detail 指明字段与原因）",
    429: "请求过于频繁，请按 Retry-After 秒后重试",
    503: "暂不可用，请按 Retry-After 秒后重试",
}

_RETRY_AFTER = {"Retry-After": {"description": "重试前等待的秒数", "schema": {"type": "integer"}}}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries for these error statuses, all with `ErrorBody`."""
    responses: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        entry: dict[str, Any] = {"model": ErrorBody, "description": ERROR_DESCRIPTIONS[code]}
        if code in (429, 503):
            entry["headers"] = _RETRY_AFTER
        responses[code] = entry
    return responses


# --- request guard -----------------------------------------------------------------------


def _problem(code: int, detail: Any, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=code, headers=headers)


def _is_json(scope: Scope) -> bool:
    # FastAPI parses a body as JSON when the type is missing, application/json or */*+json.
    content_type: bytes | None = dict(scope["headers"]).get(b"content-type")
    if content_type is None:
        return True
    main = content_type.split(b";", 1)[0].strip().lower()
    return main == b"application/json" or (
        main.startswith(b"application/") and main.endswith(b"+json")
    )


class _Refused(Exception):
    def __init__(self, response: JSONResponse) -> None:
        self.response = response


def _reject_constant(name: str) -> Any:
    raise ValueError(f"JSON 不允许 {name} (not valid JSON)")


def _walk(value: Any, loc: list[str | int], depth: int) -> None:
    if depth > MAX_JSON_DEPTH:
        raise _Refused(
            _problem(
                422,
                [
                    {
                        "type": "json_invalid",
                        "loc": ["body"],
                        "msg": f"JSON 嵌套超过 {MAX_JSON_DEPTH} 层 (nested too deeply)",
                    }
                ],
            )
        )
    if isinstance(value, str):
        if any(0xD800 <= ord(c) <= 0xDFFF for c in value):
            raise _Refused(
                _problem(
                    422,
                    [
                        {
                            "type": "string_unicode",
                            "loc": ["body", *loc],
                            "msg": "含孤立代理项，不是有效的 Unicode (lone surrogate)",
                        }
                    ],
                )
            )
    elif isinstance(value, dict):
        for key, item in value.items():
            _walk(key, loc, depth + 1)
            _walk(item, [*loc, key], depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _walk(item, [*loc, index], depth + 1)


def check_json_body(body: bytes) -> JSONResponse | None:
    """A 422 answer if `body` is not strict JSON; None to let the app parse it."""
    if not body:
        return None
    try:
        text = body.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        return _problem(
            422,
            [
                {
                    "type": "utf8_invalid",
                    "loc": ["body"],
                    "msg": f"请求体不是有效的 UTF-8，第 {exc.start} 字节起 "
                    f"(invalid UTF-8 at byte {exc.start})",
                }
            ],
        )
    try:
        parsed = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError:
        return None  # FastAPI reports the position itself
    except (ValueError, RecursionError) as exc:
        reason = str(exc) if isinstance(exc, ValueError) else "nested too deeply"
        return _problem(
            422,
            [{"type": "json_invalid", "loc": ["body"], "msg": f"JSON 无法解析 ({reason[:200]})"}],
        )
    try:
        _walk(parsed, [], 0)
    except _Refused as refused:
        return refused.response
    return None


class RequestGuard:
    """ASGI middleware: body size limits and strict JSON, before the app reads anything."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        larger: Iterable[tuple[str, int]] = (),
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.larger = tuple(larger)

    def _limit(self, path: str) -> int:
        for prefix, limit in self.larger:
            if path.startswith(prefix):
                return limit
        return self.max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit(scope["path"])
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._too_large(limit, scope, send)
            return
        if scope["method"] in ("POST", "PUT", "PATCH") and _is_json(scope):
            await self._buffered(scope, receive, send, limit)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await self._too_large(limit, scope, send)

    async def _buffered(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await self._too_large(limit, scope, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        refused = check_json_body(body)
        if refused is not None:
            await refused(scope, _disconnected, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, limit: int, scope: Scope, send: Send) -> None:
        response = _problem(413, f"请求体过大，上限 {limit} 字节 (body too large)")
        await response(scope, _disconnected, send)


class _TooLarge(Exception):
    pass


async def _disconnected() -> Message:
    return {"type": "http.disconnect"}


# --- safe error bodies and headers -------------------------------------------------------


def _json_safe(value: Any, depth: int = 0) -> Any:
    if depth > 4:
        return None
    if isinstance(value, str):
        # Lone surrogates would make the error answer itself unencodable.
        return value.encode("utf-8", "backslashreplace").decode("utf-8")[:200]
    if isinstance(value, bool | int) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, list | tuple):
        return [_json_safe(v, depth + 1) for v in value[:20]]
    if isinstance(value, dict):
        return {str(_json_safe(k)): _json_safe(v, depth + 1) for k, v in list(value.items())[:20]}
    return _json_safe(str(value), depth + 1)


def validation_problems(errors: Iterable[Any]) -> list[dict[str, Any]]:
    """Pydantic errors as `FieldProblem`s, without echoing the input back."""
    problems = []
    for error in list(errors)[:50]:
        problem: dict[str, Any] = {
            "type": _json_safe(error.get("type", "value_error")),
            "loc": [_json_safe(part) for part in error.get("loc", ())],
            "msg": _json_safe(error.get("msg", "")),
        }
        ctx = error.get("ctx")
        if ctx:
            problem["ctx"] = {k: _json_safe(v) for k, v in ctx.items() if k != "error"}
        problems.append(problem)
    return problems


def retry_after_header(wait: float) -> dict[str, str]:
    """The Retry-After header for a wait in seconds (whole seconds, at least one)."""
    return {"Retry-After": str(max(1, math.ceil(wait)))}
