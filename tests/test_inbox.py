"""Nothing acknowledged is lost (issue 17): a real `touchline serve` killed (-9) or stopped (SIGTERM)
in the middle of a burst of presses, reactions and commands; after a restart, everything Slack was
answered 200 for is stored, once."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import ClientError, ClientSession, ClientTimeout, TCPConnector
from sqlmodel import col, select

from bot.config import parse_organisation_text
from handlers import directory, inbound, setup, strategy
from handlers.context import Context
from storage import inbox
from storage.database import Database
from storage.models import Acknowledgement, Decision, Identity, Objection, Outbox
from tests import slack_fake
from tests.test_hostile_payloads import started

TOUCHLINE = str(Path(sys.executable).with_name("touchline"))
ADDRESS = re.compile(r"serves Slack at http://127\.0\.0\.1:(\d+)/slack/events")
CHANNEL = "C0SALES0001"
ORG = f"""\
organisation: {{name: Inbox Co, timezone: Europe/Berlin}}
people:
  boss: {{name: Bea Boss, slack: U0BOSS0001}}
roles: {{leader: [boss]}}
audiences:
  field: {{targets: ["slack:{CHANNEL}"], members: [boss]}}
reactions:
  white_check_mark: got-it
"""
BURST = int(os.environ.get("TOUCHLINE_BURST", "300"))  # presses, reactions and commands, a third each


@dataclass
class Burst:
    """What was sent, and what Slack was answered 200 for."""

    answered: dict[str, set[str]] = field(
        default_factory=lambda: {"press": set(), "react": set(), "say": set()}
    )
    refused: int = 0

    @property
    def total(self) -> int:
        return sum(len(v) for v in self.answered.values())


@contextmanager
def touchline(
    tmp_path: Path,
    url: str,
    fake: slack_fake.FakeSlack,
    name: str,
    *,
    command: tuple[str, ...] = ("serve", "--no-console"),
    ready: re.Pattern[str] = ADDRESS,
    **settings: str,
) -> Iterator[subprocess.Popen[bytes]]:
    """`touchline <command>` against the fake Slack, started once it printed `ready`."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "MICROSOFT_", "TEAMS_"))},
        "DATABASE_URL": url,
        "TOUCHLINE_CONFIG": str(tmp_path / "app.yaml"),
        "TOUCHLINE_SECRET_KEY": "inbox-tests-only-key-" + "0" * 16,
        "PORT": "0",
        "SLACK_BOT_TOKEN": slack_fake.TOKEN,
        "SLACK_SIGNING_SECRET": slack_fake.SECRET,
        "SLACK_API_URL": fake.base_url,
        "LOG_LEVEL": "INFO",
        **settings,
    }
    out, err = tmp_path / f"{name}.out", tmp_path / f"{name}.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        server = subprocess.Popen([TOUCHLINE, *command], cwd=tmp_path, env=env, stdout=stdout, stderr=stderr)
        try:
            deadline = time.monotonic() + 30
            while (found := ready.search(out.read_text(errors="replace"))) is None:
                assert server.poll() is None and time.monotonic() < deadline, err.read_text(errors="replace")[
                    -3000:
                ]
                time.sleep(0.05)
            server.port = int(found.group(1)) if found.groups() else 0  # type: ignore[attr-defined]
            yield server
        finally:
            if server.poll() is None:
                server.kill()
            server.wait(timeout=30)


def announced(ctx: Context) -> Decision:
    boss = directory.console_actor(ctx, "boss")
    reply = inbound.command(ctx, boss, "strategy", "")
    assert reply.form is not None
    values = {
        **reply.form.state,
        "title": "Mid-market first",
        "decision": "From January we lead with the mid-market tier.",
        "why": "Win rates in mid-market are twice enterprise.",
        "reps_may": "offer up to 15% on 3-year deals",
        "reps_may_not": "discount the platform fee",
        "effective_on": "2026-12-01",
        "review_on": "",
        "audiences": ["field"],
    }
    assert not inbound.submit(ctx, boss, reply.form.form_id, values).errors
    with ctx.db.session() as session:
        return session.exec(select(Decision)).one()


