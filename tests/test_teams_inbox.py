"""Nothing acknowledged to Teams is lost (issue 17): a real `touchline serve`, Teams in the Emulator's
mode against the fake Bot Connector, killed (-9) or stopped (SIGTERM) in the middle of a burst of
*Got it* presses on a channel card, reactions to it and `objection …` messages; after a restart,
every activity answered 2xx is stored, once, and so is every other once the Bot Connector has
sent it again (the same activity, the same id)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientError, ClientSession, ClientTimeout, TCPConnector
from sqlmodel import col, select

from bot.config import parse_organisation_text
from handlers import inbound, setup, strategy
from handlers.context import Context
from storage.database import Database
from storage.models import Acknowledgement, Identity, InboundEvent, Objection
from tests import teams_fake
from tests.db_proxy import relay_to
from tests.teams_fake import FakeConnector, Sent, User
from tests.test_hostile_payloads import started
from tests.test_inbox import TOUCHLINE, announced

READY = re.compile(r"http://127\.0\.0\.1:(\d+)/ in your browser")
TEAM = "19:inboxteam00000000000000000000000@thread.tacv2"
LEAD = User("0d1e4c6a-0000-4b9e-9e9f-73e0c02bf4ea", "Lena Leader")
ORG = f"""\
organisation: {{name: Teams Inbox Co, timezone: Europe/Berlin}}
people:
  boss: {{name: Bea Boss}}
roles: {{leader: [boss]}}
audiences:
  field: {{targets: ["teams:{TEAM}"], members: [boss]}}
reactions:
  heart: got-it
"""
BURST = int(os.environ.get("TOUCHLINE_BURST", "300"))  # presses, reactions and messages, a third each


@dataclass
class Burst:
    """What Teams was answered 2xx for: who pressed, who reacted, what was said."""

    answered: dict[str, set[str]] = field(
        default_factory=lambda: {"press": set(), "react": set(), "say": set()}
    )
    refused: Counter[int] = field(default_factory=Counter)  # status (0: no answer) -> how many
    unanswered: list[dict[str, Any]] = field(default_factory=list)  # what the Connector sends again

    @property
    def total(self) -> int:
        return sum(len(v) for v in self.answered.values())


@contextmanager
def teams_touchline(
    tmp_path: Path, url: str, name: str, **settings: str
) -> Iterator[subprocess.Popen[bytes]]:
    """`touchline serve` with Teams in the Emulator's mode and nothing else, once it listens."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "MICROSOFT_", "TEAMS_"))},
        "DATABASE_URL": url,
        "TOUCHLINE_CONFIG": str(tmp_path / "app.yaml"),
        "TOUCHLINE_SECRET_KEY": "inbox-tests-only-key-" + "0" * 16,
        "PORT": "0",
        "TEAMS_EMULATOR": "1",
        "LOG_LEVEL": "INFO",
        **settings,
    }
    out, err = tmp_path / f"{name}.out", tmp_path / f"{name}.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        server = subprocess.Popen(
            [TOUCHLINE, "serve", "--no-console"], cwd=tmp_path, env=env, stdout=stdout, stderr=stderr
        )
        try:
            deadline = time.monotonic() + 30
            while (found := READY.search(out.read_text(errors="replace"))) is None:
                assert server.poll() is None and time.monotonic() < deadline, err.read_text(errors="replace")[
                    -3000:
                ]
                time.sleep(0.05)
            server.port = int(found.group(1))  # type: ignore[attr-defined]
            yield server
        finally:
            if server.poll() is None:
                server.kill()
            server.wait(timeout=30)


async def post(http: ClientSession, port: int, body: dict[str, Any]) -> int:
    async with http.post(f"http://127.0.0.1:{port}/api/messages", json=body) as response:
        await response.read()
        return response.status


def rep(i: int) -> User:
    return User(f"0d1e4c6a-{i:04d}-4b9e-9e9f-73e0c02bf4ea", f"Rep {i}")


