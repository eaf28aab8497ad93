"""The delivery worker: drains the outbox through the platforms, retrying what failed, losing nothing."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bot.metrics import Metrics
from bot.pacing import Pacer
from bot.platform import DeliveryError, Platform
from handlers import live, messages
from handlers.context import utcnow
from handlers.ui import Card
from storage import outbox
from storage.database import UNREACHABLE, Database
from storage.models import Outbox

log = logging.getLogger(__name__)
PROGRESS_EVERY = 1.0  # seconds between two refreshes of one broadcast's progress message
STOP_WAIT = 5.0  # seconds a stopping worker waits for its lanes to finish what they are sending
SETTLE_PAUSE_MAX = 10.0  # seconds, at most, between two tries to record a delivery while the database is away
# While the app's window has less room than the updates waiting, an update of a live card
# waits until the card stays the same this long (a crowd pressing has paused or ended), but no
# longer than UPDATE_HOLD_MAX: an update sent mid-burst would spend room that the update with
# the last count then waits a whole window for.
STILL = 1.0
UPDATE_HOLD_MAX = 20.0
QUIET = ("progress:", "failure:")  # messages about messages have no progress of their own


@dataclass(frozen=True)
class Drawing:
    """The card a row goes out with; `fresh` when drawn just now (what its post will show), and
    `shown` when its post shows that already."""

    card: Card
    fresh: dict[str, Any] | None = None
    shown: bool = False


@dataclass(frozen=True)
class Retry:
    """A row to try again in `seconds`; `asked` when the platform said so (a 429's Retry-After)."""

    seconds: float
    asked: bool


@dataclass
class DeliveryWorker:
    """Sends due outbox rows through the platform each row names, many at once, each platform
    at its own pace.

    Rows to one conversation (a channel, or one person) form a lane and go out in order, one
    at a time, paced by that conversation's limits; lanes run side by side within the app's
    limits and `concurrency`. A row is claimed (pending -> sending) before it is sent and
    settled after; a worker that dies in between leaves it "sending", and after `lease` any
    worker hands it back, so a crash delays a message and at most repeats those in flight.
    """

    db: Database
    platforms: Mapping[str, Platform]
    clock: Callable[[], datetime] = utcnow
    batch: int = 200
    lease: timedelta = timedelta(minutes=2)
    max_attempts: int = 12  # transient failures; a 429 is retried for as long as it takes
    max_backoff: float = 3600.0
    pacer: Pacer | None = None  # None: as fast as the platforms answer (the console, most tests)
    concurrency: int = 32
    metrics: Metrics | None = None
    sent: int = field(default=0, init=False)
    _queues: dict[tuple[str, str], deque[outbox.Claimed]] = field(default_factory=dict, init=False)
    _lanes: dict[tuple[str, str], asyncio.Task[None]] = field(default_factory=dict, init=False)
    _slots: asyncio.Semaphore | None = field(default=None, init=False)
    _holding: set[int] = field(default_factory=set, init=False)  # claimed and not yet settled
    _renewed: float = field(default=0.0, init=False)
    _progress: dict[str, float] = field(default_factory=dict, init=False)  # subject -> last shown
    _unshown: set[str] = field(default_factory=set, init=False)
    _claim_after: float = field(
        default=0.0, init=False
    )  # time.monotonic() of the next claim, after a failed one
    _claim_pause: float = field(default=0.0, init=False)
    _stopping: bool = field(default=False, init=False)
    _on_the_way: set[int] = field(default_factory=set, init=False)  # being sent right now
    # Conversations whose message waits for its retry, and until when: what a claim under way
    # when it failed took of them goes back to wait behind it.
    _retrying: dict[tuple[str, str], tuple[outbox.Claimed, Retry, datetime]] = field(
        default_factory=dict, init=False
    )
    # Live subjects being watched until their card holds still, and when each was last seen still.
    _watching: dict[str, asyncio.Task[None]] = field(default_factory=dict, init=False)
    _still_at: dict[str, float] = field(default_factory=dict, init=False)

    @property
    def busy(self) -> int:
        """Rows claimed and not yet settled."""
        return sum(len(q) for q in self._queues.values()) + len(self._lanes)

    async def run_once(self) -> int:
        """Claim one batch of due rows and send them all; returns how many rows were claimed."""
        if not self.platforms:
            return 0
        claimed = await self._claim_more(self.batch)
        await self._settled()
        return claimed

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
        """Keep the lanes fed: claim more whenever fewer than half a batch is on its way."""
        try:
            while not stop.is_set():
                claimed = 0
                if self.busy < self.batch // 2 and time.monotonic() >= self._claim_after:
                    try:
                        claimed = await self._claim_more(self.batch - self.busy)
                        self._claim_pause = 0.0
                    except UNREACHABLE as error:
                        # Waits doubling to 10 s: one line now and then, not one every 50 ms.
                        self._claim_pause = min(max(self._claim_pause * 2, 0.5), SETTLE_PAUSE_MAX)
                        self._claim_after = time.monotonic() + self._claim_pause
                        log.warning("deliveries wait for the database (%s)", type(error).__name__)
                    except Exception:
                        log.exception("claiming deliveries failed; retrying")
                if claimed == 0 and not self._lanes:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), timeout=interval)
                elif self._lanes:
                    await asyncio.wait(set(self._lanes.values()), timeout=0.05)
                await self._show_progress()
        finally:
            await self._stop()

    def stopping(self) -> bool:
        return self._stopping

    async def _stop(self) -> None:
        """Stopping: each lane finishes the message it is sending (a message half sent cannot be
        taken back) and takes no next one; what was claimed and not begun is handed back. A lane
        still waiting after STOP_WAIT (its pace, a Retry-After) is cancelled; only a message on
        its way then may go out again after the lease."""
        self._stopping = True
        if self._lanes:
            await asyncio.wait(set(self._lanes.values()), timeout=STOP_WAIT)
        for lane in list(self._lanes.values()):
            lane.cancel()
        if self._lanes:
            await asyncio.wait(set(self._lanes.values()), timeout=STOP_WAIT)
        left = sorted(self._holding - self._on_the_way)
        if left:
            try:
                await asyncio.to_thread(self._release, left)
                log.info("%d deliveries handed back for the next worker", len(left))
            except Exception as error:
                log.warning("could not hand %d deliveries back: %s", len(left), type(error).__name__)

    def _release(self, ids: list[int]) -> None:
        with self.db.session() as session:
            outbox.release(session, ids)

    async def _claim_more(self, limit: int) -> int:
        now = self.clock()
        if self._holding and time.monotonic() - self._renewed > self.lease.total_seconds() / 3:
            # Rows wait in their lanes; renew the claim on them well before it could lapse.
            self._renewed = time.monotonic()
            await asyncio.to_thread(self._renew, sorted(self._holding), now)
        claimed = await asyncio.to_thread(self._claim, now, limit, frozenset(self._holding))
        self._holding.update(row.id for row in claimed)
        # Past its retry's time the database's claim keeps the order again (and nothing stays).
        self._retrying = {key: waiting for key, waiting in self._retrying.items() if now < waiting[2]}
        late: dict[tuple[str, str], list[outbox.Claimed]] = {}
        for row in claimed:
            key = (row.platform, row.address)
            waiting = self._retrying.get(key)
            if waiting is not None and row.id == waiting[0].id:
                del self._retrying[key]  # taken again: what follows it goes behind it in its lane
            elif waiting is not None and row.id > waiting[0].id and row.kind != outbox.UPDATE:
                # Claimed while the one before it failed (the claim counted that one as this
                # worker's, on its way): sent now, it would overtake the retry.
                late.setdefault(key, []).append(row)
                continue
            self._queues.setdefault(key, deque()).append(row)
            if key not in self._lanes:
                self._lanes[key] = asyncio.create_task(self._lane(key))
        for key, rows in late.items():
            self._holding.difference_update(row.id for row in rows)
            failed, retry, _ = self._retrying[key]
            await asyncio.to_thread(self._hold_back, failed, rows, retry)
        return len(claimed)

    async def _settled(self) -> None:
        while self._lanes:
            await asyncio.gather(*list(self._lanes.values()), return_exceptions=True)
        await self._show_progress(force=True)

    async def _show_progress(self, *, force: bool = False) -> None:
        """Bring broadcasts' progress messages up to date, each at most once a second."""
        now = time.monotonic()
        due = {s for s in self._unshown if force or now - self._progress.get(s, 0.0) >= PROGRESS_EVERY}
        for subject in sorted(due):
            self._unshown.discard(subject)
            self._progress[subject] = now
            try:
                await asyncio.to_thread(self._progress_of, subject)
            except UNREACHABLE as error:
                self._unshown.add(subject)  # shown once the database is back
                log.warning("the progress of %s waits for the database (%s)", subject, type(error).__name__)
            except Exception:
                log.exception("showing the progress of %s failed", subject)

    def _progress_of(self, subject: str) -> None:
        with self.db.session() as session:
            messages.progress(session, subject, now=self.clock())

    def _renew(self, ids: list[int], now: datetime) -> None:
        with self.db.session() as session:
            outbox.renew(session, ids, now=now)

    def _claim(self, now: datetime, limit: int, mine: frozenset[int]) -> list[outbox.Claimed]:
        with self.db.session() as session:
            outbox.release_stale(session, now=now, lease=self.lease)
        with self.db.session() as session:
            return outbox.claim_due(session, platforms=list(self.platforms), now=now, limit=limit, mine=mine)

    async def _lane(self, key: tuple[str, str]) -> None:
        """One conversation's rows, in order; a 429 sends the rest back to wait as long as asked."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.concurrency)
        queue = self._queues[key]
        try:
            while queue and not self._stopping:
                row = queue[0]
                if self._carried(row, queue):
                    queue.popleft()
                    await asyncio.to_thread(self._mark_carried, row)
                    self._holding.discard(row.id)
                    continue
                if self.pacer is not None:
                    await self.pacer.ready(row.platform, row.address)
                    if self._short_for_updates(row):
                        await self._until_still(row.subject)
                        if self.stopping():
                            break
                async with self._slots:
                    if self.pacer is not None:
                        await self.pacer.wait_turn(row.platform, row.address)
                    outcome: str | DeliveryError | None = None
                    drawing = None
                    try:
                        if self.stopping():  # while it waited for its turn
                            break
                        queue.popleft()
                        self._on_the_way.add(row.id)
                        drawing = await self._card(row)
                        if not drawing.shown:
                            outcome = await self._send(row, drawing.card)
                    finally:
                        if self.pacer is not None:
                            if drawing is None or drawing.shown:  # nothing went: the turn is not spent
                                self.pacer.withdrawn(row.platform, row.address)
                            else:
                                self.pacer.answered(row.platform, row.address)
                assert drawing is not None
                # Settling is the database's part: it does not hold a sending slot.
                if drawing.shown:
                    await self._settle_shown(row)
                    waited = None
                else:
                    waited = await self._settle(row, outcome, drawing.fresh)
                if waited is not None:
                    self._retrying[key] = (row, waited, self.clock() + timedelta(seconds=waited.seconds))
                self._holding.discard(row.id)
                self._on_the_way.discard(row.id)
                if row.kind != outbox.UPDATE and row.subject and not row.subject.startswith(QUIET):
                    self._unshown.add(row.subject)
                if waited is not None:
                    # The rest of the conversation waits as long: sent now, they would overtake it.
                    if waited.asked and self.pacer is not None and (limiter := self.pacer.conversation(*key)):
                        limiter.hold(waited.seconds)
                    rest = list(queue)
                    queue.clear()
                    self._holding.difference_update(r.id for r in rest)
                    await asyncio.to_thread(self._hold_back, row, rest, waited)
        except UNREACHABLE as error:
            # The rows left in the lane are still claimed: sent after the lease, when the database is back.
            log.warning("delivery lane %s waits for the database (%s)", key, type(error).__name__)
        except Exception:
            log.exception("delivery lane %s failed", key)
        finally:
            if not self._stopping:  # stopping, what is left is handed back (_stop)
                self._holding.difference_update(r.id for r in self._queues.get(key, ()))
            self._queues.pop(key, None)
            self._lanes.pop(key, None)

    def _short_for_updates(self, row: outbox.Claimed) -> bool:
        """An update of a live card, while the app has less room than the updates waiting."""
        if self.pacer is None or row.kind != outbox.UPDATE or not live.is_live(row.subject):
            return False
        waiting = sum(
            1
            for (platform, _), queue in self._queues.items()
            if platform == row.platform
            for queued in queue
            if queued.kind == outbox.UPDATE
        )
        return self.pacer.short(row.platform, waiting)

    async def _until_still(self, subject: str) -> None:
        """Until `subject`'s card has held still for STILL seconds (one watch for all its posts),
        or UPDATE_HOLD_MAX has passed."""
        if time.monotonic() - self._still_at.get(subject, -STILL) < STILL:
            return
        watch = self._watching.get(subject)
        if watch is None:
            watch = self._watching[subject] = asyncio.create_task(self._watch(subject))
            watch.add_done_callback(lambda _: self._watching.pop(subject, None))
        await asyncio.shield(watch)

    async def _watch(self, subject: str) -> None:
        deadline = time.monotonic() + UPDATE_HOLD_MAX
        try:
            before = await asyncio.to_thread(self._drawn, subject)
            while time.monotonic() < deadline and not self._stopping:
                await asyncio.sleep(STILL)
                now = await asyncio.to_thread(self._drawn, subject)
                if now == before:
                    break
                before = now
        except Exception as error:  # unreachable, or a card that fails to draw: hold no longer
            log.info("could not watch %s: %s", subject, type(error).__name__)
        self._still_at[subject] = time.monotonic()
        if len(self._still_at) > 10_000:
            self._still_at.clear()

    def _drawn(self, subject: str) -> dict[str, Any] | None:
        with self.db.read() as session:
            card = live.current_card(session, subject)
            return None if card is None else card.to_dict()

    @staticmethod
    def _carried(row: outbox.Claimed, queue: deque[outbox.Claimed]) -> bool:
        """An update with a later update of the same post behind it in the lane: only the later
        one needs to go, since it is drawn when it is sent."""
        if row.kind != outbox.UPDATE or row.message_ref is None:
            return False
        return any(
            later.kind == outbox.UPDATE and later.message_ref == row.message_ref
            for later in itertools.islice(queue, 1, None)
        )

    def _mark_carried(self, row: outbox.Claimed) -> None:
        with self.db.session() as session:
            outbox.mark_carried(session, row.id, now=self.clock())

    def _hold_back(self, failed: outbox.Claimed, rest: list[outbox.Claimed], retry: Retry) -> None:
        with self.db.session() as session:
            outbox.hold_back(
                session,
                platform=failed.platform,
                address=failed.address,
                after_id=failed.id,
                held=[row.id for row in rest],
                until=self.clock() + timedelta(seconds=retry.seconds),
                reason="the conversation is rate limited" if retry.asked else "one before is tried again",
            )

    async def _card(self, row: outbox.Claimed) -> Drawing:
        """The card to send: drawn afresh for a live subject's posts and updates (a decision's
        count as it is now), else as queued. Never from a cache: the last update of a post must
        show the last change, and a drawing older than a change would stay on it for good."""
        if row.kind == outbox.DIRECT or not live.is_live(row.subject):
            return Drawing(Card.from_dict(row.card))
        try:
            return await asyncio.to_thread(self._draw, row)
        except Exception as error:  # the card as queued is still right, if older
            log.warning("could not draw %s afresh: %s", row.subject, type(error).__name__)
            return Drawing(Card.from_dict(row.card))

    def _draw(self, row: outbox.Claimed) -> Drawing:
        with self.db.read() as session:
            card = live.current_card(session, row.subject)
            if card is None:
                return Drawing(Card.from_dict(row.card))
            # An update drawn the same as what its post shows (an update sent since drew the
            # same change) would only spend one of the platform's requests.
            post = session.get(Outbox, row.updates_id) if row.updates_id is not None else None
            shown = post is not None and Card.from_dict(post.card) == card
            return Drawing(card, fresh=card.to_dict(), shown=shown)

    async def _send(self, row: outbox.Claimed, card: Card) -> str | DeliveryError | None:
        """Send one row: the platform's message reference, or why it failed."""
        platform = self.platforms[row.platform]
        try:
            if row.kind == outbox.UPDATE:
                assert row.message_ref is not None
                await platform.update(row.address, row.message_ref, card, delivery_id=row.id)
                return row.message_ref
            if row.kind == outbox.DIRECT:
                return await platform.send_direct(row.address, card, delivery_id=row.id)
            return await platform.send(row.address, card, delivery_id=row.id)
        except DeliveryError as error:
            return error
        except Exception as error:  # a bug or an unexpected client error: retry, and say so
            log.exception("delivery %s to %s failed unexpectedly", row.id, row.platform)
            return DeliveryError(type(error).__name__)

    async def _settle(
        self, row: outbox.Claimed, outcome: str | DeliveryError | None, card: dict[str, Any] | None = None
    ) -> Retry | None:
        """Record what happened; returns when it is tried again, if it failed for now. While
        the database cannot be reached this waits and tries again, holding the lane: the message
        is out (or refused), and only the database's word for it is missing. Sending it again
        would make a duplicate; forgetting the reference, a card whose counts never update."""
        pause = 0.5
        while True:
            try:
                return await self._record(row, outcome, card)
            except UNREACHABLE as error:
                log.warning(
                    "delivery %s went out, and could not be recorded (%s); trying again in %.0f s",
                    row.id,
                    type(error).__name__,
                    pause,
                )
                await asyncio.sleep(pause)
                pause = min(pause * 2, SETTLE_PAUSE_MAX)

    async def _settle_shown(self, row: outbox.Claimed) -> None:
        """An update not sent, its post already showing it; recorded as the others are."""
        pause = 0.5
        while True:
            try:
                await asyncio.to_thread(self._mark_shown, row)
                return
            except UNREACHABLE as error:
                log.warning("delivery %s waits for the database (%s)", row.id, type(error).__name__)
                await asyncio.sleep(pause)
                pause = min(pause * 2, SETTLE_PAUSE_MAX)

    def _mark_shown(self, row: outbox.Claimed) -> None:
        with self.db.session() as session:
            outbox.mark_shown(session, row.id, now=self.clock())
        if self.metrics is not None:
            self.metrics.deliveries.labels(row.platform, "unchanged").inc()

    async def _record(
        self, row: outbox.Claimed, outcome: str | DeliveryError | None, card: dict[str, Any] | None
    ) -> Retry | None:
        if isinstance(outcome, DeliveryError):
            seconds = await asyncio.to_thread(self._settle_failure, row, outcome)
            self._count(row.platform, outcome)
            return Retry(seconds, asked=outcome.retry_after is not None) if seconds is not None else None
        await asyncio.to_thread(self._settle_success, row, outcome, card)
        if self.metrics is not None:
            self.metrics.deliveries.labels(row.platform, "sent").inc()
        return None

    def _count(self, platform: str, error: DeliveryError) -> None:
        if self.metrics is None:
            return
        if error.retry_after is not None:
            self.metrics.rate_limited.labels(platform).inc()
        self.metrics.deliveries.labels(platform, "failed" if error.permanent else "retried").inc()

    def _settle_success(self, row: outbox.Claimed, ref: str | None, card: dict[str, Any] | None) -> None:
        with self.db.session() as session:
            outbox.mark_sent(session, row, message_ref=ref, now=self.clock(), card=card)
        self.sent += 1

    def _settle_failure(self, row: outbox.Claimed, error: DeliveryError) -> float | None:
        """Record a failure; the seconds until the row is tried again, None if it never is."""
        now = self.clock()
        with self.db.session() as session:
            if error.permanent:
                log.warning("delivery %s to %s failed: %s", row.id, row.platform, error.reason)
                outbox.mark_failed(session, row, error=error.reason, now=now)
                failed = session.get(Outbox, row.id)
                if failed is not None:
                    messages.report_failure(session, failed, error.reason, now=now)
                return None
            if error.retry_after is not None:
                wait = timedelta(seconds=max(error.retry_after, 0.0))
                outbox.mark_retry(session, row, error=f"rate limited: {error.reason}", due_at=now + wait)
                return wait.total_seconds()
            if row.attempts + 1 >= self.max_attempts:
                log.warning("delivery %s to %s gave up: %s", row.id, row.platform, error.reason)
                outbox.mark_failed(
                    session,
                    row,
                    error=f"gave up after {row.attempts + 1} attempts: {error.reason}",
                    now=now,
                )
                return None
            wait = self.backoff(row.attempts)
            outbox.mark_retry(session, row, error=error.reason, due_at=now + wait)
            return wait.total_seconds()

    def backoff(self, attempts: int) -> timedelta:
        """Exponential, with jitter so that many failed rows do not retry in step."""
        base = min(2.0**attempts, self.max_backoff)
        return timedelta(seconds=base * random.uniform(0.5, 1.0))
