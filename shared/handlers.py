"""The shape of every event consumer's message handler: decode, or set the message aside as
poison; apply it in one transaction; then the outcome for the consumer loop.

A service supplies how to decode its topic's events, how to open a unit of work, what to do
with an event inside it, and (optionally) what to do once it is committed.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any, Protocol, Self, TypeVar

from pydantic import ValidationError

from shared.events import UnsupportedEvent
from shared.kafka import MessagePosition, Outcome, PoisonMessage


class Transaction(Protocol):
    """A unit of work: `with uow: ...; uow.commit()`; anything not committed rolls back."""

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def commit(self) -> None: ...


E = TypeVar("E")
U = TypeVar("U", bound=Transaction)
R = TypeVar("R")

Handler = Callable[[Any], Outcome]


def transactional_handler(
    *,
    what: str,
    decode: Callable[[bytes], E],
    new_uow: Callable[[], U],
    apply: Callable[[U, E, MessagePosition], R],
    committed: Callable[[R], Outcome],
) -> Handler:
    """A handler that owns one transaction per message.

    `decode` raising (bad JSON, an unknown type or version, an invalid field) makes the
    message poison, named `undecodable {what}`; `apply` runs inside the transaction;
    `committed` runs after the commit and gives the outcome.
    """

    def handle(message: Any) -> Outcome:
        try:
            event = decode(message.value)
        except (ValueError, ValidationError, UnsupportedEvent) as exc:
            raise PoisonMessage(f"undecodable {what}: {exc}") from exc
        position = MessagePosition.of(message)
        with new_uow() as uow:
            result = apply(uow, event, position)
            uow.commit()
        return committed(result)

    return handle