def activities(fake: FakeConnector, card: Sent) -> list[tuple[str, str, dict[str, Any]]]:
    """BURST activities as Teams sends them: (kind, what is stored for it, the activity)."""
    [content] = card.cards()
    got_it = next(a["data"] for a in content["actions"] if a["data"].get("action_id") == strategy.ACK)
    made: list[tuple[str, str, dict[str, Any]]] = []
    for i in range(BURST):
        who = rep(i + 1)
        match i % 3:
            case 0:  # Got it, pressed on the card in the channel (Action.Submit: a message with `value`)
                body = teams_fake.activity(fake, who, channel=TEAM, text="", value=got_it, replyToId=card.id)
                body["conversation"]["id"] = f"{TEAM};messageid={card.id}"
                made.append(("press", who.aad, body))
            case 1:  # ❤️ on the card
                body = teams_fake.activity(fake, who, channel=TEAM, replyToId=card.id, type="messageReaction")
                body.pop("text", None)
                body["reactionsAdded"] = [{"type": "heart"}]
                made.append(("react", who.aad, body))
            case _:  # `objection …` in the person's 1:1 chat with the bot
                text = f"teams burst objection number {i}"
                made.append(("say", text, teams_fake.activity(fake, who, text=f"objection {text}")))
    return made


async def burst(port: int, made: list[tuple[str, str, dict[str, Any]]], *, stop: Callable[[], None]) -> Burst:
    """All of `made`, twenty at a time; `stop()` once half of them were answered 2xx."""
    result = Burst()
    queue = list(reversed(made))
    stopped = False

    async def sender(http: ClientSession) -> None:
        nonlocal stopped
        while queue:
            kind, what, body = queue.pop()
            try:
                status = await post(http, port, body)
            except (TimeoutError, OSError, ClientError):
                status = 0
            if 200 <= status < 300:
                result.answered[kind].add(what)
            else:
                result.refused[status] += 1
                result.unanswered.append(body)
            if not stopped and result.total >= len(made) // 2:
                stopped = True
                stop()

    async with ClientSession(timeout=ClientTimeout(total=15), connector=TCPConnector(limit=20)) as http:
        await asyncio.gather(*(sender(http) for _ in range(20)))
    return result


