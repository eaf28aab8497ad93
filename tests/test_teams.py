"""Touchline on Teams, over real HTTP: Bot Framework activities posted to its `/api/messages`,
and a fake Bot Connector on an ephemeral port behind `serviceUrl`."""

from __future__ import annotations

import asyncio
import io
import json
import zipfile
from collections.abc import Awaitable, Callable

import pytest
from PIL import Image
from pydantic import SecretStr

from bot.config import Environment, parse_organisation_text
from bot.teams.app import _loopback
from bot.teams.manifest import package
from handlers import setup
from handlers.context import Context
from storage.database import Database
from storage.models import Acknowledgement, Conversation, Decision, InboundEvent, Objection, Outbox
from tests.fakes import Clock, rows
from tests.teams_fake import User
from tests.teams_world import TeamsWorld, beside_slack, teams_world

LEAD = User("0d1e4c6a-1111-4b9e-9e9f-73e0c02bf4ea", "Lena Leader")
REP1 = User("0d1e4c6a-2222-4b9e-9e9f-73e0c02bf4ea", "Rita Rep")
REP2 = User("0d1e4c6a-3333-4b9e-9e9f-73e0c02bf4ea", "Ravi Rep")
TEAM = "19:salesemea0000000000000000000000@thread.tacv2"
ORG = f"""\
organisation: {{name: Teams Co, timezone: Europe/Berlin}}
people:
  lead: {{name: Lena Leader, teams: {LEAD.aad}}}
  rep1: {{name: Rita Rep, teams: {REP1.aad}}}
  rep2: {{name: Ravi Rep, teams: {REP2.aad}}}
roles:
  leader: [lead]
  rep: [rep1, rep2]
audiences:
  emea: {{label: Sales EMEA, targets: ["teams:{TEAM}"], members: [rep1, rep2]}}
reactions:
  "+1": useful
  heart: got-it
objections:
  themes:
    price: [price, expensive]
"""
DECISION = {
    "title": "Mid-market first",
    "decision": "Lead with the mid-market tier.",
    "why": "Twice the win rate.",
    "reps_may": "15% on 3-year deals",
    "reps_may_not": "discount the platform fee",
    "effective_on": "2026-12-01",
    "audiences": "emea",
}


@pytest.fixture
def tctx(db: Database, clock: Clock) -> Context:
    ctx = Context(db=db, org=parse_organisation_text(ORG), clock=clock)
    setup.apply(ctx)
    return ctx


def run(
    ctx: Context, scenario: Callable[[TeamsWorld], Awaitable[None]], env: Environment | None = None
) -> None:
    async def main() -> None:
        async with teams_world(ctx, env) as world:
            await scenario(world)

    asyncio.run(main())


async def announce(world: TeamsWorld) -> None:
    await world.install(LEAD, TEAM, [LEAD, REP1, REP2])
    await world.say(LEAD, "strategy")
    form = world.latest(LEAD.personal, with_inputs=True)
    await world.submit(LEAD, form, DECISION)


def test_a_decision_announced_in_a_1_1_chat_reaches_the_channel_and_counts_live(tctx: Context) -> None:
    async def scenario(world: TeamsWorld) -> None:
        await announce(world)
        assert [d.title for d in rows(world.ctx.db, Decision)] == ["Mid-market first"]
        assert "is going out to 1 channel" in world.texts(LEAD.personal)
        await world.deliver()
        post = world.latest(TEAM)
        assert "acknowledged by 0 of 3" in json.dumps(post.cards())  # the team: lead and two reps
        assert post.cards()[0]["actions"][0]["title"] == "Got it"

        await world.press(REP1, post, 1)  # in the channel: the thank-you goes to Rita's 1:1 chat
        assert [c.method for c in world.fake.to(REP1.personal)][:2] == ["CREATE", "POST"]
        assert "you acknowledged" in world.texts(REP1.personal)
        await world.deliver()
        [update] = world.fake.to(TEAM, "PUT")
        assert update.id == post.id and "acknowledged by 1 of 3" in json.dumps(update.cards())

        assert await world.react(REP2, post, "heart", activity_id="reaction-1") in (200, 201)
        assert await world.react(REP2, post, "heart", activity_id="reaction-1") in (200, 201)  # a retry
        assert len(rows(world.ctx.db, Acknowledgement)) == 2
        assert [e.event_id for e in rows(world.ctx.db, InboundEvent) if "heart" in e.event_id] == [
            "reaction-1:heart:True"
        ]
        await world.deliver()
        assert "acknowledged by 2 of 3" in json.dumps(world.fake.to(TEAM, "PUT")[-1].cards())

    run(tctx, scenario)


