"""Teams as a real tenant answers: the tenant on every new 1:1 chat, the roster that says who the
bot may write to, and a team's roster counting in every channel of the team."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp import ClientSession

from bot.config import parse_organisation_text
from bot.platform import DeliveryError
from handlers import conversations, setup
from handlers.context import Context
from handlers.ui import Card
from storage.database import Database
from storage.models import AudienceMember, Conversation, Objection
from tests import teams_fake
from tests.fakes import Clock, rows
from tests.teams_fake import TENANT, User, fake_connector
from tests.teams_world import TeamsWorld, beside_slack
from tests.test_teams import DECISION, LEAD, REP1, REP2, TEAM, run, tctx

__all__ = ["tctx"]  # the fixture, shared with test_teams.py


def test_the_fake_connector_refuses_a_new_chat_without_a_tenant_or_with_someone_the_bot_cannot_reach() -> (
    None
):
    """What Teams answers createConversation: the tests below rely on the fake refusing as it does."""

    async def main() -> None:
        async with fake_connector() as connector, ClientSession() as http:
            connector.rosters[TEAM] = [REP1.roster_entry()]
            url = f"{connector.base_url}v3/conversations"
            asked = {"isGroup": False, "bot": teams_fake.BOT, "members": [{"id": REP1.member_id}]}

            async def create(parameters: dict[str, object]) -> tuple[int, str]:
                async with http.post(url, json=parameters) as response:
                    return response.status, await response.text()

            status, said = await create(asked)
            assert status == 400 and "Could not parse tenant id" in said
            status, said = await create({**asked, "members": [{"id": REP2.member_id}], "tenantId": TENANT})
            assert status == 403 and "not part of the conversation roster" in said
            assert await create({**asked, "channelData": {"tenant": {"id": TENANT}}}) == (
                200,
                json.dumps({"id": REP1.personal, "serviceUrl": connector.base_url}),
            )

    asyncio.run(main())


def test_a_1_1_chat_is_opened_in_the_tenant_teams_names_in_channel_data(tctx: Context) -> None:
    """Teams puts the tenant in channelData.tenant.id on every activity; the install event, as in
    Microsoft's own sample, has no conversation.tenantId. Without the tenant, Teams answers 400."""

    async def scenario(world: TeamsWorld) -> None:
        world.fake.rosters[TEAM] = [m.roster_entry() for m in (LEAD, REP1, REP2)]
        install = teams_fake.installed(world.fake, LEAD, team=TEAM)
        install["conversation"].pop("tenantId")
        status, said = await world.send(install)
        assert status in (200, 201), said
        await world.say(LEAD, "strategy")
        await world.submit(LEAD, world.latest(LEAD.personal, with_inputs=True), DECISION)
        await world.deliver()
        post = world.latest(TEAM)
        await world.press(REP1, post, 1)  # in the channel: the thank-you opens Rita's 1:1 chat
        [opened] = world.fake.to(REP1.personal, "CREATE")
        assert opened.activity["tenantId"] == TENANT
        assert opened.activity["channelData"] == {"tenant": {"id": TENANT}}
        assert "you acknowledged" in world.texts(REP1.personal)
        # The chat is kept with its tenant, as every conversation reference is.
        [chat] = [c for c in rows(world.ctx.db, Conversation) if c.address == REP1.personal]
        assert chat.reference["channelData"]["tenant"]["id"] == TENANT

    run(tctx, scenario)


def test_someone_teams_will_not_open_a_chat_with_gets_nothing_and_the_reason_is_kept(tctx: Context) -> None:
    """A person in a team's roster who has since left it (Touchline did not hear): Teams answers
    403; the message fails for good with its reason, and the turn answers in the channel."""

    async def scenario(world: TeamsWorld) -> None:
        await world.install(LEAD, TEAM, [LEAD, REP1, REP2])
        world.fake.rosters[TEAM] = [LEAD.roster_entry(), REP1.roster_entry()]  # Ravi left the team
        teams = world.touchline.platforms["teams"]
        with pytest.raises(DeliveryError) as refused:
            await teams.send_direct(REP2.aad, Card(title="Hello"), delivery_id=1)
        assert refused.value.permanent and "will not open a chat" in str(refused.value)
        await world.say(REP2, "objection too expensive", channel=TEAM)
        assert world.fake.to(REP2.personal) == []
        assert "could not write to you privately" in world.texts(TEAM)

    run(tctx, scenario)