def the_card(fake: FakeConnector, timeout: float = 20) -> Sent:
    """The decision's card, once the delivery worker posted it to the team's channel."""
    deadline = time.monotonic() + timeout
    while not (posted := [s for s in fake.to(TEAM, "POST") if s.cards() and not s.reply_to]):
        assert time.monotonic() < deadline, "the decision was never posted to the channel"
        time.sleep(0.05)
    return posted[0]


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "sigterm"])
def test_a_burst_acknowledged_to_teams_survives_a_kill_or_a_stop_exactly_once(
    database_url: str, tmp_path: Path, how: signal.Signals
) -> None:
    (tmp_path / "app.yaml").write_text(ORG)
    db = Database.from_url(database_url)
    ctx = Context(db=db, org=parse_organisation_text(ORG))
    setup.apply(ctx)
    with started(teams_fake.fake_connector()) as (fake, _):
        fake.rosters[TEAM] = [LEAD.roster_entry()]
        with teams_touchline(tmp_path, database_url, "first") as first:
            port = first.port  # type: ignore[attr-defined]

            async def install() -> int:
                async with ClientSession() as http:
                    return await post(http, port, teams_fake.installed(fake, LEAD, team=TEAM))

            assert asyncio.run(install()) in (200, 201)
            announced(ctx)
            made = activities(fake, the_card(fake))
            stopped_at: list[float] = []

            def stop() -> None:
                stopped_at.append(time.monotonic())
                os.kill(first.pid, how)

            sent = asyncio.run(burst(port, made, stop=stop))
            first.wait(timeout=30)
            gone = time.monotonic() - stopped_at[0]
        before = stored(db)
        with teams_touchline(tmp_path, database_url, "second") as second:
            # Served again (what was answered is stored already: Teams has no inbox to resume), and
            # the Bot Connector sends again what got no answer, some of it stored already.
            async def again() -> list[int]:
                async with ClientSession(timeout=ClientTimeout(total=30)) as http:
                    at = second.port  # type: ignore[attr-defined]
                    hello = await post(http, at, teams_fake.activity(fake, LEAD, text="help"))
                    return [hello, *[await post(http, at, body) for body in sent.unanswered]]

            resent = asyncio.run(again())
            assert set(resent) <= {200, 201}, Counter(resent)
    log = (tmp_path / "first.err").read_text(errors="replace") + (tmp_path / "second.err").read_text(
        errors="replace"
    )
    assert "Traceback" not in log, log[-3000:]
    assert sent.total >= BURST // 2
    for kind, kept in (("press", before[0]), ("react", before[0]), ("say", before[1])):
        lost = sent.answered[kind] - set(kept)
        assert not lost, f"{len(lost)} of {len(sent.answered[kind])} {kind}es answered 2xx were not stored"
    stored_unanswered = (set(before[0]) | set(before[1])) - set().union(*sent.answered.values())
    acknowledged, said = stored(db)
    every = {kind: {what for k, what, _ in made if k == kind} for kind in ("press", "react", "say")}
    assert set(acknowledged) == every["press"] | every["react"], "an activity sent again was not stored"
    assert set(said) == every["say"], "a message sent again was not stored"
    assert max(said.values()) == 1 and max(acknowledged.values()) == 1, said.most_common(3)
    with db.session() as session:
        reactions = len(
            session.exec(
                select(InboundEvent).where(
                    InboundEvent.platform == "teams", ~col(InboundEvent.event_id).startswith("activity:")
                )
            ).all()
        )
    if how == signal.SIGTERM:
        assert first.returncode == 0 and gone < 10, (first.returncode, gone)
    engine = database_url.split(":")[0].split("+")[0]
    print(  # the figures, for `pytest -s`
        f"teams on {engine}, {how.name}: {sent.total} answered 2xx ({len(sent.answered['press'])} presses, "
        f"{len(sent.answered['react'])} reactions, {len(sent.answered['say'])} messages), "
        f"not: {dict(sent.refused)}; exited {gone:.2f} s after the signal; stored {len(acknowledged)} "
        f"acknowledgements, {reactions} reaction events and {len(said)} objections "
        f"({len(stored_unanswered)} stored though unanswered, then sent again, "
        f"{len(set(before[1]) - sent.answered['say'])} of them messages)"
    )
    db.dispose()


def stored(db: Database) -> tuple[Counter[str], Counter[str]]:
    """Who acknowledged (by their Teams id), and the objections' texts, each with how many times."""
    with db.session() as session:
        acknowledged = Counter(
            session.exec(
                select(Identity.external_id)
                .join(Acknowledgement, col(Acknowledgement.person_id) == col(Identity.person_id))
                .where(Identity.platform == "teams")
            ).all()
        )
        said = Counter(session.exec(select(Objection.text)).all())
    return acknowledged, said


@pytest.mark.postgres
def test_a_teams_message_while_the_database_is_away_is_told_to_try_again_and_nothing_is_half_stored(
    postgres_url: str, tmp_path: Path
) -> None:
    """Through tests/db_proxy.py's relay, cut: every session killed, new ones refused."""
    (tmp_path / "app.yaml").write_text(ORG)
    with (
        relay_to() as relay,
        started(teams_fake.fake_connector()) as (fake, _),
        teams_touchline(tmp_path, relay.url(postgres_url), "serve") as server,
    ):
        port = server.port  # type: ignore[attr-defined]

        async def say(user: User, text: str) -> int:
            async with ClientSession(timeout=ClientTimeout(total=15)) as http:
                return await post(http, port, teams_fake.activity(fake, user, text=f"objection {text}"))

        before, during, after = rep(1), rep(2), rep(3)
        assert asyncio.run(say(before, "said before the outage")) in (200, 201)
        relay.down()
        answered = asyncio.run(say(during, "said during the outage"))
        relay.up()
        assert asyncio.run(say(after, "said after the outage")) in (200, 201)
    log = (tmp_path / "serve.err").read_text(errors="replace")
    assert "Traceback" not in log, log[-3000:]
    assert answered in (200, 201) and relay.refused > 0
    told = [str(s.activity.get("text") or "") for s in fake.to(during.personal)]
    assert told == [inbound.TRY_AGAIN], told
    db = Database.from_url(postgres_url)
    with db.session() as session:
        said = sorted(session.exec(select(Objection.text)).all())
    db.dispose()
    assert said == ["said after the outage", "said before the outage"]