def posted_ts(db: Database, decision: Decision, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with db.session() as session:
            ref = session.exec(
                select(Outbox.message_ref).where(
                    Outbox.subject == f"decision:{decision.id}", col(Outbox.message_ref).is_not(None)
                )
            ).first()
        if ref:
            return str(ref)
        time.sleep(0.1)
    raise AssertionError("the decision was never posted")


async def burst(
    port: int, fake: slack_fake.FakeSlack, decision: Decision, ts: str, *, stop: Callable[[int], None]
) -> Burst:
    """BURST requests, twenty at a time; `stop(n)` is called once n were answered (half of them)."""
    result = Burst()
    url = f"http://127.0.0.1:{port}/slack/events"
    requests: list[tuple[str, str, str, str]] = []
    for i in range(BURST):
        who = f"U0B{i:07d}"
        match i % 3:
            case 0:
                body = slack_fake.button(
                    strategy.ACK, str(decision.id), who, fake=fake, channel=CHANNEL, ts=ts
                )
                requests.append(("press", who, body, "application/x-www-form-urlencoded"))
            case 1:
                fields = {
                    "type": "reaction_added",
                    "user": who,
                    "reaction": "white_check_mark",
                    "item": {"type": "message", "channel": CHANNEL, "ts": ts},
                }
                body = slack_fake.event("reaction_added", fields, event_id=f"Ev{i:010d}")
                requests.append(("react", who, body, "application/json"))
            case _:
                text = f"burst objection number {i}"
                body = slack_fake.slash_command("objection", text, who, fake=fake, channel=CHANNEL)
                requests.append(("say", text, body, "application/x-www-form-urlencoded"))
    queue: asyncio.Queue[tuple[str, str, str, str]] = asyncio.Queue()
    for request in requests:
        queue.put_nowait(request)
    stopped = False

    async def sender(http: ClientSession) -> None:
        nonlocal stopped
        while not queue.empty():
            kind, what, body, content_type = queue.get_nowait()
            headers = {"Content-Type": content_type, **slack_fake.sign(body)}
            try:
                async with http.post(url, data=body.encode(), headers=headers) as response:
                    await response.read()
                    if response.status == 200:
                        result.answered[kind].add(what)
                    else:
                        result.refused += 1
            except (TimeoutError, OSError, ClientError):
                result.refused += 1
            if not stopped and result.total >= BURST // 2:
                stopped = True
                stop(result.total)

    async with ClientSession(timeout=ClientTimeout(total=10), connector=TCPConnector(limit=20)) as http:
        await asyncio.gather(*(sender(http) for _ in range(20)))
    return result


def settled(db: Database, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with db.session() as session:
            if inbox.pending(session) == 0:
                return
        time.sleep(0.2)
    raise AssertionError("the inbox was not worked off after the restart")


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "sigterm"])
def test_a_burst_acknowledged_to_slack_survives_a_kill_or_a_stop_exactly_once(
    database_url: str, tmp_path: Path, how: signal.Signals
) -> None:
    (tmp_path / "app.yaml").write_text(ORG)
    db = Database.from_url(database_url)
    ctx = Context(db=db, org=parse_organisation_text(ORG))
    setup.apply(ctx)
    with started(slack_fake.fake_slack()) as (fake, _):
        # Stopped, it gives itself half a second to finish (SHUTDOWN_GRACE), so that most of what was
        # received is left: handed back to the inbox, not cancelled into nothing.
        with touchline(tmp_path, database_url, fake, "first", SHUTDOWN_GRACE="0.5") as first:
            decision = announced(ctx)
            ts = posted_ts(db, decision)

            stopped_at: list[float] = []

            def stop(answered: int) -> None:
                stopped_at.append(time.monotonic())
                os.kill(first.pid, how)

            sent = asyncio.run(burst(first.port, fake, decision, ts, stop=stop))  # type: ignore[attr-defined]
            first.wait(timeout=30)
            gone = time.monotonic() - stopped_at[0]
        with db.session() as session:
            left = inbox.pending(session)
        with touchline(tmp_path, database_url, fake, "second"):
            settled(db)
    log = (tmp_path / "first.err").read_text(errors="replace") + (tmp_path / "second.err").read_text(
        errors="replace"
    )
    assert "Traceback" not in log, log[-3000:]
    assert sent.total >= BURST // 2
    with db.session() as session:
        acknowledged = set(
            session.exec(
                select(Identity.external_id)
                .join(Acknowledgement, col(Acknowledgement.person_id) == col(Identity.person_id))
                .where(Identity.platform == "slack")
            ).all()
        )
        said = list(session.exec(select(Objection.text)).all())
    for kind in ("press", "react"):
        lost = sent.answered[kind] - acknowledged
        assert not lost, f"{len(lost)} of {len(sent.answered[kind])} answered {kind}es were not stored"
    lost = sent.answered["say"] - set(said)
    assert not lost, f"{len(lost)} of {len(sent.answered['say'])} answered commands were not stored"
    assert len(said) == len(set(said)), "an objection was stored twice"
    if how == signal.SIGTERM:
        assert first.returncode == 0 and gone < 10, (first.returncode, gone)
    print(  # the figures, for `pytest -s`
        f"{how.name}: {sent.total} answered 200 ({len(sent.answered['press'])} presses, "
        f"{len(sent.answered['react'])} reactions, {len(sent.answered['say'])} commands), "
        f"{sent.refused} not; {left} left in the inbox; exited {gone:.2f} s after the signal; "
        f"stored {len(acknowledged)} acknowledgements and {len(said)} objections"
    )
    db.dispose()