def test_a_team_s_roster_counts_in_every_channel_of_the_team_as_slack_counts_a_channel(
    db: Database, clock: Clock
) -> None:
    """The same five people in a Slack channel and in a Teams team whose General channel is where
    the bot was installed: a decision for the team's Sales EMEA channel counts the same Y as Slack."""
    people = [User(f"0d1e4c6a-{n:04d}-4b9e-9e9f-73e0c02bf4ea", f"Rep {n}") for n in range(1, 6)]
    slack_ids = [f"U0REP0000{n}" for n in range(1, 6)]
    emea = "19:emea00000000000000000000000000@thread.tacv2"
    people_yaml = "\n".join(
        f"  rep{n}: {{name: Rep {n}, slack: {slack_ids[n - 1]}, teams: {people[n - 1].aad}}}"
        for n in range(1, 6)
    )
    org = f"""\
organisation: {{name: Mixed Co, timezone: Europe/Berlin}}
people:
  lead: {{name: Lena Leader, slack: U0LEAD00001, teams: {LEAD.aad}}}
{people_yaml}
roles: {{leader: [lead], rep: [rep1, rep2, rep3, rep4, rep5]}}
audiences:
  slack-emea: {{targets: ["slack:C0SALESEMEA"]}}
  teams-emea: {{targets: ["teams:{emea}"]}}
"""
    ctx = Context(db=db, org=parse_organisation_text(org), clock=clock)
    setup.apply(ctx)

    async def main() -> None:
        async with beside_slack(ctx) as (on_slack, on_teams):
            slack, connector = on_slack.fake, on_teams.fake
            slack.members["C0SALESEMEA"] = list(slack_ids)
            assert on_slack.touchline.slack is not None
            await on_slack.touchline.slack.people.refresh()
            connector.channels[TEAM] = [
                {"id": emea, "name": "Sales EMEA"},
                {"id": "19:x@thread.tacv2", "name": "Ops"},
            ]
            await on_teams.install(people[0], TEAM, people)  # Teams says so in General only
            await on_slack.command("strategy", "", "U0LEAD00001")
            view = await on_slack.opened(1)
            await on_slack.submit(
                view, "U0LEAD00001", {**DECISION, "audiences": ["slack-emea", "teams-emea"]}
            )
            await on_slack.deliver()
            await on_teams.deliver()
            [slack_post] = slack.called("chat.postMessage")
            teams_post = on_teams.latest(emea)  # posted in a channel Touchline never heard from
            assert "acknowledged by 0 of 5" in json.dumps(slack_post["blocks"])
            assert "acknowledged by 0 of 5" in json.dumps(teams_post.cards())
            await on_teams.press(people[2], teams_post, 1)
            await on_slack.deliver()
            await on_teams.deliver()
            assert "acknowledged by 1 of 5" in json.dumps(connector.to(emea, "PUT")[-1].cards())
            assert "acknowledged by 1 of 5" in json.dumps(slack.called("chat.update")[-1]["blocks"])
            # Every channel of the team is a place to post to, named as Teams names it.
            places = {c.address: (c.name, c.team) for c in rows(ctx.db, Conversation) if c.kind == "channel"}
            assert places[emea] == ("Sales EMEA", "Northwind Sales")
            assert set(places) == {TEAM, emea, "19:x@thread.tacv2"}

    asyncio.run(main())


def test_someone_joining_the_team_counts_at_once_in_its_channels(tctx: Context) -> None:
    async def scenario(world: TeamsWorld) -> None:
        await world.install(LEAD, TEAM, [LEAD, REP1])
        world.fake.rosters[TEAM].append(REP2.roster_entry())
        joined = teams_fake.installed(world.fake, LEAD, team=TEAM)
        joined["membersAdded"] = [{"id": REP2.member_id, "aadObjectId": REP2.aad}]
        status, said = await world.send(joined)
        assert status in (200, 201), said
        await world.say(LEAD, "strategy")
        await world.submit(LEAD, world.latest(LEAD.personal, with_inputs=True), DECISION)
        await world.deliver()
        assert "acknowledged by 0 of 3" in json.dumps(world.latest(TEAM).cards())

    run(tctx, scenario)


def test_a_team_whose_channels_cannot_be_listed_keeps_its_general_channel(tctx: Context) -> None:
    async def scenario(world: TeamsWorld) -> None:
        body = teams_fake.installed(world.fake, LEAD, team=TEAM)
        status, _ = await world.send(body)  # the fake knows no such team: 404 for its channels
        assert status in (200, 201)
        assert [c.address for c in rows(world.ctx.db, Conversation) if c.kind == "channel"] == [TEAM]

    run(tctx, scenario)


def message_action(world: TeamsWorld, user: User, name: str, value: dict[str, object]) -> dict[str, object]:
    """The invoke Teams sends when someone uses a message action on a channel message."""
    body = teams_fake.activity(world.fake, user, channel=TEAM, type="invoke", name=name, value=value)
    body.pop("text", None)
    return body


