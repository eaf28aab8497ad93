"""A crowd pressing *Got it*: a decision posted to many Slack channels, then presses from that many
people against a real `touchline serve`, as fast as twenty connections send them. Prints how long
until every press is stored and every channel's card shows the last count, the `chat.update`
calls it took, and beside them the least time Slack's limits (as `app.yaml` sets them) allow.

    .venv/bin/python -m benchmarks.presses [--channels 200] [--presses 1000] [--known] [--postgres]
                                           [--apart]

`--apart` runs `touchline serve --no-worker` beside `touchline worker` (the arrangement the README
gives PostgreSQL) instead of `touchline serve` alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from aiohttp import ClientSession, TCPConnector
from sqlmodel import col, func, select

from benchmarks.acknowledgement import free_port, serving_slack, started
from benchmarks.common import empty_database_url, percentiles
from benchmarks.fanout import least_seconds
from bot.config import parse_organisation_text
from handlers import directory, inbound, setup, strategy
from handlers.context import Context
from storage.database import Database
from storage.models import Acknowledgement, Decision, Outbox
from tests import slack_fake

ROOT = Path(__file__).resolve().parent.parent
FORM = "application/x-www-form-urlencoded"


def organisation(channels: list[str]) -> str:
    targets = ", ".join(f'"slack:{c}"' for c in channels)
    return (
        "organisation: {name: Crowd Co, timezone: Europe/Berlin}\n"
        "people: {boss: {name: Bea Boss, slack: U0BOSS0001}}\n"
        "roles: {leader: [boss]}\n"
        f"audiences: {{field: {{targets: [{targets}], members: [boss]}}}}\n"
    )


def announce(ctx: Context) -> Decision:
    boss = directory.console_actor(ctx, "boss")
    form = inbound.command(ctx, boss, "strategy", "").form
    assert form is not None
    values = {
        **form.state,
        "title": "Mid-market first",
        "decision": "From January we lead with the mid-market tier.",
        "why": "Win rates in mid-market are twice enterprise.",
        "reps_may": "offer up to 15% on 3-year deals",
        "reps_may_not": "discount the platform fee",
        "effective_on": "2026-12-01",
        "audiences": ["field"],
    }
    assert not inbound.submit(ctx, boss, form.form_id, values).errors
    with ctx.db.session() as session:
        return session.exec(select(Decision)).one()


def posted(db: Database, decision: Decision) -> dict[str, str]:
    with db.session() as session:
        return dict(
            session.exec(
                select(Outbox.address, Outbox.message_ref).where(
                    Outbox.subject == f"decision:{decision.id}",
                    Outbox.kind == "post",
                    col(Outbox.message_ref).is_not(None),
                )
            ).all()
        )


def stored(db: Database) -> int:
    with db.session() as session:
        return int(session.exec(select(func.count()).select_from(Acknowledgement)).one())


async def measure(url: str, channels: int, presses: int, known: bool = False, apart: bool = False) -> None:
    names = [f"C0CROWD{n:05d}" for n in range(channels)]
    org = organisation(names)
    with tempfile.TemporaryDirectory() as folder:
        config = Path(folder) / "app.yaml"
        config.write_text(org)
        db = Database.from_url(url)
        ctx = Context(db=db, org=parse_organisation_text(org))
        setup.apply(ctx)
        limits = ctx.org.delivery.slack
        async with slack_fake.fake_slack() as fake, ClientSession(connector=TCPConnector(limit=20)) as http:
            fake.check_blocks = False
            port = free_port()
            env = {**serving_slack(url, fake, port), "TOUCHLINE_CONFIG": str(config)}
            env["TOUCHLINE_SECRET_KEY"] = os.environ.get(
                "TOUCHLINE_SECRET_KEY", "benchmark-only-key-" + "0" * 16
            )
            serve = [sys.executable, "-m", "bot", "serve", *(["--no-worker"] if apart else [])]
            server = subprocess.Popen(serve, env=env, cwd=ROOT)
            worker = None
            try:
                await started(http, port, server)
                if apart:
                    worker = subprocess.Popen(
                        [sys.executable, "-m", "bot", "worker"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL
                    )
                if known:
                    # As the channels' members are once Touchline has read them: no first contact.
                    # Slack (the fake) says of each what Touchline stored: nothing to write again.
                    for n in range(presses):
                        user, name = f"U0P{n:07d}", f"Presser {n}"
                        fake.users[user] = {"name": name, "tz": "Europe/Berlin"}
                        directory.identify(ctx, "slack", user, name=name, timezone="Europe/Berlin")
                decision = announce(ctx)
                began, began_at = time.monotonic(), time.perf_counter()
                while len(refs := posted(db, decision)) < channels:
                    await asyncio.sleep(0.2)
                print(f"  {channels} posts out in {time.monotonic() - began:.1f} s")
                timings: list[float] = []
                at_once = asyncio.Semaphore(20)  # timed from the request's start, not its wait for a turn

                async def press(n: int) -> None:
                    async with at_once:
                        await press_now(n)

                async def press_now(n: int) -> None:
                    channel = names[n % channels]
                    body = slack_fake.button(
                        strategy.ACK,
                        str(decision.id),
                        f"U0P{n:07d}",
                        fake=fake,
                        channel=channel,
                        ts=refs[channel],
                    )
                    started_at = time.perf_counter()
                    status, _ = await slack_fake.post(
                        http, f"http://127.0.0.1:{port}/slack/events", body, FORM
                    )
                    if status == 200:
                        timings.append((time.perf_counter() - started_at) * 1000)

                updates_before = len(fake.called("chat.update"))
                first = time.monotonic()
                await asyncio.gather(*(press(n) for n in range(presses)))
                last = time.monotonic()
                while stored(db) < presses and time.monotonic() - last < 300:
                    await asyncio.sleep(0.05)
                all_stored = time.monotonic() - last
                want = f"acknowledged by {presses} of"

                def converged() -> bool:
                    latest: dict[str, str] = {}
                    for call in fake.called("chat.update"):
                        latest[call["channel"]] = json.dumps(call.get("blocks"))
                    return len(latest) == channels and all(want in b for b in latest.values())

                while not converged() and time.monotonic() - last < 600:
                    await asyncio.sleep(0.2)
                settled = time.monotonic() - last
                updates = len(fake.called("chat.update")) - updates_before
                print(
                    f"  {len(timings):,} of {presses:,} presses answered in {last - first:.1f} s "
                    f"({presses / (last - first):.0f}/s), to the acknowledgement: {percentiles(timings)}"
                )
                print(
                    f"  all stored {all_stored:.1f} s after the last press; every card showing "
                    f"{presses:,} {settled:.1f} s after (converged: {converged()}); "
                    f"{updates:,} chat.update calls"
                )
                # The least the limits allow: every post, then one update per channel after the
                # last press, through the app's sliding windows, counted from the first post.
                needed = channels * 2
                floor = least_seconds(needed, limits.per_app) - (last - began)
                print(
                    f"  the limits allow: {needed} calls (a post and a last update per channel) "
                    f"through {', '.join(f'{n} per {w:g} s' for n, w in limits.per_app)} for the app: "
                    f"every card right {max(floor, 1.0):.1f} s after the last press at the earliest"
                )
                # Where the time went: each call of the app (posts and updates) in the order Slack
                # took them, counted from the first post.
                calls = [c.at for c in fake.calls if c.method in ("chat.postMessage", "chat.update")]
                if calls:
                    marks = [n for n in (1, channels, 300, 301, len(calls)) if n <= len(calls)]
                    print(
                        "  calls to chat.postMessage and chat.update, from the first: "
                        + " · ".join(f"#{n} at {calls[n - 1] - calls[0]:.1f} s" for n in marks)
                        + f" · the last press at {last - began - (calls[0] - began_at):.1f} s"
                    )
            finally:
                for running in (worker, server):
                    if running is not None:
                        running.terminate()
                        running.wait(timeout=30)
                db.dispose()


def main() -> None:
    described = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    described.add_argument("--channels", type=int, default=200)
    described.add_argument("--presses", type=int, default=1000)
    described.add_argument("--postgres", action="store_true")
    described.add_argument(
        "--known", action="store_true", help="the pressers are known already (else each is met first)"
    )
    described.add_argument("--apart", action="store_true", help="serve --no-worker beside a worker")
    args = described.parse_args()
    with empty_database_url(args.postgres, "presses") as url:
        arrangement = "serve --no-worker + worker" if args.apart else "serve alone"
        print(f"{'PostgreSQL' if args.postgres else 'SQLite'}, {arrangement}, load {os.getloadavg()[0]:.2f}:")
        asyncio.run(measure(url, args.channels, args.presses, args.known, args.apart))


if __name__ == "__main__":
    main()
