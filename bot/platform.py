"""The port every chat platform implements so that the delivery worker can send through it."""

from __future__ import annotations

from typing import Protocol

from handlers.ui import Card


class DeliveryError(Exception):
    """Sending failed. `permanent` failures are not retried; `retry_after` (seconds) is the
    platform's own request to wait (HTTP 429 `Retry-After`)."""

    def __init__(self, reason: str, *, permanent: bool = False, retry_after: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent
        self.retry_after = retry_after


class Platform(Protocol):
    """Sends cards to channels and people on one chat platform.

    `delivery_id` is the outbox row being delivered: stable across retries of the same
    message, so a platform may use it to recognise a repeat.
    """

    name: str

    async def send(self, address: str, card: Card, *, delivery_id: int) -> str:
        """Post `card` to the channel `address`; returns the platform's message reference."""
        ...

    async def update(self, address: str, message_ref: str, card: Card, *, delivery_id: int) -> None:
        """Replace the message `message_ref` in `address` with `card`."""
        ...

    async def send_direct(self, user_id: str, card: Card, *, delivery_id: int) -> str:
        """Send `card` to one person privately; returns the message reference."""
        ...