def test_an_objection_by_mention_in_a_channel_and_a_form_with_mistakes(tctx: Context) -> None:
    async def scenario(world: TeamsWorld) -> None:
        await world.install(LEAD, TEAM, [LEAD, REP1, REP2])
        mention = [
            {
                "type": "mention",
                "text": "<at>Touchline</at>",
                "mentioned": {"id": "28:5353a86e-52fb-4979-8a69-c7efcd1b0bd3", "name": "Touchline"},
            }
        ]
        await world.say(
            REP1, "<at>Touchline</at> objection too expensive vs Acme", channel=TEAM, entities=mention
        )
        assert [o.text for o in rows(world.ctx.db, Objection)] == ["too expensive vs Acme"]
        assert "Recorded" in world.texts(REP1.personal) and "theme: price" in world.texts(REP1.personal)
        assert world.fake.to(TEAM) == []  # nothing said in the channel

        await world.say(LEAD, "/strategy")
        form = world.latest(LEAD.personal, with_inputs=True)
        await world.submit(LEAD, form, {**DECISION, "why": "", "reps_may": "", "reps_may_not": ""})
        assert "Please fix these" in world.texts(LEAD.personal) and rows(world.ctx.db, Decision) == []
        await world.submit(LEAD, form, DECISION)
        assert len(rows(world.ctx.db, Decision)) == 1
        closed = world.fake.to(LEAD.personal, "PUT")[-1]
        assert closed.id == form.id and "Sent" in json.dumps(closed.cards())

    run(tctx, scenario)


def test_a_removed_bot_fails_that_delivery_only_and_a_rate_limit_waits(tctx: Context, clock: Clock) -> None:
    async def scenario(world: TeamsWorld) -> None:
        await announce(world)
        world.fake.errors[TEAM] = [429]
        await world.deliver()
        [waiting] = rows(world.ctx.db, Outbox, status="pending", kind="post")
        assert (waiting.due_at - clock.now).total_seconds() == 5 and "slow down" in (waiting.error or "")
        clock.advance(seconds=5)
        world.fake.errors[TEAM] = [403]
        await world.deliver()
        [failed] = rows(world.ctx.db, Outbox, status="failed")
        assert "the bot was removed from this conversation" in (failed.error or "")
        await world.deliver()
        told = world.texts(LEAD.personal)
        assert "Not delivered" in told and "add the app again" in told

    run(tctx, scenario)


def test_with_an_app_id_an_unauthenticated_request_is_refused(tctx: Context) -> None:
    env = Environment(
        microsoft_app_id="1b4c8f5e-0000-4000-8000-000000000001", microsoft_app_password=SecretStr("secret")
    )

    async def scenario(world: TeamsWorld) -> None:
        from tests.teams_fake import activity

        status, _ = await world.send(activity(world.fake, REP1, text="objection too expensive"))
        forged, _ = await world.send(
            activity(world.fake, REP1, text="objection too expensive"),
            {"Authorization": "Bearer not-a-token"},
        )
        assert (status, forged) == (401, 401)
        assert rows(world.ctx.db, Objection) == [] and world.fake.sent == []

    run(tctx, scenario, env)


def test_bad_requests_get_a_clear_4xx(tctx: Context) -> None:
    from tests.teams_fake import activity

    async def scenario(world: TeamsWorld) -> None:
        async with world.http.post(
            world.url, data="{not json", headers={"Content-Type": "application/json"}
        ) as r:
            assert r.status == 400
        async with world.http.post(world.url, data="x", headers={"Content-Type": "text/plain"}) as r:
            assert r.status == 415
        assert await world.send({"text": "no type"}) == (
            400,
            '{"error": "expected a Bot Framework activity"}',
        )
        assert _loopback("127.0.0.1") and _loopback("::1") and not _loopback("10.0.0.7")
        # Without an app id, a request relayed by a proxy on this machine is not "from this machine".
        status, _ = await world.send(
            activity(world.fake, REP1, text="help"), {"X-Forwarded-For": "203.0.113.9"}
        )
        assert status == 403 and world.fake.sent == []

    run(tctx, scenario)


def test_the_app_package_holds_the_manifest_and_both_icons() -> None:
    app_id = "1b4c8f5e-0000-4000-8000-000000000001"
    archive = zipfile.ZipFile(io.BytesIO(package(app_id, "https://touchline.example.com")))
    assert sorted(archive.namelist()) == ["color.png", "manifest.json", "outline.png"]
    manifest = json.loads(archive.read("manifest.json"))
    assert manifest["id"] == manifest["bots"][0]["botId"] == app_id
    commands = {c["title"] for c in manifest["bots"][0]["commandLists"][0]["commands"]}
    assert {"objection", "strategy", "asset", "pulse", "digest", "help"} <= commands
    assert Image.open(io.BytesIO(archive.read("color.png"))).size == (192, 192)
    assert Image.open(io.BytesIO(archive.read("outline.png"))).size == (32, 32)
    with pytest.raises(ValueError, match="GUID"):
        package("not-an-id", "https://touchline.example.com")


def test_installing_the_bot_records_the_team_s_channel_for_app_yaml(tctx: Context) -> None:
    async def scenario(world: TeamsWorld) -> None:
        await world.install(LEAD, TEAM, [LEAD, REP1, REP2])
        [channel] = [c for c in rows(world.ctx.db, Conversation) if c.kind == "channel"]
        assert (channel.address, channel.team) == (TEAM, "Northwind Sales")

    run(tctx, scenario)


