"""The one error the notifier's use cases raise for a request that broke a rule."""

from __future__ import annotations


class Refused(Exception):
    """A request broke a rule; `code` names the rule and `field` the input at fault."""

    def __init__(
        self, code: str, message_zh: str, http_status: int, *, field: str | None = None
    ) -> None:
        super().__init__(f"{code}: {message_zh}")
        self.code = code
        self.message_zh = message_zh
        self.http_status = http_status
        self.field = field

    def to_body(self) -> dict[str, str]:
        """JSON body for the HTTP error response."""
        body = {"code": self.code, "message": self.message_zh}
        if self.field is not None:
            body["field"] = self.field
        return body
