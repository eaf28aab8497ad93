"""A delivery worker process for the fan-out benchmark: Touchline's own worker and platforms,
paced by the limits it is given, sending until the outbox has nothing left to send."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from slack_sdk.web.async_client import AsyncWebClient
from sqlmodel import col, func, select

from bot.delivery import DeliveryWorker
from bot.pacing import Pacer
from bot.platform import Platform
from bot.slack.platform import SlackPlatform
from bot.teams.app import TeamsApp
from bot.teams.platform import TeamsPlatform
from handlers.context import Context
from handlers.organisation import Organisation
from storage import outbox
from storage.database import Database
from storage.models import Outbox

ORG = {"organisation": {"name": "Fan-out"}, "audiences": {"all": {"targets": ["console:#all"]}}}


async def main(
    url: str, slack_api: str, limits: dict[str, list[list[list[float]]]], lease: float, slots: int
) -> None:
    # As Touchline's server does: threads enough for the sends under way at once.
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=slots + 8))
    db = Database.from_url(url)
    ctx = Context(db=db, org=Organisation.model_validate(ORG))
    client = AsyncWebClient(token="xoxb-fanout", base_url=slack_api, timeout=10)
    teams = TeamsApp(ctx, app_id=None, password=None, emulator=True)
    platforms: dict[str, Platform] = {"slack": SlackPlatform(client), "teams": TeamsPlatform(teams)}
    pacer = Pacer({p: ([tuple(w) for w in c], [tuple(w) for w in a]) for p, (c, a) in limits.items()})  # type: ignore[misc]
    worker = DeliveryWorker(db, platforms, lease=timedelta(seconds=lease), pacer=pacer, concurrency=slots)
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run_forever(stop, interval=0.2))
    while True:
        await asyncio.sleep(0.5)
        left = await asyncio.to_thread(_left, db)
        if left == 0:
            break
    stop.set()
    await running
    await teams.close()
    db.dispose()
    used = os.times()
    print(f"worker-rss-mb {_rss_mb():.0f}", flush=True)
    print(f"worker-cpu-s {used.user + used.system:.2f}", flush=True)


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _left(db: Database) -> int:
    with db.session() as session:
        return int(
            session.exec(
                select(func.count())
                .select_from(Outbox)
                .where(col(Outbox.status).in_([outbox.PENDING, outbox.SENDING]))
            ).one()
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("slack_api")
    parser.add_argument("limits")
    parser.add_argument("--lease", type=float, default=120.0)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    asyncio.run(main(args.url, args.slack_api, json.loads(args.limits), args.lease, args.concurrency))
