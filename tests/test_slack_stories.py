"""The README's three walk-throughs told twice, in the console and through Slack's payloads over
HTTP: they must leave the same rows and the same outbox, platform addresses aside."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import yaml
from sqlalchemy import text

from bot.config import parse_organisation_text
from bot.console.repl import run_console
from handlers import setup
from handlers.context import Context
from storage.database import Database
from storage.models import metadata
from tests.conftest import ROOT
from tests.fakes import Clock
from tests.slack_player import SlackPlayer
from tests.slack_world import slack_world
from tests.test_console import readme_block

STORIES = (("decision", "maria"), ("field", "jonas"), ("pulse", "maria"))
# Where the two tellings differ by nature: how each platform names people and places.
PLATFORM_TABLES = {
    "identity",
    "audiencetarget",
    "inboundevent",
    "groupmember",
    "schedulerlease",
    "schedulerrun",
}
DELIVERY_COLUMNS = {"message_ref", "claimed_by", "claimed_until", "sent_at", "attempts", "due_at"}


def organisations() -> tuple[str, str, dict[str, str], dict[str, str]]:
    """app.yaml as shipped (console channels), and the same organisation on Slack."""
    shipped = (ROOT / "app.yaml").read_text(encoding="utf-8")
    spec = yaml.safe_load(shipped)
    users = {key: f"U0{key.upper():0<9}"[:11] for key in spec["people"]}
    channels: dict[str, str] = {}
    for key, person in spec["people"].items():
        person["slack"] = users[key]
    for audience in spec["audiences"].values():
        slack_targets = []
        for target in audience["targets"]:
            channel = target.split(":", 1)[1]
            channels[channel] = channels.get(channel) or f"C0{len(channels) + 1:09d}"
            slack_targets.append(f"slack:{channels[channel]}")
        audience["targets"] = slack_targets
    return shipped, yaml.safe_dump(spec, allow_unicode=True, sort_keys=False), users, channels


def dump(db: Database, addresses: dict[str, str]) -> Rows:
    """Every row of every table, with console addresses put in Slack's terms."""
    found: Rows = {}
    with db.session() as session:
        for table in metadata.sorted_tables:
            if table.name in PLATFORM_TABLES:
                continue
            rows = []
            for row in session.execute(table.select().order_by(*table.primary_key.columns)):
                values = dict(row._mapping)
                if table.name == "person":
                    values.pop("home_platform")  # where each was first met: by nature not the same
                if table.name == "pulseanswer":
                    values.pop("id")  # random, so that the order of answers says nothing of who gave them
                if table.name == "outbox":
                    values = {k: v for k, v in values.items() if k not in DELIVERY_COLUMNS}
                    values["platform"] = "slack" if values["platform"] == "console" else values["platform"]
                    values["address"] = addresses.get(values["address"], values["address"])
                rows.append(values)
            found[table.name] = rows if table.name != "pulseanswer" else sorted(rows, key=repr)
    return found


def empty(db: Database) -> None:
    """Back to a freshly migrated database, ids starting at 1 again."""
    with db.session() as session:
        if db.engine.dialect.name == "postgresql":
            tables = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
            session.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
            return
        for table in reversed(metadata.sorted_tables):
            session.execute(table.delete())
        if session.execute(text("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'")).first():
            session.execute(text("DELETE FROM sqlite_sequence"))


Rows = dict[str, list[dict[str, Any]]]


def differences(expected: Rows, found: Rows) -> list[str]:
    """Each table whose rows differ, with the first differing row's differing columns."""
    said = []
    for table, rows in expected.items():
        if found[table] == rows:
            continue
        pairs = zip(rows, found[table], strict=False)
        first = next(((a, b) for a, b in pairs if a != b), ({}, {}))
        changed = {k: (v, first[1].get(k)) for k, v in first[0].items() if first[1].get(k) != v}
        said.append(f"{table}: {len(rows)} rows in the console, {len(found[table])} on Slack; {changed}")
    return said


def test_the_walk_throughs_leave_the_same_rows_in_the_console_and_on_slack(db: Database) -> None:
    shipped, on_slack, users, channels = organisations()

    console = Context(db=db, org=parse_organisation_text(shipped), clock=Clock())
    setup.apply(console)
    for story, person in STORIES:
        out = io.StringIO()
        asyncio.run(
            run_console(
                console, person, stdin=io.StringIO(readme_block(f"walkthrough-script {story}")), out=out
            )
        )
        assert "went wrong" not in out.getvalue()
    told_in_console = dump(db, {**channels, **users})

    empty(db)
    slack = Context(db=db, org=parse_organisation_text(on_slack), clock=Clock())
    setup.apply(slack)

    async def tell() -> None:
        async with slack_world(slack) as world:
            for key, person in slack.org.people.items():
                world.fake.users[users[key]] = {
                    "name": person.name,
                    "email": person.email or "",
                    "tz": person.timezone or "",
                }
            for story, person in STORIES:
                player = SlackPlayer(world, users, channels, users[person])
                await player.play(readme_block(f"walkthrough-script {story}"))

    asyncio.run(tell())
    told_on_slack = dump(db, {})

    assert told_on_slack["decision"] and told_on_slack["objection"] and told_on_slack["pulseanswer"]
    assert differences(told_in_console, told_on_slack) == []
