"""What a strategy decision costs at scale: announce to many channels, thousands acknowledge, reminders.

    .venv/bin/python -m benchmarks.strategy_at_scale [--people 2000] [--channels 200] [--acks 500]
                                                    [--database-url postgresql://postgres@127.0.0.1/bench]

Prints its figures; asserts nothing. With no --database-url it uses a fresh SQLite file.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from benchmarks import common
from bot.delivery import DeliveryWorker
from handlers import directory, inbound, setup, strategy
from handlers.context import Context
from handlers.organisation import parse_organisation
from handlers.ui import Card
from storage.database import Database


class NullPlatform:
    """Accepts everything instantly, so that the figures are Touchline's own cost."""

    name = "console"

    async def send(self, address: str, card: Card, *, delivery_id: int) -> str:
        return str(delivery_id)

    async def send_direct(self, user_id: str, card: Card, *, delivery_id: int) -> str:
        return str(delivery_id)

    async def update(self, address: str, message_ref: str, card: Card, *, delivery_id: int) -> None:
        return None


def organisation(people: int, channels: int) -> dict[str, Any]:
    reps = {f"rep{i}": {"name": f"Rep {i}"} for i in range(people)}
    return {
        "organisation": {"name": "Benchmark Co"},
        "people": {"boss": {"name": "The Leader"}, **reps},
        "roles": {"leader": ["boss"], "rep": list(reps)},
        "audiences": {
            "field": {"targets": [f"console:#c{i}" for i in range(channels)], "members": list(reps)}
        },
    }


def timed(action: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = action()
    return (time.perf_counter() - start) * 1000, result


def main() -> None:
    arguments = common.parser(__doc__)
    arguments.add_argument("--people", type=int, default=2000)
    arguments.add_argument("--channels", type=int, default=200)
    arguments.add_argument("--acks", type=int, default=500)
    args = arguments.parse_args()
    with common.database(args.database_url) as db:
        run(db, args)


def run(db: Database, args: argparse.Namespace) -> None:
    now = [datetime(2026, 12, 1, 9, 0, tzinfo=UTC)]
    ctx = Context(
        db=db, org=parse_organisation(organisation(args.people, args.channels)), clock=lambda: now[0]
    )
    print(f"organisation: {args.people} reps in one audience posted to {args.channels} channels")

    ms, _ = timed(lambda: setup.apply(ctx))
    print(f"sync app.yaml into the directory, first start: {ms:.0f} ms")
    ms, _ = timed(lambda: setup.apply(ctx))
    print(f"sync app.yaml into the directory, a restart with nothing changed: {ms:.0f} ms")
    leader = directory.console_actor(ctx, "boss")
    reps = [directory.console_actor(ctx, f"rep{i}") for i in range(min(args.acks, args.people))]

    values = {
        "title": "Mid-market first",
        "decision": "Lead with the mid-market tier.",
        "why": "Twice the win rate.",
        "reps_may": "15% on 3-year deals",
        "reps_may_not": "discount the platform fee",
        "effective_on": "2026-12-01",
        "audiences": ["field"],
    }
    ms, reply = timed(lambda: inbound.submit(ctx, leader, strategy.ANNOUNCE_FORM, values))
    assert "going out" in reply.text, reply
    print(f"announce (decision + {args.channels} outbox rows, one transaction): {ms:.0f} ms")

    half = len(reps) // 2
    before = [timed(lambda r=r: inbound.action(ctx, r, strategy.ACK, "1"))[0] for r in reps[:half]]  # type: ignore[misc]
    print(f"acknowledge before the posts are sent ({half} people): {common.percentiles(before)}")

    worker = DeliveryWorker(db, {"console": NullPlatform()}, clock=lambda: now[0], batch=200)
    ms, sent = timed(lambda: asyncio.run(worker.drain()))
    rate = sent / ms * 1000
    print(f"deliver {sent} posts through a platform that answers instantly: {ms:.0f} ms ({rate:.0f}/s)")

    after = [timed(lambda r=r: inbound.action(ctx, r, strategy.ACK, "1"))[0] for r in reps[half:]]  # type: ignore[misc]
    print(f"acknowledge after the posts are sent ({len(reps) - half} people): {common.percentiles(after)}")
    ms, sent = timed(lambda: asyncio.run(worker.drain()))
    print(f"deliver the coalesced card updates: {sent} updates in {ms:.0f} ms")

    now[0] += timedelta(days=3)
    ms, queued = timed(lambda: strategy.remind_unacknowledged(ctx))
    print(f"queue reminders for those who have not acknowledged: {queued} in {ms:.0f} ms")


if __name__ == "__main__":
    main()
