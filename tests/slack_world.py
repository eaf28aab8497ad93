"""A Touchline on Slack for tests: its real aiohttp endpoint on an ephemeral port, in front of a
fake Slack Web API, and a `World` that speaks to it the way Slack does."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiohttp import ClientSession
from aiohttp.test_utils import TestServer
from pydantic import SecretStr

from bot.config import Environment
from bot.delivery import DeliveryWorker
from bot.server import Touchline
from handlers.context import Context
from tests import slack_fake
from tests.slack_fake import FakeSlack

FORM = "application/x-www-form-urlencoded"


@dataclass
class World:
    ctx: Context
    touchline: Touchline
    fake: FakeSlack
    url: str
    http: ClientSession

    async def send(self, body: str, content_type: str = FORM, **signing: Any) -> tuple[int, str]:
        return await slack_fake.post(self.http, self.url, body, content_type, **signing)

    async def command(self, command: str, text: str, user: str) -> tuple[int, str]:
        return await self.send(slack_fake.slash_command(command, text, user, fake=self.fake))

    async def press(self, action_id: str, value: str, user: str) -> tuple[int, str]:
        return await self.send(slack_fake.button(action_id, value, user, fake=self.fake))

    async def submit(self, view: dict[str, Any], user: str, values: dict[str, Any]) -> dict[str, Any]:
        status, text = await self.send(slack_fake.view_submission(view, user, values))
        assert status == 200, text
        return json.loads(text) if text.strip() else {}

    async def event(self, kind: str, fields: dict[str, Any], event_id: str, **signing: Any) -> int:
        body = slack_fake.event(kind, fields, event_id=event_id)
        status, _ = await self.send(body, "application/json", **signing)
        return status

    async def settled(self) -> None:
        """Wait for what Touchline does after acknowledging Slack's requests."""
        assert self.touchline.slack is not None
        await self.touchline.slack.settled()

    async def deliver(self) -> None:
        await DeliveryWorker(self.ctx.db, self.touchline.platforms, clock=self.ctx.clock).drain()

    async def opened(self, count: int) -> dict[str, Any]:
        """The view of the `count`-th views.open."""
        calls = await self.fake.wait_for("views.open", count)
        return (
            json.loads(calls[count - 1]["view"])
            if isinstance(calls[count - 1]["view"], str)
            else calls[count - 1]["view"]
        )


@asynccontextmanager
async def slack_world(ctx: Context) -> AsyncIterator[World]:
    async with slack_fake.fake_slack() as fake:
        env = Environment(
            slack_bot_token=SecretStr(slack_fake.TOKEN),
            slack_signing_secret=SecretStr(slack_fake.SECRET),
            slack_api_url=fake.base_url,
        )
        touchline = Touchline.build(ctx, env)
        server = TestServer(touchline.web_app(), host="127.0.0.1", port=0)
        await server.start_server()
        try:
            async with ClientSession() as http:
                yield World(ctx, touchline, fake, f"http://127.0.0.1:{server.port}/slack/events", http)
        finally:
            await touchline.close()
            await server.close()
        assert fake.invalid == [], fake.invalid  # every block Touchline sent is valid Block Kit


def run(ctx: Context, scenario: Callable[[World], Awaitable[None]]) -> None:
    async def main() -> None:
        async with slack_world(ctx) as world:
            await scenario(world)

    asyncio.run(main())
