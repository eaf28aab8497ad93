"""The README's walk-throughs told in the console and on a platform, and the rows each leaves."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable, Iterator
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
from tests.test_console import readme_block

Rows = dict[str, list[dict[str, Any]]]
STORIES = (("decision", "maria"), ("field", "jonas"), ("pulse", "maria"))
# Where the two tellings differ by nature: how each platform names people and places.
PLATFORM_TABLES = {
    "identity",
    "audiencetarget",
    "inboundevent",
    "inboxitem",  # the transport: Slack's requests kept until done, which the console needs not
    "groupmember",
    "schedulerlease",
    "schedulerrun",
    "conversation",
    "rostermember",
}
DELIVERY_COLUMNS = {"message_ref", "claimed_by", "claimed_until", "sent_at", "attempts", "due_at"}


def organisations(
    platform: str, user_id: Callable[[str], str], channel_id: Callable[[int], str]
) -> tuple[str, str, dict[str, str], dict[str, str]]:
    """app.yaml as shipped (console channels), and the same organisation on `platform`, with
    each person's id there and each console channel's: (shipped, on the platform, person key to
    user id, #channel to channel id)."""
    shipped = (ROOT / "app.yaml").read_text(encoding="utf-8")
    spec = yaml.safe_load(shipped)
    users = {key: user_id(key) for key in spec["people"]}
    channels: dict[str, str] = {}
    for key, person in spec["people"].items():
        person[platform] = users[key]
    for audience in spec["audiences"].values():
        targets = []
        for target in audience["targets"]:
            channel = target.split(":", 1)[1]
            channels[channel] = channels.get(channel) or channel_id(len(channels) + 1)
            targets.append(f"{platform}:{channels[channel]}")
        audience["targets"] = targets
    return shipped, yaml.safe_dump(spec, allow_unicode=True, sort_keys=False), users, channels


def told_in_console(db: Database, shipped: str, addresses: dict[str, str], platform: str) -> Rows:
    """The walk-throughs in the console, as the README runs them; their rows in `platform`'s terms."""
    console = Context(db=db, org=parse_organisation_text(shipped), clock=Clock())
    setup.apply(console)
    for story, person in STORIES:
        out = io.StringIO()
        script = io.StringIO(readme_block(f"walkthrough-script {story}"))
        asyncio.run(run_console(console, person, stdin=script, out=out))
        assert "went wrong" not in out.getvalue()
    return dump(db, addresses, platform)


def dump(db: Database, addresses: dict[str, str], platform: str) -> Rows:
    """Every row of every table, with console addresses put in `platform`'s terms."""
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
                    values["platform"] = platform if values["platform"] == "console" else values["platform"]
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


def differences(expected: Rows, found: Rows) -> list[str]:
    """Each table whose rows differ, with the first differing row's differing columns."""
    said = []
    for table, rows in expected.items():
        if found[table] == rows:
            continue
        pairs = zip(rows, found[table], strict=False)
        first = next(((a, b) for a, b in pairs if a != b), ({}, {}))
        changed = {k: (v, first[1].get(k)) for k, v in first[0].items() if first[1].get(k) != v}
        said.append(
            f"{table}: {len(rows)} rows in the console, {len(found[table])} on the platform; {changed}"
        )
    return said


def read_answer(lines: Iterator[str]) -> str | None:
    """The next answer in a console script, as the console reads it for a form field: a line
    ending in a backslash continues on the next; `/cancel` (or the end) abandons the form."""
    parts: list[str] = []
    for line in lines:
        if line.strip() == "/cancel":
            return None
        if line.endswith("\\"):
            parts.append(line[:-1])
            continue
        parts.append(line)
        return "\n".join(parts).strip()
    return None