def test_log_as_objection_on_any_teams_message_opens_the_form_filled_with_it_and_logs_it(
    tctx: Context,
) -> None:
    async def scenario(world: TeamsWorld) -> None:
        await world.install(LEAD, TEAM, [LEAD, REP1, REP2])
        payload = {
            "id": "1700000009999",
            "body": {"contentType": "html", "content": "<p>Acme is <b>30% cheaper</b> &amp; faster</p>"},
            "from": {"user": {"id": REP2.aad, "displayName": REP2.name}},
        }
        asked = {"commandId": "logObjection", "commandContext": "message", "messagePayload": payload}
        status, said = await world.send(message_action(world, REP1, "composeExtension/fetchTask", asked))
        assert status == 200, said
        task = json.loads(said)["task"]
        assert task["type"] == "continue"
        card = task["value"]["card"]["content"]
        [text] = [b for b in card["body"] if b.get("id") == "text"]
        assert text["value"] == "Acme is 30% cheaper & faster"
        errors = sorted(teams_fake.card_schema().iter_errors(card), key=str)
        assert errors == [], errors[0].message if errors else ""

        submitted = {**card["actions"][0]["data"], "text": text["value"], "competitor": "Acme"}
        done = {**asked, "data": submitted}
        status, said = await world.send(message_action(world, REP1, "composeExtension/submitAction", done))
        assert status == 200, said
        assert json.loads(said or "{}") == {}  # the dialog closes
        [objection] = rows(world.ctx.db, Objection)
        assert (objection.text, objection.competitor) == ("Acme is 30% cheaper & faster", "Acme")
        assert "objection.withdraw" in world.texts(REP1.personal)  # the saved objection, to edit or withdraw
        assert world.fake.to(TEAM) == []  # nothing said in the channel

        # Cancelling the dialog logs nothing; an invoke Touchline does not handle is answered 501.
        status, _ = await world.send(
            message_action(
                world, REP1, "composeExtension/submitAction", {**asked, "data": {"_touchline": "cancel"}}
            )
        )
        assert status == 200 and len(rows(world.ctx.db, Objection)) == 1
        status, _ = await world.send(
            message_action(world, REP1, "composeExtension/query", {"commandId": "x"})
        )
        assert status == 501

    run(tctx, scenario)


def test_a_channel_made_after_the_install_is_a_place_to_post_to_at_once(tctx: Context) -> None:
    async def scenario(world: TeamsWorld) -> None:
        await world.install(LEAD, TEAM, [LEAD, REP1, REP2])
        new = "19:newchannel000000000000000000000@thread.tacv2"
        world.fake.channels[TEAM] = [{"id": new, "name": "Launch room"}]
        made = teams_fake.installed(world.fake, LEAD, team=TEAM)
        made.pop("membersAdded")
        made["channelData"] = {
            **made["channelData"],
            "eventType": "channelCreated",
            "channel": {"id": new, "name": "Launch room"},
        }
        status, said = await world.send(made)
        assert status in (200, 201), said
        [place] = [c for c in rows(world.ctx.db, Conversation) if c.address == new]
        assert (place.kind, place.name, place.team) == ("channel", "Launch room", "Northwind Sales")
        [general] = [c for c in rows(world.ctx.db, Conversation) if c.address == TEAM]
        assert general.name == "General"  # the event came in General, about another channel

    run(tctx, scenario)


def test_a_team_remembered_before_the_agents_sdk_still_opens_chats_in_its_tenant(tctx: Context) -> None:
    """References stored by botbuilder kept the tenant, if at all, as `conversation.tenantID`."""

    async def scenario(world: TeamsWorld) -> None:
        old = {
            "bot": teams_fake.BOT,
            "conversation": {"isGroup": True, "conversationType": "channel", "id": TEAM, "tenantID": TENANT},
            "channelId": "msteams",
            "serviceUrl": world.fake.base_url,
        }
        conversations.remember(
            world.ctx, "teams", TEAM, kind="channel", reference=old, team="Northwind Sales"
        )
        conversations.remember_members(world.ctx, "teams", TEAM, [(REP1.aad, REP1.member_id, REP1.name)])
        world.fake.rosters[TEAM] = [REP1.roster_entry()]
        await world.touchline.platforms["teams"].send_direct(REP1.aad, Card(title="Hello"), delivery_id=1)
        [opened] = world.fake.to(REP1.personal, "CREATE")
        assert opened.activity["tenantId"] == TENANT
        assert "Hello" in world.texts(REP1.personal)

    run(tctx, scenario)


def test_no_bot_framework_sdk_package_is_installed() -> None:
    """botbuilder-python's support ended on 2025-12-31: the Agents SDK replaces it, not beside it."""
    import importlib.metadata

    names = {(d.metadata["Name"] or "").lower() for d in importlib.metadata.distributions()}
    assert not {n for n in names if n.startswith(("botbuilder", "botframework", "msrest"))}
    assert {"microsoft-agents-hosting-aiohttp", "microsoft-agents-authentication-msal"} <= names


def test_a_roster_teams_does_not_give_leaves_the_channels_counting_whom_they_counted(tctx: Context) -> None:
    """A roster answer that is not a roster (a redirect, not followed) is not read as an empty
    team: the channels keep their members, and the turn is answered, not failed with a 5xx."""

    async def scenario(world: TeamsWorld) -> None:
        await world.install(LEAD, TEAM, [LEAD, REP1, REP2])
        before = sorted((m.audience_id, m.person_id) for m in rows(world.ctx.db, AudienceMember))
        assert before
        world.fake.redirects[TEAM] = "http://127.0.0.1:9/elsewhere"
        joined = teams_fake.installed(world.fake, LEAD, team=TEAM)
        joined["membersAdded"] = [{"id": REP2.member_id, "aadObjectId": REP2.aad}]
        status, said = await world.send(joined)
        assert status in (200, 201), said
        assert sorted((m.audience_id, m.person_id) for m in rows(world.ctx.db, AudienceMember)) == before

    run(tctx, scenario)