def test_an_activity_the_bot_connector_delivers_twice_is_done_once_and_the_second_is_told_so(
    database_url: str, tmp_path: Path
) -> None:
    """The Bot Connector sends again what it got no answer to, with the same activity id: a
    message, a button pressed on a card and a form submitted are each done once; a form sent
    back with fields to fix is not done, and its corrected submit (a new activity) is."""
    (tmp_path / "app.yaml").write_text(ORG)
    said, raced, filled = rep(1), rep(2), rep(3)
    with (
        started(teams_fake.fake_connector()) as (fake, _),
        teams_touchline(tmp_path, database_url, "serve") as server,
    ):
        port = server.port  # type: ignore[attr-defined]

        def told(user: User) -> list[str]:
            return [str(s.activity.get("text") or "") for s in fake.to(user.personal)]

        async def twice(body: dict[str, Any], *, at_once: bool = False) -> list[int]:
            async with ClientSession(timeout=ClientTimeout(total=15)) as http:
                if at_once:
                    return list(await asyncio.gather(post(http, port, body), post(http, port, body)))
                return [await post(http, port, body), await post(http, port, body)]

        def press(user: User, sent: Sent, title: str) -> dict[str, Any]:
            [card] = sent.cards()
            data = next(a["data"] for a in card["actions"] if a["title"] == title)
            return teams_fake.activity(fake, user, text="", value=data, replyToId=sent.id)

        # A message, and the receipt card's Withdraw on another objection.
        retried = teams_fake.activity(fake, said, text="objection retried twice")
        assert asyncio.run(twice(retried)) == [201] * 2
        assert told(said)[1:] == [inbound.ALREADY], told(said)
        asyncio.run(twice(teams_fake.activity(fake, said, text="objection withdrawn twice")))
        receipt = [s for s in fake.to(said.personal) if s.cards()][-1]
        assert asyncio.run(twice(press(said, receipt, "Withdraw"))) == [201] * 2
        assert "is withdrawn" in told(said)[-2] and told(said)[-1] == inbound.ALREADY, told(said)
        # Both deliveries at once (a redelivery while the first is still being done), from someone
        # Touchline knows already (a new person's first two activities at once are another story).
        asyncio.run(twice(teams_fake.activity(fake, raced, text="objection mine")))
        body = teams_fake.activity(fake, raced, text="objection raced against itself")
        assert asyncio.run(twice(body, at_once=True)) == [201] * 2
        answers = told(raced)[2:]
        assert len(answers) == 2 and answers.count(inbound.ALREADY) == 1, answers
        # The form: sent back for its fields (twice: still not done), then filled in, twice.
        asyncio.run(twice(teams_fake.activity(fake, filled, text="objection")))
        form = next(s for s in fake.to(filled.personal) if s.cards())
        empty = press(filled, form, "Log it")
        empty["value"] = {**empty["value"], "text": "", "competitor": ""}  # Teams sends every input
        assert asyncio.run(twice(empty)) == [201] * 2
        assert [t.startswith("Please fix these") for t in told(filled)[-2:]] == [True, True], told(filled)
        corrected = press(filled, form, "Log it")
        corrected["value"] = {**corrected["value"], "text": "objection from a form, submitted twice"}
        assert asyncio.run(twice(corrected)) == [201] * 2
        assert told(filled)[-1] == inbound.ALREADY, told(filled)
    log = (tmp_path / "serve.err").read_text(errors="replace")
    assert "Traceback" not in log, log[-3000:]
    db = Database.from_url(database_url)
    with db.session() as session:
        stored = sorted(session.exec(select(Objection.text)).all())
    db.dispose()
    assert stored == [
        "objection from a form, submitted twice",
        "raced against itself",
        "retried twice",
    ], stored
