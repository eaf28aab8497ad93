"""The PostgreSQL server itself goes down and comes back (issue 17): a real `touchline serve` on a
private PostgreSQL (tests/private_postgres.py) that the test stops as a crash would
(`pg_ctl stop -m immediate`) while it delivers a decision to thirty channels and takes a stream of
presses, reactions and slash commands; TOUCHLINE_OUTAGE seconds later the server is started again
and recovers from its WAL."""

from __future__ import annotations

import asyncio
import json
import os
import time
import urllib.parse
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import ClientError, ClientSession, ClientTimeout, web
from aiohttp.test_utils import TestServer
from sqlmodel import col, func, or_, select

from bot.config import parse_organisation_text
from handlers import inbound, setup, strategy
from handlers.context import Context
from storage import inbox, outbox
from storage.database import Database, migrate
from storage.models import Acknowledgement, Decision, Identity, Objection, Outbox
from tests import slack_fake
from tests.private_postgres import Cluster, private_postgres
from tests.test_hostile_payloads import started
from tests.test_inbox import announced, touchline

OUTAGE = float(os.environ.get("TOUCHLINE_OUTAGE", "6"))  # seconds the server stays down
RATE = 25  # requests a second, presses, reactions and commands in turn
BEFORE, AFTER = 1.5, 3.0  # seconds of the stream before the stop and after the start
FORM = "application/x-www-form-urlencoded"
CHANNELS = [f"C0RST{n:06d}" for n in range(30)]
ORG = f"""\
organisation: {{name: Restart Co, timezone: Europe/Berlin}}
people:
  boss: {{name: Bea Boss, slack: U0BOSS0001}}
roles: {{leader: [boss]}}
audiences:
  field: {{targets: [{", ".join(f'"slack:{c}"' for c in CHANNELS)}], members: [boss]}}
reactions:
  white_check_mark: got-it
# Five a second for the app, so that the thirty posts take six seconds and the stop meets them.
delivery: {{slack: {{per_conversation: [1/1s], per_app: [5/1s]}}}}
"""


@dataclass
class Hooks:
    """Where presses' `response_url`s point: what Touchline said through each, by its path."""

    base_url: str = ""
    said: dict[str, list[str]] = field(default_factory=dict)


@asynccontextmanager
async def hooks() -> AsyncIterator[Hooks]:
    recorded = Hooks()

    async def heard(request: web.Request) -> web.Response:
        body = await request.json()
        recorded.said.setdefault(request.match_info["who"], []).append(json.dumps(body))
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/press/{who}", heard)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server(access_log=None)
    recorded.base_url = f"http://127.0.0.1:{server.port}"
    try:
        yield recorded
    finally:
        await server.close()


@dataclass
class Sent:
    kind: str  # press, react, say
    what: str  # the user (press, react) or the text (say)
    began: float = 0.0
    ended: float = 0.0
    status: int = 0
    answer: str = ""


@dataclass
class Outage:
    down: float = 0.0  # time.monotonic() once the server was stopped
    starting: float = 0.0  # when it was being started again
    sending: int = 0  # deliveries claimed and not yet recorded, just before the stop
    posted: int = 0  # the decision's channel posts Slack had by then


@dataclass
class Target:
    """Where the stream goes: the server's port, the fakes, and the decision's post it presses and
    reacts to."""

    port: int
    fake: slack_fake.FakeSlack
    hooked: Hooks
    decision: Decision
    channel: str
    ts: str

    def request(self, i: int) -> tuple[Sent, str, str]:
        """The i-th request of the stream (a press, a reaction or a command), its body and type."""
        who = f"U0R{i:07d}"
        match i % 3:
            case 0:
                body = slack_fake.button(
                    strategy.ACK, str(self.decision.id), who, fake=self.fake, channel=self.channel, ts=self.ts
                )
                payload = json.loads(urllib.parse.parse_qs(body)["payload"][0])
                payload["response_url"] = f"{self.hooked.base_url}/press/{who}"  # one for each press
                return Sent("press", who), slack_fake.interaction(payload), FORM
            case 1:
                fields = {
                    "type": "reaction_added",
                    "user": who,
                    "reaction": "white_check_mark",
                    "item": {"type": "message", "channel": self.channel, "ts": self.ts},
                }
                body = slack_fake.event("reaction_added", fields, event_id=f"Ev{i:010d}")
                return Sent("react", who), body, "application/json"
            case _:
                text = f"restart objection number {i}"
                body = slack_fake.slash_command("objection", text, who, fake=self.fake, channel=self.channel)
                return Sent("say", text), body, FORM


