"""Retries with exponential backoff and jitter, then a failed-delivery outcome."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from services.notifier.channels.base import (
    DeliveryResult,
    OutboundMessage,
    PermanentDeliveryError,
    TransientDeliveryError,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try: attempts, and the backoff between them in seconds.

    The n-th wait is `initial_wait * exp_base ** (n - 1)` plus up to `jitter`, capped at
    `max_wait`; jitter keeps many notifiers from retrying a recovering receiver in step.
    """

    max_attempts: int = 5
    initial_wait: float = 1.0
    max_wait: float = 60.0
    exp_base: float = 2.0
    jitter: float = 1.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.initial_wait < 0 or self.max_wait < 0 or self.jitter < 0:
            raise ValueError("waits must not be negative")

    def longest_waits(self) -> float:
        """The most one send can spend sleeping between its attempts (jitter at its maximum)."""
        return sum(
            min(self.initial_wait * self.exp_base ** (n - 1) + self.jitter, self.max_wait)
            for n in range(1, self.max_attempts)
        )


Attempt = Callable[[OutboundMessage], int | None]


def _log_retry(state: RetryCallState) -> None:
    outcome = state.outcome
    error = outcome.exception() if outcome is not None else None
    wait = state.next_action.sleep if state.next_action is not None else 0.0
    log.warning(
        "delivery attempt %d failed, retrying in %.2fs: %s", state.attempt_number, wait, error
    )


def send_with_retries(
    attempt: Attempt,
    message: OutboundMessage,
    retry: RetryPolicy,
    sleep: Callable[[float], None] = time.sleep,
) -> DeliveryResult:
    """Call `attempt` until it succeeds, fails permanently, or runs out of attempts."""
    attempts = 0

    def once() -> int | None:
        nonlocal attempts
        attempts += 1
        return attempt(message)

    retrying = Retrying(
        stop=stop_after_attempt(retry.max_attempts),
        wait=wait_exponential_jitter(
            multiplier=retry.initial_wait,
            max=retry.max_wait,
            exp_base=retry.exp_base,
            jitter=retry.jitter,
        ),
        retry=retry_if_exception_type(TransientDeliveryError),
        before_sleep=_log_retry,
        sleep=sleep,
        reraise=True,
    )
    try:
        status_code = retrying(once)
    except TransientDeliveryError as exc:
        return DeliveryResult(
            ok=False,
            attempts=attempts,
            status_code=exc.status_code,
            error=f"gave up after {attempts} attempts: {exc}",
            retryable=True,
        )
    except PermanentDeliveryError as exc:
        return DeliveryResult(
            ok=False, attempts=attempts, status_code=exc.status_code, error=str(exc)
        )
    return DeliveryResult(ok=True, attempts=attempts, status_code=status_code)
