"""The README's three walk-throughs told in the console and through Teams' activities over HTTP:
they must leave the same rows and the same outbox (and so the same as on Slack)."""

from __future__ import annotations

import asyncio
import uuid

import yaml

from bot.config import parse_organisation_text
from handlers import setup
from handlers.context import Context
from storage.database import Database
from tests.fakes import Clock
from tests.stories import STORIES, differences, dump, empty, organisations, told_in_console
from tests.teams_fake import User
from tests.teams_player import TeamsPlayer
from tests.teams_world import teams_world
from tests.test_console import readme_block


def test_the_walk_throughs_leave_the_same_rows_in_the_console_and_on_teams(db: Database) -> None:
    shipped, on_teams, users, channels = organisations(
        "teams",
        lambda key: str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{key}.northwind.example")),
        lambda n: f"19:channel{n:024d}@thread.tacv2",
    )
    in_console = told_in_console(db, shipped, {**channels, **users}, "teams")

    empty(db)
    teams = Context(db=db, org=parse_organisation_text(on_teams), clock=Clock())
    setup.apply(teams)
    people = {key: User(users[key], person.name) for key, person in teams.org.people.items()}
    spec = yaml.safe_load(on_teams)

    async def tell() -> None:
        async with teams_world(teams) as world:
            # Each audience's channel is in a team of its own whose roster is its members, as
            # app.yaml lists them: the bot can write to each of them from the start.
            for audience in spec["audiences"].values():
                team = audience["targets"][0].split(":", 1)[1]
                await world.install(
                    people[audience["members"][0]], team, [people[m] for m in audience["members"]]
                )
            for story, person in STORIES:
                player = TeamsPlayer(world, people, channels, people[person])
                await player.play(readme_block(f"walkthrough-script {story}"))

    asyncio.run(tell())
    on_platform = dump(db, {}, "teams")

    assert on_platform["decision"] and on_platform["objection"] and on_platform["pulseanswer"]
    assert differences(in_console, on_platform) == []