async def stream(target: Target, stop: asyncio.Event) -> list[Sent]:
    """RATE requests a second until `stop`, each on its own (none waits for another's answer)."""
    url = f"http://127.0.0.1:{target.port}/slack/events"
    sent: list[Sent] = []
    async with ClientSession(timeout=ClientTimeout(total=10)) as http:

        async def one(i: int) -> None:
            record, body, content_type = target.request(i)
            record.began = time.monotonic()
            sent.append(record)
            headers = {"Content-Type": content_type, **slack_fake.sign(body)}
            try:
                async with http.post(url, data=body.encode(), headers=headers) as response:
                    record.status, record.answer = response.status, await response.text()
            except (ClientError, TimeoutError, OSError) as error:
                record.answer = type(error).__name__
            record.ended = time.monotonic()

        tasks, i = [], 0
        while not stop.is_set():
            tasks.append(asyncio.create_task(one(i)))
            i += 1
            await asyncio.sleep(1 / RATE)
        await asyncio.gather(*tasks)
    return sent


def sending(db: Database) -> int:
    with db.session() as session:
        return int(session.exec(select(func.count()).where(col(Outbox.status) == outbox.SENDING)).one())


async def through_a_restart(target: Target, pg: Cluster, db: Database) -> tuple[list[Sent], Outage]:
    """The stream, with the server crashed BEFORE seconds in and started OUTAGE seconds later."""
    stop, outage = asyncio.Event(), Outage()
    sender = asyncio.create_task(stream(target, stop))
    try:
        await asyncio.sleep(BEFORE)
        outage.sending = await asyncio.to_thread(sending, db)
        outage.posted = len({c["channel"] for c in target.fake.called("chat.postMessage")} & set(CHANNELS))
        await asyncio.to_thread(pg.crash)
        outage.down = time.monotonic()
        await asyncio.sleep(OUTAGE)
        outage.starting = time.monotonic()
        await asyncio.to_thread(pg.start)
        await asyncio.sleep(AFTER)
    finally:
        stop.set()
        sent = await sender
    return sent, outage


def posted(db: Database, decision: Decision, timeout: float = 20) -> tuple[str, str]:
    """The channel and `ts` of the decision's first post that is out."""
    deadline = time.monotonic() + timeout
    while True:
        with db.session() as session:
            row = session.exec(
                select(Outbox).where(
                    Outbox.subject == f"decision:{decision.id}", col(Outbox.message_ref).is_not(None)
                )
            ).first()
        if row is not None and row.message_ref:
            return row.address, row.message_ref
        assert time.monotonic() < deadline, "the decision was never posted"
        time.sleep(0.1)


async def health(port: int) -> int:
    async with (
        ClientSession(timeout=ClientTimeout(total=10)) as http,
        http.get(f"http://127.0.0.1:{port}/healthz") as response,
    ):
        return response.status


def settled(db: Database, subject: str, timeout: float = 40) -> None:
    """Nothing owed: the inbox worked off, none of `subject`'s deliveries pending, none being sent."""
    deadline = time.monotonic() + timeout
    while True:
        with db.session() as session:
            # (The sender's progress message is for the console here, which this server does not serve.)
            owed = session.exec(
                select(Outbox).where(
                    or_(
                        col(Outbox.status) == outbox.SENDING,
                        (col(Outbox.status) == outbox.PENDING) & (col(Outbox.subject) == subject),
                    )
                )
            ).all()
            waiting = inbox.pending(session)
        if not owed and waiting == 0:
            return
        assert time.monotonic() < deadline, (
            f"still owed after the restart: {waiting} in the inbox, and "
            + "; ".join(
                f"{o.id} {o.kind} {o.status} {o.subject} to {o.address} ({o.attempts} tries, due {o.due_at}, "
                f"{o.error})"
                for o in owed
            )
        )
        time.sleep(0.2)


