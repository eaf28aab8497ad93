"""Acknowledgement latency: signed slash commands (`/objection …`, which records an objection
after the acknowledgement) sent to Touchline's real `/slack/events` at a steady rate, and the
same to a bare Bolt app that only acknowledges (the floor). Also Touchline's footprint: start-up
time and resident memory idle and after the load.

    .venv/bin/python -m benchmarks.acknowledgement [--rate 50] [--seconds 30] [--postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from aiohttp import ClientSession

from benchmarks.common import empty_database_url, percentiles
from tests import slack_fake

ROOT = Path(__file__).resolve().parent.parent
POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
FORM = "application/x-www-form-urlencoded"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


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
    http: ClientSession, port: int, fake: slack_fake.FakeSlack, rate: float, seconds: float
) -> list[float]:
    """Open loop: a request every 1/rate seconds whatever the answers, each timed to its 200."""
    timings: list[float] = []
    failures = 0

    async def one(n: int) -> None:
        nonlocal failures
        body = slack_fake.slash_command(
            "objection", f"too expensive vs Acme, call {n}", f"U{n % 400:010d}", fake=fake
        )
        began = time.perf_counter()
        status, _ = await slack_fake.post(http, f"http://127.0.0.1:{port}/slack/events", body, FORM)
        if status == 200:
            timings.append((time.perf_counter() - began) * 1000)
        else:
            failures += 1

    tasks = []
    began = time.perf_counter()
    for n in range(int(rate * seconds)):
        await asyncio.sleep(max(0.0, began + n / rate - time.perf_counter()))
        tasks.append(asyncio.create_task(one(n)))
    await asyncio.gather(*tasks)
    if failures:
        print(f"  {failures} requests were not answered 200")
    return timings


async def measure(url: str, rate: float, seconds: float) -> None:
    async with slack_fake.fake_slack() as fake, ClientSession() as http:
        fake.check_blocks = False
        for name, command in (
            ("Touchline", [sys.executable, "-m", "bot", "serve"]),
            ("bare Bolt app", [sys.executable, "-m", "benchmarks.bare_bolt"]),
        ):
            port = free_port()
            env = serving_slack(url, fake, port)
            process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
            try:
                startup = await started(http, port, process)
                await asyncio.sleep(2)  # settle: first refreshes, imports done
                idle = rss_mb(process.pid)
                await load(http, port, fake, rate / 5, 2)  # warm up
                timings = await load(http, port, fake, rate, seconds)
                await asyncio.sleep(1)
                after = rss_mb(process.pid)
                print(
                    f"{name}: {len(timings):,} commands at {rate:g}/s, to the acknowledgement: "
                    f"{percentiles(timings)}"
                    f" · start-up {startup:.2f} s · memory {idle:.0f} MB idle, {after:.0f} MB after the load"
                )
            finally:
                process.terminate()
                process.wait(timeout=20)


def main() -> None:
    described = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    described.add_argument("--rate", type=float, default=50)
    described.add_argument("--seconds", type=float, default=30)
    described.add_argument("--postgres", action="store_true")
    args = described.parse_args()
    with empty_database_url(args.postgres, "ack") as url:
        print(f"{'PostgreSQL' if args.postgres else 'SQLite'}:")
        asyncio.run(measure(url, args.rate, args.seconds))


if __name__ == "__main__":
    main()
