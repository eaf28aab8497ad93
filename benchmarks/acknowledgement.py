"""Acknowledgement latency: signed slash commands (`/objection …`, which records an objection
after the acknowledgement) sent to Touchline's real `/slack/events` at a steady rate, and the
same to a bare Bolt app that only acknowledges (the floor); then again while `--deliveries`
direct messages go out through `touchline worker`, a process of its own beside
`touchline serve --no-worker`, at 50 a second. Also each objection end to end (from the command
to its "Recorded" reply reaching Slack), and Touchline's footprint: start-up time and resident
memory idle and after the load.

    .venv/bin/python -m benchmarks.acknowledgement [--rate 50] [--seconds 30] [--deliveries 5000]
                                                   [--postgres] [--newcomers]

The 400 reps who send the commands are known to Touchline, as they are once it has read the
channels' members, with the profile Slack gives (nothing to write about them); with
`--newcomers` each one's first command is their first contact, as on the day Touchline arrives.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from aiohttp import ClientSession
from sqlalchemy import create_engine, delete
from sqlmodel import col

from benchmarks.common import empty_database_url, percentiles
from benchmarks.fanout import seed
from benchmarks.objections_at_scale import plain
from bot.config import parse_organisation_text
from handlers import directory, setup
from handlers.context import Context
from storage.database import Database, normalise_url
from storage.models import Outbox
from tests import slack_fake

ROOT = Path(__file__).resolve().parent.parent
POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
FORM = "application/x-www-form-urlencoded"
REPS = 400
CALL = re.compile(r"call (\d+)\b")
# The fan-out benchmark's pace for Slack (its default, 300 a minute, is barely a load).
FAST = "\ndelivery:\n  slack: {per_conversation: [1/1s], per_app: [50/1s]}\n"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """The CPU time (user and system) process `pid` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def serving_slack(url: str, fake: slack_fake.FakeSlack, port: int) -> dict[str, str]:
    """The environment of a `touchline serve` for Slack, against `fake`, on `port`."""
    return {
        **os.environ,
        "DATABASE_URL": url,
        "TOUCHLINE_CONFIG": str(ROOT / "app.yaml"),
        "SLACK_BOT_TOKEN": slack_fake.TOKEN,
        "SLACK_SIGNING_SECRET": slack_fake.SECRET,
        "SLACK_API_URL": fake.base_url,
        "PORT": str(port),
        "LOG_LEVEL": "WARNING",
    }


async def started(
    http: ClientSession, port: int, process: subprocess.Popen[bytes], timeout: float = 60
) -> float:
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        if process.poll() is not None:
            raise RuntimeError("the server stopped while starting")
        try:
            async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
                if response.status == 200:
                    return time.monotonic() - began
        except OSError:
            pass
        await asyncio.sleep(0.02)
    raise RuntimeError("the server did not start")


async def load(
    http: ClientSession,
    port: int,
    fake: slack_fake.FakeSlack,
    rate: float,
    seconds: float,
    sent: dict[int, float] | None = None,
    first: int = 0,
) -> list[float]:
    """Open loop: a request every 1/rate seconds whatever the answers, each timed to its 200;
    `sent` keeps when each (numbered from `first`) left."""
    timings: list[float] = []
    failures = 0

    async def one(n: int) -> None:
        nonlocal failures
        # What reps say, of every theme (objections_at_scale's sayings), numbered to find its reply.
        said = f"{plain(random.Random(n))}, call {n}"
        body = slack_fake.slash_command("objection", said, f"U{n % REPS:010d}", fake=fake)
        began = time.perf_counter()
        if sent is not None:
            sent[n] = began
        status, _ = await slack_fake.post(http, f"http://127.0.0.1:{port}/slack/events", body, FORM)
        if status == 200:
            timings.append((time.perf_counter() - began) * 1000)
        else:
            failures += 1

    tasks = []
    began = time.perf_counter()
    for n in range(int(rate * seconds)):
        await asyncio.sleep(max(0.0, began + n / rate - time.perf_counter()))
        tasks.append(asyncio.create_task(one(first + n)))
    await asyncio.gather(*tasks)
    if failures:
        print(f"  {failures} requests were not answered 200")
    return timings


async def end_to_end(fake: slack_fake.FakeSlack, sent: dict[int, float], timeout: float = 120) -> str:
    """Each objection from its command to its reply reaching Slack, once every reply is in."""
    began = time.monotonic()
    replied: dict[int, float] = {}
    while time.monotonic() - began < timeout:
        for call in fake.calls:
            if call.method == "response_url" and (found := CALL.search(str(call.body.get("text", "")))):
                number = int(found.group(1))
                if number in sent:
                    replied.setdefault(number, call.at)
        if len(replied) >= len(sent):
            break
        await asyncio.sleep(0.2)
    if not replied:
        return "no replies"
    latencies = [(replied[n] - sent[n]) * 1000 for n in replied]
    span = max(replied.values()) - min(sent.values())
    return (
        f"{len(replied):,} of {len(sent):,} replied, command to reply {percentiles(latencies)}, "
        f"{len(replied) / span:.0f} objections a second end to end"
    )


