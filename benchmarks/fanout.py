"""Fan-out: direct messages and channel posts through Touchline's delivery worker, in a process
of its own, to local fakes of the Slack Web API and the Bot Connector that enforce their rate
limits (429 past them) and may inject faults; optionally `kill -9` of the worker half-way.

    .venv/bin/python -m benchmarks.fanout [--dms 20000] [--posts 2000] [--each 4]
                                          [--faults] [--kill] [--postgres]

Half of the messages go to Slack, half to Teams; each person and each channel gets `--each` of
them, queued as that many broadcasts at once would queue them (everyone's first, then everyone's
second, ...), so that per-conversation limits and order are exercised. It prints the wall time
against the least the limits allow, how many were delivered, lost, delivered twice and out of
order (the fakes count every message by the number in its title), and the worker's CPU time
per message.
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
    worker_cpu: float = float("nan")  # seconds, user and system, of every worker process
    out_of_order: int = 0  # messages that reached their conversation before one queued ahead of them
    held: list[str] = field(default_factory=list)  # the most let through in any window, beside the limit


def least_seconds(count: int, windows: list[tuple[int, float]]) -> float:
    """The least time `count` messages take under sliding windows: all of a window at once,
    then the next window's worth when the first leaves it."""
    return max(((count - 1) // n) * seconds for n, seconds in windows) if count else 0.0


def least_for(platform: str, count: int, each: int, limits: dict[str, Any]) -> float:
    """The least time a platform's `count` messages take: the app's windows, and those of one
    conversation for the `each` messages it gets (whichever is longer)."""
    per_conversation, per_app = limits[platform]
    return max(least_seconds(count, per_app), least_seconds(min(each, count), per_conversation))


def seed(
    url: str,
    dms: int,
    posts: int,
    service_url: str,
    each: int = 1,
    platforms: tuple[str, ...] = ("slack", "teams"),
) -> Counter[str]:
    """People, their Teams chats, the channels, and one outbox row per message (`each` per
    person and per channel, in rounds, conversations taking `platforms` in turn); returns how
    many for each platform."""
    engine = create_engine(normalise_url(url))
    now = datetime.now(UTC)
    people, identities, conversations, rows = [], [], [], []
    number = 0
    per_platform: Counter[str] = Counter()

    def row(kind: str, platform: str, address: str) -> None:
        nonlocal number
        number += 1
        per_platform[platform] += 1
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

    targets: list[tuple[str, str, str]] = []  # (kind, platform, address), one per conversation
    for i in range(math.ceil(dms / each)):
        if platforms[i % len(platforms)] == "slack":
            targets.append(("direct", "slack", f"U{i:010d}"))
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
        targets.append(("direct", "teams", aad))
    for i in range(math.ceil(posts / each)):
        if platforms[i % len(platforms)] == "slack":
            targets.append(("post", "slack", f"C{i:010d}"))
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
        targets.append(("post", "teams", channel))
    left = {"direct": dms, "post": posts}
    for _ in range(each):
        for kind, platform, address in targets:
            if left[kind] > 0:
                left[kind] -= 1
                row(kind, platform, address)
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
    return per_platform


def arrivals(slack: FakeSlack, teams: FakeConnector) -> list[tuple[str, int]]:
    """(conversation, message number) for every message the fakes accepted, as they came."""
    came: list[tuple[str, int]] = []
    for call in slack.calls:
        if call.method == "chat.postMessage" and (found := TITLE.search(str(call.body.get("text", "")))):
            came.append((f"slack:{call.body.get('channel')}", int(found.group(1))))
    for sent in teams.sent:
        if sent.method == "POST" and (found := TITLE.search(str(sent.activity.get("summary", "")))):
            came.append((f"teams:{sent.conversation}", int(found.group(1))))
    return came


def delivered(slack: FakeSlack, teams: FakeConnector) -> Counter[int]:
    return Counter(number for _, number in arrivals(slack, teams))


def out_of_order(came: list[tuple[str, int]]) -> int:
    """Messages that reached their conversation after one queued behind them had (first arrivals;
    a duplicate is counted as such, not here)."""
    latest: dict[str, int] = {}
    seen: set[int] = set()
    late = 0
    for conversation, number in came:
        if number in seen:
            continue
        seen.add(number)
        if number < latest.get(conversation, 0):
            late += 1
        latest[conversation] = max(latest.get(conversation, 0), number)
    return late


async def fan_out(
    url: str,
    *,
    dms: int,
    posts: int,
    each: int = 1,
    faults: bool = False,
    kill: bool = False,
    lease: float = 5.0,
    concurrency: int = 32,
    limits: dict[str, tuple[list[tuple[int, float]], list[tuple[int, float]]]] = LIMITS,
    timeout: float = 900.0,
) -> Result:
    """Deliver `dms` + `posts` messages through a worker process; `kill` it once half are out."""
    async with _fakes(limits, faults) as (slack, teams):
        per_platform = await asyncio.to_thread(seed, url, dms, posts, teams.base_url, each)
        expected = sum(per_platform.values())
        started = time.monotonic()
        worker = _worker(url, slack.base_url, limits, lease, concurrency)
        kills = 0
        cpu = 0.0
        try:
            while True:
                await asyncio.sleep(0.1)
                seen = delivered(slack, teams)
                if kill and kills == 0 and len(seen) >= expected // 2:
                    cpu += _cpu_seconds(worker.pid)
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
            found = re.search(rb"worker-cpu-s ([0-9.]+)", out or b"")
            cpu += float(found.group(1)) if found else math.nan
        finally:
            if worker.poll() is None:
                worker.kill()
        came = arrivals(slack, teams)
        seen = Counter(number for _, number in came)
    minimum = max(least_for(p, n, each, limits) for p, n in per_platform.items())
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
        worker_cpu=cpu,
        out_of_order=out_of_order(came),
        held=_held("slack", slack.gate, limits) + _held("teams", teams.gate, limits),  # type: ignore[arg-type]
    )


def _cpu_seconds(pid: int) -> float:
    """User and system CPU time of a running process so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
        f"delivered twice {result.duplicated} · out of order {result.out_of_order} · "
        f"429s {result.rate_limited} · faults {result.faults} · kills {result.kills} · "
        f"worker CPU {result.worker_cpu:.1f} s ({result.worker_cpu / max(result.delivered, 1) * 1000:.2f} ms "
        f"a message) · worker memory at the end {result.worker_mb:.0f} MB"
    )
    print(f"  the most the fakes let through in any sliding window: {'; '.join(result.held)}")


def main() -> None:
    described = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    described.add_argument("--dms", type=int, default=20000)
    described.add_argument("--posts", type=int, default=2000)
    described.add_argument("--each", type=int, default=4, help="messages to each person and channel")
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
        print(
            f"{label}: {args.dms:,} direct messages and {args.posts:,} channel posts, {args.each} to each "
            f"person and channel{what} · load average {os.getloadavg()[0]:.2f}"
        )
        result = asyncio.run(
            fan_out(url, dms=args.dms, posts=args.posts, each=args.each, faults=args.faults, kill=args.kill)
        )
        _report(label, result)


if __name__ == "__main__":
    main()
