"""The README's three walk-throughs told twice, in the console and through Slack's payloads over
HTTP: they must leave the same rows and the same outbox, platform addresses aside."""

from __future__ import annotations

import asyncio

from bot.config import parse_organisation_text
from handlers import setup
from handlers.context import Context
from storage.database import Database
from tests.fakes import Clock
from tests.slack_player import SlackPlayer
from tests.slack_world import slack_world
from tests.stories import STORIES, differences, dump, empty, organisations, told_in_console
from tests.test_console import readme_block


def test_the_walk_throughs_leave_the_same_rows_in_the_console_and_on_slack(db: Database) -> None:
    shipped, on_slack, users, channels = organisations(
        "slack", lambda key: f"U0{key.upper():0<9}"[:11], lambda n: f"C0{n:09d}"
    )
    in_console = told_in_console(db, shipped, {**channels, **users}, "slack")

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
    on_platform = dump(db, {}, "slack")

    assert on_platform["decision"] and on_platform["objection"] and on_platform["pulseanswer"]
    assert differences(in_console, on_platform) == []
