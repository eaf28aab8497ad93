"""A Touchline on Teams for tests: its real `/api/messages` on an ephemeral port, a fake Bot
Connector behind `serviceUrl`, and a `TeamsWorld` that sends activities the way Teams does."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
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
from tests import slack_fake, teams_fake
from tests.slack_world import World
from tests.teams_fake import FakeConnector, Sent, User


@dataclass
class TeamsWorld:
    ctx: Context
    touchline: Touchline
    fake: FakeConnector
    url: str
    http: ClientSession

    async def send(self, body: dict[str, Any], headers: dict[str, str] | None = None) -> tuple[int, str]:
        async with self.http.post(
            self.url, data=json.dumps(body), headers={"Content-Type": "application/json", **(headers or {})}
        ) as response:
            return response.status, await response.text()

    async def say(self, user: User, text: str, *, channel: str | None = None, **fields: Any) -> int:
        status, body = await self.send(
            teams_fake.activity(self.fake, user, channel=channel, text=text, **fields)
        )
        assert status in (200, 201), body
        return status

    async def press(self, user: User, sent: Sent, number: int) -> None:
        """Press button `number` of a card the bot sent (Action.Submit: a message with `value`)."""
        [card] = sent.cards()
        data = card["actions"][number - 1]["data"]
        await self._submit(user, sent, data)

    async def submit(self, user: User, sent: Sent, values: dict[str, Any]) -> None:
        """Fill a form card's inputs with `values` and press its first button."""
        [card] = sent.cards()
        data = {**card["actions"][0]["data"], **{k: v for k, v in values.items()}}
        await self._submit(user, sent, data)

    async def _submit(self, user: User, sent: Sent, data: dict[str, Any]) -> None:
        channel = sent.conversation if sent.conversation.startswith("19:") else None
        conversation = f"{channel};messageid={sent.id}" if channel else None
        body = teams_fake.activity(self.fake, user, channel=channel, text="", value=data, replyToId=sent.id)
        if conversation:
            body["conversation"]["id"] = conversation
        status, text = await self.send(body)
        assert status in (200, 201), text

    async def react(
        self, user: User, sent: Sent, kind: str, *, added: bool = True, activity_id: str = ""
    ) -> int:
        channel = sent.conversation if sent.conversation.startswith("19:") else None
        body = teams_fake.activity(
            self.fake, user, channel=channel, replyToId=sent.id, type="messageReaction"
        )
        body.pop("text", None)
        body["reactionsAdded" if added else "reactionsRemoved"] = [{"type": kind}]
        if activity_id:
            body["id"] = activity_id
        status, _ = await self.send(body)
        return status

    async def install(self, by: User, team: str, members: list[User]) -> None:
        self.fake.rosters[team] = [m.roster_entry() for m in members]
        status, text = await self.send(teams_fake.installed(self.fake, by, team=team))
        assert status in (200, 201), text

    async def deliver(self) -> None:
        await DeliveryWorker(self.ctx.db, self.touchline.platforms, clock=self.ctx.clock).drain()

    def latest(self, conversation: str, *, with_inputs: bool = False) -> Sent:
        """The last card the bot posted (not updated) in a conversation."""
        posted = [s for s in self.fake.to(conversation, "POST") if s.cards()]
        if with_inputs:
            posted = [s for s in posted if any(b["type"].startswith("Input.") for b in s.cards()[0]["body"])]
        assert posted, (
            f"no card in {conversation}: {[s.activity.get('text') for s in self.fake.to(conversation)]}"
        )
        return posted[-1]

    def texts(self, conversation: str) -> str:
        return json.dumps([s.activity for s in self.fake.to(conversation)], ensure_ascii=False)


@asynccontextmanager
async def teams_world(ctx: Context, env: Environment | None = None) -> AsyncIterator[TeamsWorld]:
    """Touchline on Teams: in the Emulator's mode (asked for, as TEAMS_EMULATOR=1 does) unless `env`
    says otherwise; with an app id, the fake Connector is allowed through TEAMS_SERVICE_URLS."""
    async with teams_fake.fake_connector() as fake:
        env = env or Environment(teams_emulator=True)
        if env.teams_configured and env.teams_service_urls is None:
            env = env.model_copy(update={"teams_service_urls": fake.base_url})
        touchline = Touchline.build(ctx, env)
        server = TestServer(touchline.web_app(), host="127.0.0.1", port=0)
        await server.start_server()
        try:
            async with ClientSession() as http:
                yield TeamsWorld(ctx, touchline, fake, f"http://127.0.0.1:{server.port}/api/messages", http)
        finally:
            await server.close()
        assert fake.invalid == [], fake.invalid  # every card Touchline sent is a valid Adaptive Card 1.5


@asynccontextmanager
async def beside_slack(ctx: Context) -> AsyncIterator[tuple[World, TeamsWorld]]:
    """Touchline on Slack (its credentials, a fake Slack) and on Teams (the Emulator's mode, a fake
    Connector), two servers on one database as two replicas would be: the Emulator's mode never
    runs beside Slack's credentials, and Teams with credentials would need Microsoft's login."""
    async with slack_fake.fake_slack() as slack, teams_fake.fake_connector() as connector:
        env = Environment(
            slack_bot_token=SecretStr(slack_fake.TOKEN),
            slack_signing_secret=SecretStr(slack_fake.SECRET),
            slack_api_url=slack.base_url,
        )
        on_slack_side = Touchline.build(ctx, env)
        on_teams_side = Touchline.build(ctx, Environment(teams_emulator=True))
        servers = [TestServer(t.web_app(), host="127.0.0.1", port=0) for t in (on_slack_side, on_teams_side)]
        for server in servers:
            await server.start_server()
        try:
            async with ClientSession() as http:
                on_slack = World(
                    ctx, on_slack_side, slack, f"http://127.0.0.1:{servers[0].port}/slack/events", http
                )
                on_teams = TeamsWorld(
                    ctx, on_teams_side, connector, f"http://127.0.0.1:{servers[1].port}/api/messages", http
                )
                yield on_slack, on_teams
        finally:
            await on_slack_side.close()
            for server in servers:
                await server.close()
        assert slack.invalid == [] and connector.invalid == []
