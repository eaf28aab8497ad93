"""The database goes away for a while (issue 17): a real `touchline serve` on PostgreSQL through a relay
the test cuts — every session killed, new ones refused — in the middle of delivering a decision to
thirty channels and of a stream of slash commands."""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from pathlib import Path

from aiohttp import ClientError, ClientSession, ClientTimeout
from sqlmodel import col, func, select

from bot.config import parse_organisation_text
from handlers import inbound, setup
from handlers.context import Context
from storage import inbox, outbox
from storage.database import Database
from storage.models import Objection, Outbox
from tests import slack_fake
from tests.db_proxy import relay_to
from tests.test_hostile_payloads import started
from tests.test_inbox import announced, touchline

OUTAGE = float(os.environ.get("TOUCHLINE_OUTAGE", "6"))  # seconds; the figure is 20
CHANNELS = [f"C0OUT{n:06d}" for n in range(30)]
ORG = f"""\
organisation: {{name: Outage Co, timezone: Europe/Berlin}}
people:
  boss: {{name: Bea Boss, slack: U0BOSS0001}}
roles: {{leader: [boss]}}
audiences:
  field: {{targets: [{", ".join(f'"slack:{c}"' for c in CHANNELS)}], members: [boss]}}
# Five a second for the app, so that the thirty posts take six seconds and the cut meets them.
delivery: {{slack: {{per_conversation: [1/1s], per_app: [5/1s]}}}}
"""


async def commands(
    port: int, fake: slack_fake.FakeSlack, seconds: float, start: int
) -> list[tuple[str, int, str]]:
    """A slash command every 0.1 s for `seconds`: (text, status, answer) of each."""
    said: list[tuple[str, int, str]] = []
    url = f"http://127.0.0.1:{port}/slack/events"
    async with ClientSession(timeout=ClientTimeout(total=10)) as http:

        async def one(i: int) -> None:
            text = f"outage objection number {i}"
            body = slack_fake.slash_command("objection", text, f"U0O{i:07d}", fake=fake)
            headers = {"Content-Type": "application/x-www-form-urlencoded", **slack_fake.sign(body)}
            try:
                async with http.post(url, data=body.encode(), headers=headers) as response:
                    said.append((text, response.status, await response.text()))
            except (ClientError, TimeoutError, OSError) as error:
                said.append((text, 0, type(error).__name__))

        tasks = []
        began, i = time.monotonic(), start
        while time.monotonic() - began < seconds:
            tasks.append(asyncio.create_task(one(i)))
            i += 1
            await asyncio.sleep(0.1)
        await asyncio.gather(*tasks)
    return said


def out(fake: slack_fake.FakeSlack) -> list[str]:
    """The channels the decision was posted to so far, once for each post."""
    return [c["channel"] for c in fake.called("chat.postMessage") if c["channel"] in CHANNELS]


async def health(port: int) -> int:
    async with (
        ClientSession(timeout=ClientTimeout(total=10)) as http,
        http.get(f"http://127.0.0.1:{port}/healthz") as response,
    ):
        return response.status


def test_a_database_outage_mid_delivery_and_mid_burst_loses_nothing_and_sends_nothing_twice(
    postgres_url: str, tmp_path: Path
) -> None:
    (tmp_path / "app.yaml").write_text(ORG)
    db = Database.from_url(postgres_url)
    ctx = Context(db=db, org=parse_organisation_text(ORG))
    setup.apply(ctx)
    with (
        relay_to() as relay,
        started(slack_fake.fake_slack()) as (fake, _),
        touchline(tmp_path, relay.url(postgres_url), fake, "serve") as server,
    ):
        port = server.port  # type: ignore[attr-defined]
        before = asyncio.run(commands(port, fake, 1.0, 0))
        decision = announced(ctx)
        deadline = time.monotonic() + 20
        while len(out(fake)) < 5:  # paced at five a second: under way
            assert time.monotonic() < deadline, "the decision's delivery did not start"
            time.sleep(0.05)
        relay.down()
        at_the_cut = len(out(fake))
        during = asyncio.run(commands(port, fake, OUTAGE, 1000))
        unhealthy = asyncio.run(health(port))
        relay.up()
        after = asyncio.run(commands(port, fake, 1.0, 2000))
        deadline = time.monotonic() + 60
        while True:
            with db.session() as session:
                owed = session.exec(
                    select(func.count()).where(
                        col(Outbox.subject) == f"decision:{decision.id}",
                        col(Outbox.status).in_([outbox.PENDING, outbox.SENDING]),
                    )
                ).one()
                waiting = inbox.pending(session)
            if owed == 0 and waiting == 0:
                break
            assert time.monotonic() < deadline, f"{owed} deliveries and {waiting} inbox items still owed"
            time.sleep(0.2)
        assert asyncio.run(health(port)) == 200
    log = (tmp_path / "serve.err").read_text(errors="replace")
    assert "Traceback" not in log, log[-3000:]
    assert unhealthy == 503 and relay.refused > 0

    # Every command was answered (none left Slack to show dispatch_failed): stored, or told to try again.
    every = before + during + after
    assert all(status == 200 for _, status, _ in every), Counter(status for _, status, _ in every)
    told = {text for text, _, answer in every if inbound.TRY_AGAIN in answer}
    taken = {text for text, _, answer in every if answer == ""}
    assert told and taken and len(told) + len(taken) == len(every)
    with db.session() as session:
        stored = Counter(session.exec(select(Objection.text)).all())
        posts = session.exec(select(Outbox).where(col(Outbox.subject) == f"decision:{decision.id}")).all()
    assert set(stored) == taken and max(stored.values()) == 1  # nothing half-written, nothing twice

    # Each channel got the decision once, and Touchline knows each post (its counts can be updated).
    assert 0 < at_the_cut < len(CHANNELS), f"cut with {at_the_cut} posts out: not mid-delivery"
    sent = Counter(out(fake))
    assert sorted(sent) == sorted(CHANNELS) and max(sent.values()) == 1, sent
    assert {p.status for p in posts} == {outbox.SENT} and all(p.message_ref for p in posts)
    print(
        f"outage {OUTAGE:.0f} s: {len(every)} commands, {len(taken)} stored, {len(told)} told to try again; "
        f"{relay.refused} connections refused; {len(posts)} posts ({at_the_cut} out at the cut), "
        "each sent once"
    )
    db.dispose()