def introduce(url: str, config: Path, fake: slack_fake.FakeSlack) -> None:
    """The reps, as Touchline knows them once it has read the channels' members; Slack (the fake)
    says of each what Touchline stored, so that a command writes nothing about its sender."""
    ctx = Context(db=Database.from_url(url), org=parse_organisation_text(config.read_text()))
    try:
        setup.apply(ctx)
        for n in range(REPS):
            user, name = f"U{n:010d}", f"Rep {n}"
            fake.users[user] = {"name": name, "tz": "Europe/Berlin"}
            directory.identify(ctx, "slack", user, name=name, timezone="Europe/Berlin")
    finally:
        ctx.db.dispose()


async def measure(url: str, rate: float, seconds: float, deliveries: int, newcomers: bool) -> None:
    async with slack_fake.fake_slack() as fake, ClientSession() as http:
        fake.check_blocks = False
        with tempfile.TemporaryDirectory() as folder:
            fast = Path(folder) / "app.yaml"
            fast.write_text((ROOT / "app.yaml").read_text() + FAST)
            if not newcomers:
                await asyncio.to_thread(introduce, url, fast, fake)
            serve = [sys.executable, "-m", "bot", "serve"]
            apart = [*serve, "--no-worker"]
            runs: list[tuple[str, list[str], bool, int]] = []
            for what, command, worker in (
                ("Touchline, one process", serve, False),
                ("Touchline, serve --no-worker beside touchline worker", apart, True),
            ):
                runs.append((what, command, worker, 0))
                if deliveries:
                    runs.append((f"  the same while {deliveries:,} DMs go out", command, worker, deliveries))
            runs.append(("bare Bolt app", [sys.executable, "-m", "benchmarks.bare_bolt"], False, 0))
            first = 0
            for name, command, worker, dms in runs:
                first += 100_000
                await _run(http, url, fake, name, command, rate, seconds, worker, dms, str(fast), first)


async def _run(
    http: ClientSession,
    url: str,
    fake: slack_fake.FakeSlack,
    name: str,
    command: list[str],
    rate: float,
    seconds: float,
    apart: bool,
    dms: int,
    config: str,
    first: int,
) -> None:
    port = free_port()
    env = serving_slack(url, fake, port) | {"TOUCHLINE_CONFIG": config}
    process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
    worker = None
    try:
        startup = await started(http, port, process)
        await asyncio.sleep(2)  # settle: first refreshes, imports done
        idle = rss_mb(process.pid)
        if dms:
            await asyncio.to_thread(seed, url, dms, 0, "", 1, ("slack",))
        if apart:
            worker = subprocess.Popen(
                [sys.executable, "-m", "bot", "worker"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL
            )
            await asyncio.sleep(3)  # started, and under way
        await load(http, port, fake, rate / 5, 2, first=first)  # warm up
        before = sum(c.method == "chat.postMessage" for c in fake.calls)
        working = [p for p in (process, worker) if p is not None]
        cpu = [cpu_seconds(p.pid) for p in working]
        sent: dict[int, float] = {}
        timings = await load(http, port, fake, rate, seconds, sent, first + 1000)
        going = sum(c.method == "chat.postMessage" for c in fake.calls) - before
        await asyncio.sleep(1)
        after = rss_mb(process.pid)
        print(
            f"{name}: {len(timings):,} commands at {rate:g}/s, to the acknowledgement: "
            f"{percentiles(timings)}"
            f" · start-up {startup:.2f} s · memory {idle:.0f} MB idle, {after:.0f} MB after the load"
        )
        if dms:
            print(f"  {going:,} direct messages went out meanwhile")
        if "Bolt" not in name:
            print(f"  end to end: {await end_to_end(fake, sent)}")
        # Until every reply is in: the work each command caused, not only its acknowledgement
        # (the bare app's is its acknowledgement alone; with DMs going out, theirs is in it too).
        used = [(cpu_seconds(p.pid) - c) * 1000 / len(sent) for p, c in zip(working, cpu, strict=True)]
        print(
            "  CPU a command: "
            + " + ".join(f"{ms:.1f} ms" for ms in used)
            + (" (serve + worker)" if worker else "")
        )
    finally:
        for running in (worker, process):
            if running is not None:
                running.terminate()
                running.wait(timeout=20)
        if dms:  # what is left of them is not the next run's to deliver
            await asyncio.to_thread(_forget_direct_messages, url)


def _forget_direct_messages(url: str) -> None:
    engine = create_engine(normalise_url(url))
    with engine.begin() as connection:
        connection.execute(delete(Outbox).where(col(Outbox.subject) == "fanout"))
    engine.dispose()


def main() -> None:
    described = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    described.add_argument("--rate", type=float, default=50)
    described.add_argument("--seconds", type=float, default=30)
    described.add_argument("--deliveries", type=int, default=5000, help="direct messages (0: no such run)")
    described.add_argument("--postgres", action="store_true")
    described.add_argument("--newcomers", action="store_true", help="each rep's first command is their first")
    args = described.parse_args()
    with empty_database_url(args.postgres, "ack") as url:
        print(f"{'PostgreSQL' if args.postgres else 'SQLite'} · load average {os.getloadavg()[0]:.2f}:")
        asyncio.run(measure(url, args.rate, args.seconds, args.deliveries, args.newcomers))


if __name__ == "__main__":
    main()
