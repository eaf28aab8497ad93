"""The delivery worker: drains the outbox through the platforms, retrying what failed, losing nothing."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bot.platform import DeliveryError, Platform
from handlers import messages
from handlers.context import utcnow
from handlers.ui import Card
from storage import outbox
from storage.database import Database
from storage.models import Outbox

log = logging.getLogger(__name__)


@dataclass
class DeliveryWorker:
    """Sends due outbox rows, oldest first, through the platform each row names.

    A row is claimed (pending -> sending) before it is sent and settled after; a worker
    that dies in between leaves it "sending", and after `lease` any worker hands it back,
    so a crash delays a message and at most repeats the one in flight.
    """

    db: Database
    platforms: Mapping[str, Platform]
    clock: Callable[[], datetime] = utcnow
    batch: int = 50
    lease: timedelta = timedelta(minutes=2)
    max_attempts: int = 12  # transient failures; a 429 is retried for as long as it takes
    max_backoff: float = 3600.0
    sent: int = field(default=0, init=False)

    async def run_once(self) -> int:
        """Send one batch of due rows; returns how many rows were settled."""
        if not self.platforms:
            return 0
        now = self.clock()
        claimed = await asyncio.to_thread(self._claim, now)
        for row in claimed:
            await self._deliver(row)
        return len(claimed)

    async def drain(self, *, max_rounds: int = 1000) -> int:
        """Send until nothing is due right now (the console and tests use this)."""
        total = 0
        for _ in range(max_rounds):
            done = await self.run_once()
            total += done
            if done == 0:
                break
        return total

    async def run_forever(self, stop: asyncio.Event, *, interval: float = 1.0) -> None:
        while not stop.is_set():
            try:
                done = await self.run_once()
            except Exception:
                log.exception("delivery round failed; retrying")
                done = 0
            if done == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=interval)

    def _claim(self, now: datetime) -> list[outbox.Claimed]:
        with self.db.session() as session:
            outbox.release_stale(session, now=now, lease=self.lease)
        with self.db.session() as session:
            return outbox.claim_due(session, platforms=list(self.platforms), now=now, limit=self.batch)

    async def _deliver(self, row: outbox.Claimed) -> None:
        platform = self.platforms[row.platform]
        card = Card.from_dict(row.card)
        try:
            if row.kind == outbox.UPDATE:
                assert row.message_ref is not None
                await platform.update(row.address, row.message_ref, card, delivery_id=row.id)
                ref: str | None = row.message_ref
            elif row.kind == outbox.DIRECT:
                ref = await platform.send_direct(row.address, card, delivery_id=row.id)
            else:
                ref = await platform.send(row.address, card, delivery_id=row.id)
        except DeliveryError as error:
            await asyncio.to_thread(self._settle_failure, row, error)
            return
        except Exception as error:  # a bug or an unexpected client error: retry, and say so
            log.exception("delivery %s to %s failed unexpectedly", row.id, row.platform)
            await asyncio.to_thread(self._settle_failure, row, DeliveryError(type(error).__name__))
            return
        await asyncio.to_thread(self._settle_success, row, ref)

    def _settle_success(self, row: outbox.Claimed, ref: str | None) -> None:
        with self.db.session() as session:
            outbox.mark_sent(session, row, message_ref=ref, now=self.clock())
        self.sent += 1

    def _settle_failure(self, row: outbox.Claimed, error: DeliveryError) -> None:
        now = self.clock()
        with self.db.session() as session:
            if error.permanent:
                log.warning("delivery %s to %s failed: %s", row.id, row.platform, error.reason)
                outbox.mark_failed(session, row, error=error.reason, now=now)
                failed = session.get(Outbox, row.id)
                if failed is not None:
                    messages.report_failure(session, failed, error.reason, now=now)
            elif error.retry_after is not None:
                due = now + timedelta(seconds=max(error.retry_after, 0.0))
                outbox.mark_retry(session, row, error=f"rate limited: {error.reason}", due_at=due)
            elif row.attempts + 1 >= self.max_attempts:
                log.warning("delivery %s to %s gave up: %s", row.id, row.platform, error.reason)
                outbox.mark_failed(
                    session,
                    row,
                    error=f"gave up after {row.attempts + 1} attempts: {error.reason}",
                    now=now,
                )
            else:
                outbox.mark_retry(session, row, error=error.reason, due_at=now + self.backoff(row.attempts))

    def backoff(self, attempts: int) -> timedelta:
        """Exponential, with jitter so that many failed rows do not retry in step."""
        base = min(2.0**attempts, self.max_backoff)
        return timedelta(seconds=base * random.uniform(0.5, 1.0))
