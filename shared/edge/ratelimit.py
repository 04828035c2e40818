"""Per-key rate limits with the `limits` library: in this process, or shared through Redis.

`DUBAN_RATE_LIMIT_STORAGE` names the storage: `memory://` (the default) counts in this
process only, so each replica has its own budget; `redis://host:6379/0` counts in Redis,
so every replica of a service spends one budget per key.

The limit is a moving window: at most `burst` requests in any `burst / rate` seconds, so a
key may send `burst` at once and `rate` a minute on average.
"""

from __future__ import annotations

import math
import time

import structlog
from limits import RateLimitItem, RateLimitItemPerSecond
from limits.errors import StorageError
from limits.storage import Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

log = structlog.get_logger(__name__)

MEMORY = "memory://"
KEY_PREFIX = "duban-rate"


def window_item(*, per_minute: float, burst: int) -> RateLimitItem:
    """`burst` requests per window, the window sized so the average is `per_minute`."""
    seconds = max(1, math.ceil(burst * 60.0 / per_minute))
    return RateLimitItemPerSecond(burst, seconds)


class RateLimit:
    """Counts requests per API key in one service's namespace; `acquire` spends one."""

    def __init__(
        self,
        *,
        per_minute: float,
        burst: int,
        namespace: str,
        storage_uri: str = MEMORY,
        key_prefix: str = KEY_PREFIX,
    ) -> None:
        self.enabled = per_minute > 0
        self.namespace = namespace
        self.item = window_item(per_minute=per_minute or 1.0, burst=max(1, burst))
        options: dict[str, str | bool] = {"wrap_exceptions": True}
        if not storage_uri.startswith("memory://"):
            options["key_prefix"] = key_prefix
        storage = storage_from_string(storage_uri, **options)
        if not isinstance(storage, Storage):
            raise ValueError(f"not a synchronous rate-limit storage: {storage_uri}")
        self.storage = storage
        self.strategy = MovingWindowRateLimiter(self.storage)

    def acquire(self, key: str) -> float | None:
        """Spend one request of `key`'s budget: None if granted, else seconds to wait.

        A storage that does not answer (Redis down) lets the request through and says so
        in the log: the limit protects the service, it must not take it down.
        """
        if not self.enabled:
            return None
        try:
            if self.strategy.hit(self.item, self.namespace, key):
                return None
            reset_at, _remaining = self.strategy.get_window_stats(self.item, self.namespace, key)
        except StorageError as exc:
            log.warning("ratelimit.storage_unavailable", error=repr(exc.storage_error))
            return None
        return max(1.0, reset_at - time.time())

    def clear(self, key: str) -> None:
        """Forget `key`'s spent budget."""
        self.strategy.clear(self.item, self.namespace, key)

    def reset(self) -> None:
        """Forget every key's spent budget (this storage's keys only)."""
        self.storage.reset()
