"""Fan-out: direct messages and channel posts through Touchline's delivery worker, in a process
of its own, to local fakes of the Slack Web API and the Bot Connector that enforce their rate
limits (429 past them) and may inject faults; optionally `kill -9` of the worker half-way.

    .venv/bin/python -m benchmarks.fanout [--dms 5000] [--posts 500] [--faults] [--kill] [--postgres]

Half of the messages go to Slack, half to Teams, each to its own person or channel. It prints
the wall time against the least the limits allow, and how many were delivered, lost and
delivered twice (the fakes count every message by the number in its title).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, insert

from benchmarks.common import empty_database_url
from handlers.ui import Card
from storage.database import normalise_url
from storage.models import Conversation, Identity, Outbox, Person
from tests.fake_limits import Gate
from tests.slack_fake import FakeSlack, fake_slack
from tests.teams_fake import FakeConnector, fake_connector

POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
TITLE = re.compile(r"fanout-(\d+)")
# Teams' documented limits; Slack's chat.postMessage workspace limit is not published, and
# at its default here (300 a minute) 2,750 messages would take nine minutes: the benchmark
# gives Slack the same 50 a second as Teams, and the fake enforces what the worker is told.
LIMITS: dict[str, tuple[list[tuple[int, float]], list[tuple[int, float]]]] = {
    "slack": ([(1, 1.0)], [(50, 1.0)]),
    "teams": ([(7, 1.0), (60, 30.0), (1800, 3600.0)], [(50, 1.0)]),
}


@dataclass
class Result:
    expected: int
    delivered: int
    lost: int
    duplicated: int
    seconds: float
    minimum: float
    rate_limited: int
    faults: dict[str, int]
    kills: int
    worker_mb: float = float("nan")
    held: list[str] = field(default_factory=list)  # the most let through in any window, beside the limit


def least_seconds(count: int, windows: list[tuple[int, float]]) -> float:
    """The least time `count` messages take under sliding windows: all of a window at once,
    then the next window's worth when the first leaves it."""
    return max(((count - 1) // n) * seconds for n, seconds in windows) if count else 0.0


def seed(url: str, dms: int, posts: int, service_url: str) -> int:
    """People, their Teams chats, the channels, and one outbox row per message; returns how many."""
    engine = create_engine(normalise_url(url))
    now = datetime.now(UTC)
    people, identities, conversations, rows = [], [], [], []
    number = 0

    def row(kind: str, platform: str, address: str) -> None:
        nonlocal number
        number += 1
        card = Card(title=f"fanout-{number}", footer="a message of the fan-out benchmark").to_dict()
        rows.append(
            {
                "kind": kind,
                "platform": platform,
                "address": address,
                "card": card,
                "subject": "fanout",
                "status": "pending",
                "attempts": 0,
                "due_at": now,
                "created_at": now,
            }
        )

    def reference(address: str, kind: str) -> dict[str, Any]:
        return {
            "bot": {"id": "28:fanout-bot"},
            "conversation": {"id": address, "conversationType": kind, "tenantId": TENANT},
            "channelId": "msteams",
            "serviceUrl": service_url,
        }

    for i in range(dms):
        if i % 2 == 0:
            row("direct", "slack", f"U{i:010d}")
            continue
        aad = str(uuid.UUID(int=i))
        people.append({"id": i + 1, "key": f"teams:{aad}", "name": f"Person {i}", "from_config": False})
        identities.append({"person_id": i + 1, "platform": "teams", "external_id": aad})
        conversations.append(
            {
                "platform": "teams",
                "address": f"a:{aad}",
                "kind": "personal",
                "name": "",
                "team": "",
                "person_id": i + 1,
                "reference": reference(f"a:{aad}", "personal"),
                "updated_at": now,
            }
        )
        row("direct", "teams", aad)
    for i in range(posts):
        if i % 2 == 0:
            row("post", "slack", f"C{i:010d}")
            continue
        channel = f"19:fanout{i:010d}@thread.tacv2"
        conversations.append(
            {
                "platform": "teams",
                "address": channel,
                "kind": "channel",
                "name": f"channel {i}",
                "team": "",
                "person_id": None,
                "reference": reference(channel, "channel"),
                "updated_at": now,
            }
        )
        row("post", "teams", channel)
    with engine.begin() as connection:
        for table, values in (
            (Person, people),
            (Identity, identities),
            (Conversation, conversations),
            (Outbox, rows),
        ):
            if values:
                connection.execute(insert(table), values)  # type: ignore[arg-type]
    engine.dispose()
    return number


def delivered(slack: FakeSlack, teams: FakeConnector) -> Counter[int]:
    seen: Counter[int] = Counter()
    for call in slack.calls:
        if call.method == "chat.postMessage" and (found := TITLE.search(str(call.body.get("text", "")))):
            seen[int(found.group(1))] += 1
    for sent in teams.sent:
        if sent.method == "POST" and (found := TITLE.search(str(sent.activity.get("summary", "")))):
            seen[int(found.group(1))] += 1
    return seen


async def fan_out(
    url: str,
    *,
    dms: int,
    posts: int,
    faults: bool = False,
    kill: bool = False,
    lease: float = 5.0,
    concurrency: int = 32,
    limits: dict[str, tuple[list[tuple[int, float]], list[tuple[int, float]]]] = LIMITS,
    timeout: float = 900.0,
) -> Result:
    """Deliver `dms` + `posts` messages through a worker process; `kill` it once half are out."""
    async with _fakes(limits, faults) as (slack, teams):
        expected = await asyncio.to_thread(seed, url, dms, posts, teams.base_url)
        started = time.monotonic()
        worker = _worker(url, slack.base_url, limits, lease, concurrency)
        kills = 0
        try:
            while True:
                await asyncio.sleep(0.1)
                seen = delivered(slack, teams)
                if kill and kills == 0 and len(seen) >= expected // 2:
                    os.kill(worker.pid, signal.SIGKILL)  # no chance to settle what it was sending
                    worker.wait()
                    kills += 1
                    worker = _worker(url, slack.base_url, limits, lease, concurrency)
                if len(seen) >= expected or worker.poll() is not None or time.monotonic() - started > timeout:
                    break
            seconds = time.monotonic() - started
            out, _ = worker.communicate(timeout=60)
            worker_mb = (
                float(m.group(1)) if (m := re.search(rb"worker-rss-mb (\d+)", out or b"")) else math.nan
            )
        finally:
            if worker.poll() is None:
                worker.kill()
        seen = delivered(slack, teams)
    per_platform = {"slack": (dms + 1) // 2 + (posts + 1) // 2, "teams": dms // 2 + posts // 2}
    minimum = max(least_seconds(n, limits[p][1]) for p, n in per_platform.items())
    return Result(
        expected=expected,
        delivered=len(seen),
        lost=expected - len(seen),
        duplicated=sum(n - 1 for n in seen.values()),
        seconds=seconds,
        minimum=minimum,
        rate_limited=slack.gate.counts["429"] + teams.gate.counts["429"],  # type: ignore[union-attr]
        faults=dict(slack.gate.counts + teams.gate.counts),  # type: ignore[union-attr]
        kills=kills,
        worker_mb=worker_mb,
        held=_held("slack", slack.gate, limits) + _held("teams", teams.gate, limits),  # type: ignore[arg-type]
    )


def _held(platform: str, gate: Gate, limits: dict[str, Any]) -> list[str]:
    """ "slack app 50 in 1 s (limit 50)", for every window the fake counted."""
    per_conversation, per_app = limits[platform]
    return [
        f"{platform} {scope} {gate.most.get((scope, float(seconds)), 0)} in {seconds:g} s (limit {count})"
        for scope, windows in (("app", per_app), ("conversation", per_conversation))
        for count, seconds in windows
    ]


@asynccontextmanager
async def _fakes(limits: dict[str, Any], faults: bool) -> Any:
    async with fake_slack() as slack, fake_connector() as teams:
        for fake, platform in ((slack, "slack"), (teams, "teams")):
            fake.gate = Gate(
                per_conversation=list(limits[platform][0]),
                per_app=list(limits[platform][1]),
                errors=0.10 if faults else 0.0,
                drops=0.05 if faults else 0.0,
                seed=11 if platform == "slack" else 13,
            )
        teams.check_cards = False  # the schema check costs more than the delivery being measured
        slack.check_blocks = False
        yield slack, teams


def _worker(
    url: str, slack_api: str, limits: dict[str, Any], lease: float, concurrency: int
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "benchmarks.fanout_worker",
            url,
            slack_api,
            json.dumps(limits),
            "--lease",
            str(lease),
            "--concurrency",
            str(concurrency),
        ],
        cwd=Path(__file__).resolve().parent.parent,
        stdout=subprocess.PIPE,
    )


def _report(name: str, result: Result) -> None:
    ratio = result.seconds / result.minimum if result.minimum else math.nan
    print(
        f"{name}: {result.delivered:,} of {result.expected:,} delivered in {result.seconds:.1f} s "
        f"(the limits allow {result.minimum:.0f} s: {ratio:.2f}×) · lost {result.lost} · "
        f"delivered twice {result.duplicated} · 429s {result.rate_limited} · faults {result.faults} · "
        f"kills {result.kills} · worker memory at the end {result.worker_mb:.0f} MB"
    )
    print(f"  the most the fakes let through in any sliding window: {'; '.join(result.held)}")


def main() -> None:
    described = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    described.add_argument("--dms", type=int, default=5000)
    described.add_argument("--posts", type=int, default=500)
    described.add_argument("--faults", action="store_true", help="10%% 503s and 5%% dropped connections")
    described.add_argument("--kill", action="store_true", help="kill -9 the worker when half are out")
    described.add_argument(
        "--postgres", action="store_true", help="a throwaway database on the local PostgreSQL"
    )
    args = described.parse_args()
    with empty_database_url(args.postgres, "fanout") as url:
        label = "PostgreSQL" if args.postgres else "SQLite"
        what = " with faults" if args.faults else ""
        what += " and a kill -9" if args.kill else ""
        print(f"{label}: {args.dms:,} direct messages and {args.posts:,} channel posts{what}")
        result = asyncio.run(fan_out(url, dms=args.dms, posts=args.posts, faults=args.faults, kill=args.kill))
        _report(label, result)


if __name__ == "__main__":
    main()
