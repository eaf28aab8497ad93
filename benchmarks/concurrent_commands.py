"""Load: 200 people sending slash commands at once, back to back, for 60 s, to Touchline's real
`/slack/events`: errors, acknowledgements inside Slack's 3 s, and whether "database is locked"
(or any failure) ever reaches a person or the log.

    .venv/bin/python -m benchmarks.concurrent_commands [--concurrency 200] [--seconds 60] [--postgres]

A closed loop: each of the N clients sends its next command when the last was acknowledged. A
third of the commands record an objection after the acknowledgement (writes, concurrently); the
rest read (`/objection mine`, `/strategy list`, `/asset list`). Prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from aiohttp import ClientSession, ClientTimeout, TCPConnector
from sqlalchemy import func, select

from benchmarks.acknowledgement import FORM, ROOT, free_port, serving_slack, started
from benchmarks.common import empty_database_url, percentiles
from storage.database import Database
from storage.models import Objection
from tests import slack_fake

COMMANDS = [("objection", "too expensive vs Acme, call {n}"), ("objection", "mine"), ("strategy", "list")]
COMMANDS += [("objection", "no SAP connector, deal {n}"), ("asset", "list"), ("objection", "mine")]
FAILURES = ("database is locked", "Something went wrong", "Traceback")


async def clients(
    http: ClientSession, port: int, fake: slack_fake.FakeSlack, concurrency: int, seconds: float
) -> tuple[list[float], int, int]:
    """(acknowledgement times in ms, non-200 answers, objections asked for)."""
    timings: list[float] = []
    why: dict[str, int] = {}
    refused = 0
    objections = 0
    stop = time.perf_counter() + seconds

    async def client(number: int) -> None:
        nonlocal refused, objections
        sent = 0
        while time.perf_counter() < stop:
            name, text = COMMANDS[(number + sent) % len(COMMANDS)]
            n = number * 100_000 + sent
            body = slack_fake.slash_command(name, text.format(n=n), f"U{number:010d}", fake=fake)
            began = time.perf_counter()
            try:
                status, _ = await slack_fake.post(http, f"http://127.0.0.1:{port}/slack/events", body, FORM)
            except (TimeoutError, OSError) as error:
                status = 0
                why[type(error).__name__] = why.get(type(error).__name__, 0) + 1
            if status == 200:
                timings.append((time.perf_counter() - began) * 1000)
                if name == "objection" and text != "mine":
                    objections += 1
            else:
                refused += 1
                if status:
                    why[f"HTTP {status}"] = why.get(f"HTTP {status}", 0) + 1
            sent += 1

    await asyncio.gather(*(client(number) for number in range(concurrency)))
    if why:
        print(f"  not answered: {why}")
    return timings, refused, objections


async def measure(url: str, concurrency: int, seconds: float) -> None:
    with tempfile.TemporaryDirectory() as folder:
        log_path = Path(folder) / "touchline.log"
        # As many connections as clients (aiohttp's default pool holds 100), as Slack would open.
        connector = TCPConnector(limit=0)
        async with (
            slack_fake.fake_slack() as fake,
            ClientSession(connector=connector, timeout=ClientTimeout(total=30)) as http,
        ):
            fake.check_blocks = False
            port = free_port()
            env = serving_slack(url, fake, port)
            with log_path.open("w") as log:
                process = subprocess.Popen(
                    [sys.executable, "-m", "bot", "serve"], env=env, cwd=ROOT, stdout=log, stderr=log
                )
                try:
                    await started(http, port, process)
                    await asyncio.sleep(2)
                    timings, refused, objections = await clients(http, port, fake, concurrency, seconds)
                    deadline = time.monotonic() + 60
                    while len(fake.called("response_url")) < len(timings) and time.monotonic() < deadline:
                        await asyncio.sleep(0.5)  # the work after each acknowledgement
                finally:
                    process.terminate()
                    process.wait(timeout=30)
            replies = fake.called("response_url")
            said = json.dumps(replies)
            logged = log_path.read_text()
            for line in logged.splitlines():
                if any(failure in line for failure in FAILURES) or "ERROR" in line:
                    print(f"  log: {line[:300]}")
        db = Database.from_url(url)
        with db.session() as session:
            stored = session.execute(select(func.count()).select_from(Objection)).scalar_one()
        db.dispose()
        late = sum(1 for t in timings if t > 3000)
        print(
            f"{concurrency} concurrent clients for {seconds:g} s: {len(timings) + refused:,} commands, "
            f"{len(timings):,} acknowledged 200, {refused} not ({len(timings) / seconds:.0f}/s)\n"
            f"  to the acknowledgement: {percentiles(timings)} · over Slack's 3 s: {late}\n"
            f"  replies to people: {len(replies):,} of {len(timings):,}; objections stored: {stored:,} of "
            f"{objections:,} asked for\n"
            + "".join(
                f"  {failure!r}: {said.count(failure)} in replies, {logged.count(failure)} in the log\n"
                for failure in FAILURES
            ),
            end="",
        )


def main() -> None:
    described = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    described.add_argument("--concurrency", type=int, default=200)
    described.add_argument("--seconds", type=float, default=60)
    described.add_argument("--postgres", action="store_true")
    args = described.parse_args()
    with empty_database_url(args.postgres, "load") as url:
        print(f"{'PostgreSQL' if args.postgres else 'SQLite'}:")
        asyncio.run(measure(url, args.concurrency, args.seconds))


if __name__ == "__main__":
    main()