def test_a_restart_of_the_postgresql_server_mid_burst_and_mid_delivery_loses_nothing_and_sends_nothing_twice(
    tmp_path: Path,
) -> None:
    (tmp_path / "app.yaml").write_text(ORG)
    with private_postgres() as pg:
        migrate(pg.url)
        db = Database.from_url(pg.url)
        ctx = Context(db=db, org=parse_organisation_text(ORG))
        setup.apply(ctx)
        with (
            started(slack_fake.fake_slack()) as (fake, _),
            started(hooks()) as (hooked, _),
            touchline(tmp_path, pg.url, fake, "serve") as server,
        ):
            port = server.port  # type: ignore[attr-defined]
            decision = announced(ctx)
            channel, ts = posted(db, decision)
            deadline = time.monotonic() + 20
            while len(fake.called("chat.postMessage")) < 3:  # under way
                assert time.monotonic() < deadline, "the decision's delivery did not start"
                time.sleep(0.05)
            target = Target(port, fake, hooked, decision, channel, ts)
            sent, outage = asyncio.run(through_a_restart(target, pg, db))
            settled(db, f"decision:{decision.id}")
            assert asyncio.run(health(port)) == 200
        log = (tmp_path / "serve.err").read_text(errors="replace")
        assert "Traceback" not in log, log[-3000:]
        with db.session() as session:
            acknowledged = Counter(
                session.exec(
                    select(Identity.external_id)
                    .join(Acknowledgement, col(Acknowledgement.person_id) == col(Identity.person_id))
                    .where(Identity.platform == "slack")
                ).all()
            )
            said = Counter(session.exec(select(Objection.text)).all())
            posts = session.exec(
                select(Outbox).where(Outbox.subject == f"decision:{decision.id}", Outbox.kind == outbox.POST)
            ).all()
        db.dispose()

    # Every request was answered, and in words a person can act on: nothing for Slack to show as
    # dispatch_failed (a 5xx, a timeout) but a reaction's 503, which Slack retries.
    allowed = {"press": {200}, "say": {200}, "react": {200, 503}}
    odd = [(s.kind, s.status, s.answer[:80]) for s in sent if s.status not in allowed[s.kind]]
    assert not odd, odd[:10]
    told = {s.what for s in sent if s.kind == "say" and inbound.TRY_AGAIN in s.answer}
    told |= {
        s.what
        for s in sent
        if s.kind == "press" and any(inbound.TRY_AGAIN in t for t in hooked.said.get(s.what, []))
    }
    assert all(s.answer == "" or s.what in told for s in sent if s.kind == "say"), "a command got neither"
    taken = {s.what for s in sent if s.status == 200 and s.what not in told}
    down = [s for s in sent if outage.down < s.began and s.ended < outage.starting]
    assert down and all(s.what in told or s.status == 503 for s in down), [
        (s.kind, s.status, s.answer[:80]) for s in down if s.what not in told and s.status != 503
    ][:10]

    # Everything answered 200 and not "try again" is stored, once; nothing is stored that was not sent.
    for kind, stored in (("press", acknowledged), ("react", acknowledged), ("say", said)):
        answered = {s.what for s in sent if s.kind == kind and s.what in taken}
        lost = answered - set(stored)
        assert not lost, (
            f"{len(lost)} of {len(answered)} answered {kind}es were not stored: {sorted(lost)[:5]}"
        )
    assert set(said) <= {s.what for s in sent if s.kind == "say"} and max(said.values()) == 1, (
        said.most_common(3)
    )
    assert max(acknowledged.values()) == 1

    # Each channel's post is out and recorded (none left "sending"); sent twice at most what was in flight.
    per_channel = Counter(c["channel"] for c in fake.called("chat.postMessage") if c["channel"] in CHANNELS)
    twice = sum(n - 1 for n in per_channel.values())
    assert 0 < outage.posted < len(CHANNELS), f"stopped with {outage.posted} posts out: not mid-delivery"
    assert sorted(per_channel) == sorted(CHANNELS) and twice <= outage.sending, (per_channel, outage.sending)
    assert {p.status for p in posts} == {outbox.SENT} and all(p.message_ref for p in posts)
    also = len(told & (set(said) | set(acknowledged)))
    print(  # the figures, for `pytest -s`
        f"restart after {OUTAGE:.0f} s down: {len(sent)} requests ({len(down)} while down), "
        f"{len(taken)} taken, "
        f"{len(told)} told to try again ({also} of them stored all the same), "
        f"{sum(s.status == 503 for s in sent)} reactions answered 503; stored {len(acknowledged)} "
        f"acknowledgements and {len(said)} objections; {len(posts)} posts ({outage.posted} out at the stop), "
        f"{twice} sent twice "
        f"({outage.sending} in flight at the stop); {len(fake.called('chat.update'))} card updates"
    )