def test_one_announcement_reaches_slack_and_teams_and_counts_acknowledgements_from_both(
    db: Database, clock: Clock
) -> None:

    slack_rep, slack_channel = "U0SLACKREP1", "C0SALESEMEA"
    org = f"""\
organisation: {{name: Mixed Co, timezone: Europe/Berlin}}
people:
  lead: {{name: Lena Leader, slack: U0LEAD00001}}
  rita: {{name: Rita Rep, slack: {slack_rep}}}
  ravi: {{name: Ravi Rep, teams: {REP2.aad}}}
roles: {{leader: [lead], rep: [rita, ravi]}}
audiences:
  emea: {{targets: ["slack:{slack_channel}", "teams:{TEAM}"], members: [rita, ravi]}}
"""
    ctx = Context(db=db, org=parse_organisation_text(org), clock=clock)
    setup.apply(ctx)

    async def main() -> None:
        async with beside_slack(ctx) as (on_slack, on_teams):
            slack, teams_connector = on_slack.fake, on_teams.fake
            await on_teams.install(REP2, TEAM, [REP2])
            await on_slack.command("strategy", "", "U0LEAD00001")
            view = await on_slack.opened(1)
            await on_slack.submit(view, "U0LEAD00001", {**DECISION, "audiences": ["emea"]})
            await on_slack.deliver()
            await on_teams.deliver()
            [slack_post] = slack.called("chat.postMessage")
            teams_post = on_teams.latest(TEAM)
            assert slack_post["channel"] == slack_channel
            assert "acknowledged by 0 of 2" in json.dumps(slack_post["blocks"])
            assert "acknowledged by 0 of 2" in json.dumps(teams_post.cards())

            await on_slack.press("strategy.ack", "1", slack_rep)
            await on_slack.settled()
            await on_teams.press(REP2, teams_post, 1)
            await on_slack.deliver()
            await on_teams.deliver()
            assert "acknowledged by 2 of 2" in json.dumps(slack.called("chat.update")[-1]["blocks"])
            assert "acknowledged by 2 of 2" in json.dumps(teams_connector.to(TEAM, "PUT")[-1].cards())

    asyncio.run(main())


def test_long_cards_stay_under_teams_size_and_say_what_was_cut() -> None:
    from bot.teams.cards import card as adaptive
    from handlers.ui import Button, Card, Fact, Section
    from tests.teams_fake import card_schema

    long = Card(
        title="T" * 300,
        sections=tuple(
            Section(heading=f"Part {i}", text="word " * 1000, facts=(Fact("Why", "x" * 100),))
            for i in range(40)
        ),
        buttons=tuple(Button(f"B{i}", "strategy.ack", "1") for i in range(9)),
        footer="f",
    )
    content = adaptive(long)
    assert len(json.dumps(content, ensure_ascii=False)) <= 20_000
    assert "more parts not shown" in json.dumps(content) and "(continued)" in json.dumps(content)
    assert len(content["actions"]) == 6
    assert list(card_schema().iter_errors(content)) == []


def test_a_teams_outage_is_retried_and_a_deleted_conversation_fails_with_its_reason(
    tctx: Context, clock: Clock
) -> None:
    async def scenario(world: TeamsWorld) -> None:
        await announce(world)
        world.fake.errors[TEAM] = [503]
        await world.deliver()
        [waiting] = rows(world.ctx.db, Outbox, status="pending", kind="post")
        assert "Teams answered 503" in (waiting.error or "")
        clock.advance(minutes=5)
        world.fake.errors[TEAM] = [404]
        await world.deliver()
        [failed] = rows(world.ctx.db, Outbox, status="failed")
        assert "the conversation no longer exists" in (failed.error or "")

    run(tctx, scenario)


def test_touchline_audiences_lists_the_channels_the_bot_was_added_to(tmp_path: object) -> None:
    from pathlib import Path

    from storage.database import Database as Db
    from storage.database import migrate
    from tests.cli import run_cli
    from tests.conftest import ROOT

    assert isinstance(tmp_path, Path)
    url = f"sqlite:///{tmp_path / 'touchline.db'}"
    migrate(url)
    env = {"DATABASE_URL": url, "TOUCHLINE_CONFIG": str(ROOT / "app.yaml")}
    empty = run_cli("audiences", env=env)
    assert empty.returncode == 0 and "has not been added to any team" in empty.stdout

    async def install() -> None:
        ctx = Context(
            db=Db.from_url(url), org=parse_organisation_text((ROOT / "app.yaml").read_text()), clock=Clock()
        )
        setup.apply(ctx)
        async with teams_world(ctx) as world:
            await world.install(LEAD, TEAM, [LEAD])
        ctx.db.dispose()

    asyncio.run(install())
    listed = run_cli("audiences", env=env)
    assert listed.returncode == 0
    assert f"teams:{TEAM}" in listed.stdout and "Northwind Sales" in listed.stdout
