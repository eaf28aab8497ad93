"""Touchline on Slack, over real HTTP: signed requests to its aiohttp endpoint, and a fake Slack
Web API on an ephemeral port that records every call and validates every block."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import urllib.parse

import pytest
import yaml
from pydantic import SecretStr

from bot.config import Environment, parse_organisation_text
from bot.server import Touchline
from bot.slack.blocks import card_blocks, modal
from bot.slack.manifest import slack_manifest
from handlers import setup
from handlers.context import Context
from handlers.ui import Button, Card, Fact, Form, FormField, Section
from storage.database import Database
from storage.models import (
    Acknowledgement,
    Decision,
    InboundEvent,
    InboxItem,
    Objection,
    Outbox,
    Person,
    Question,
)
from tests import slack_fake
from tests.fakes import Clock, rows
from tests.slack_world import FORM, World, run

ORG = """\
organisation: {name: Slack Co, timezone: Europe/Berlin}
people:
  lead: {name: Lena Leader, slack: U0LEAD00001}
  market: {name: Mia Marketer, slack: U0MARK00001}
  rep1: {name: Rita Rep, slack: U0REP000001}
  rep2: {name: Ravi Rep, slack: U0REP000002}
roles:
  leader: [lead]
  marketer: [market]
  rep: [rep1, rep2, "slack-group:S0SALES0001"]
audiences:
  emea: {label: Sales EMEA, targets: ["slack:C0SALES0001", "slack:C0SALES0002"], members: [rep1, rep2]}
digest: {recipients: [market]}
objections:
  themes:
    price: [price, expensive, budget]
"""
LEAD, MARKET, REP1, REP2 = "U0LEAD00001", "U0MARK00001", "U0REP000001", "U0REP000002"
SALES, SALES_2 = "C0SALES0001", "C0SALES0002"


@pytest.fixture
def sctx(db: Database, clock: Clock) -> Context:
    ctx = Context(db=db, org=parse_organisation_text(ORG), clock=clock)
    setup.apply(ctx)
    return ctx


DECISION = {
    "title": "Mid-market first",
    "decision": "Lead with the mid-market tier.",
    "why": "Twice the win rate.",
    "reps_may": "15% on 3-year deals",
    "reps_may_not": "discount the platform fee",
    "effective_on": "2026-12-01",
    "audiences": ["emea"],
}


async def announce(world: World) -> None:
    status, _ = await world.command("strategy", "", LEAD)
    assert status == 200
    view = await world.opened(1)
    assert view["callback_id"] == "strategy.announce"
    assert await world.submit(view, LEAD, DECISION) == {}


def test_a_decision_goes_out_is_acknowledged_by_button_and_reaction_and_counts_live(sctx: Context) -> None:
    async def scenario(world: World) -> None:
        await announce(world)
        [told] = await world.fake.wait_for("chat.postEphemeral")
        assert (
            told["channel"] == SALES and told["user"] == LEAD and "is going out to 2 channels" in told["text"]
        )
        await world.deliver()
        posts = world.fake.called("chat.postMessage")
        assert sorted(p["channel"] for p in posts) == [SALES, SALES_2]
        blocks = posts[0]["blocks"]
        assert blocks[0]["type"] == "header" and blocks[-2]["type"] == "actions"
        assert "acknowledged by 0 of 2" in json.dumps(blocks)

        status, _ = await world.press("strategy.ack", "1", REP1)
        assert status == 200
        [acked] = await world.fake.wait_for("response_url")
        assert "you acknowledged “Mid-market first”" in acked["text"]
        await world.deliver()
        updates = world.fake.called("chat.update")
        assert len(updates) == 2 and all("acknowledged by 1 of 2" in json.dumps(u["blocks"]) for u in updates)

        ts = rows(world.ctx.db, Outbox, address=SALES, kind="post")[0].message_ref
        reaction = {
            "type": "reaction_added",
            "user": REP2,
            "reaction": "white_check_mark",
            "item": {"type": "message", "channel": SALES, "ts": ts},
            "item_user": slack_fake.BOT_USER,
        }
        assert await world.event("reaction_added", reaction, "Ev0000000001") == 200
        # Slack retrying it: the same event, signed anew.
        assert (
            await world.event("reaction_added", reaction, "Ev0000000001", timestamp=int(time.time()) + 1)
            == 200
        )
        await world.fake.wait_for("chat.postEphemeral", 2)
        await asyncio.sleep(0.3)
        assert len(rows(world.ctx.db, Acknowledgement)) == 2
        assert [e.event_id for e in rows(world.ctx.db, InboundEvent)] == ["Ev0000000001"]
        await world.deliver()
        assert "acknowledged by 2 of 2" in json.dumps(world.fake.called("chat.update")[-1]["blocks"])

    run(sctx, scenario)


def test_a_question_opens_a_modal_reaches_the_author_and_the_answer_comes_back(sctx: Context) -> None:
    async def scenario(world: World) -> None:
        await announce(world)
        await world.deliver()
        await world.press("strategy.ask", "1", REP1)
        question = await world.opened(2)
        assert question["callback_id"] == "strategy.question"
        await world.submit(question, REP1, {"text": "Does it apply to renewals?"})
        await world.deliver()
        [to_lead] = [p for p in world.fake.called("chat.postMessage") if p["channel"] == LEAD]
        assert "Rita Rep" in json.dumps(to_lead["blocks"]) and "renewals" in json.dumps(to_lead["blocks"])
        await world.press("strategy.answer", str(rows(world.ctx.db, Question)[0].id), LEAD)
        answer = await world.opened(3)
        await world.submit(answer, LEAD, {"answer": "Yes, from their next term."})
        await world.deliver()
        [to_rep] = [p for p in world.fake.called("chat.postMessage") if p["channel"] == REP1]
        assert "next term" in json.dumps(to_rep["blocks"])

    run(sctx, scenario)


def test_a_modal_with_mistakes_stays_open_with_the_errors_and_stores_nothing(sctx: Context) -> None:
    async def scenario(world: World) -> None:
        await world.command("strategy", "", LEAD)
        view = await world.opened(1)
        answer = await world.submit(view, LEAD, {**DECISION, "why": "", "reps_may": "", "reps_may_not": ""})
        assert answer["response_action"] == "errors"
        assert set(answer["errors"]) == {"why", "reps_may"}
        assert rows(world.ctx.db, Decision) == []

    run(sctx, scenario)


def test_only_requests_signed_by_slack_and_fresh_are_heard(sctx: Context) -> None:
    async def scenario(world: World) -> None:
        body = slack_fake.slash_command("objection", "too expensive", REP1, fake=world.fake)
        forged, _ = await world.send(body, secret="not-the-secret")
        stale, _ = await world.send(body, timestamp=1_700_000_000)
        assert (forged, stale) == (401, 401)
        await asyncio.sleep(0.2)
        assert rows(world.ctx.db, Objection) == [] and world.fake.called("response_url") == []

    run(sctx, scenario)


def test_a_replayed_request_is_refused_even_with_its_valid_signature(sctx: Context) -> None:
    async def scenario(world: World) -> None:
        body = slack_fake.slash_command("objection", "too expensive", REP1, fake=world.fake)
        now = int(time.time())
        first, _ = await world.send(body, timestamp=now)
        again, said = await world.send(body, timestamp=now)  # the same request, byte for byte
        assert (first, again) == (200, 401) and "already received" in said
        await world.fake.wait_for("response_url")
        await world.settled()
        assert len(rows(world.ctx.db, Objection)) == 1
        retried, _ = await world.send(body, timestamp=now + 1)  # signed anew, as Slack's retries are
        assert retried == 200
        await world.fake.wait_for("response_url", 2)
        await world.settled()
        assert len(rows(world.ctx.db, Objection)) == 2  # a command, unlike an event, has no id to dedupe by
        headers = {**slack_fake.sign(body, timestamp=now), "Content-Type": FORM, "X-Slack-Retry-Num": "1"}
        async with world.http.post(world.url, data=body.encode(), headers=headers) as response:
            assert response.status == 200  # a copy marked as Slack's retry: answered, not done again
        await world.settled()
        assert len(rows(world.ctx.db, Objection)) == 2

    run(sctx, scenario)


def test_an_objection_in_one_line_and_from_a_message_shortcut(sctx: Context) -> None:
    async def scenario(world: World) -> None:
        await world.command("objection", "too expensive vs Acme", REP1)
        [reply] = await world.fake.wait_for("response_url")
        assert (
            reply["response_type"] == "ephemeral"
            and "Recorded" in reply["text"]
            and "theme: price" in reply["text"]
        )
        await world.send(slack_fake.shortcut("Customer: <!channel> your price is too high", REP2))
        view = await world.opened(1)
        assert view["callback_id"] == "objection.log"
        text_input = next(b for b in view["blocks"] if b.get("block_id") == "text")
        assert text_input["element"]["initial_value"] == "Customer: <!channel> your price is too high"
        await world.submit(view, REP2, {"text": text_input["element"]["initial_value"], "severity": "high"})
        await world.fake.wait_for("chat.postEphemeral")
        assert [o.text for o in rows(world.ctx.db, Objection)][1].startswith("Customer:")
        # What a user typed reaches Slack escaped: no one gets pinged by it.
        assert "<!channel>" not in json.dumps(world.fake.called("chat.postEphemeral"))

    run(sctx, scenario)


def test_past_users_info_s_rate_limit_people_still_count_and_slack_is_not_asked_again_too_soon(
    sctx: Context,
) -> None:
    """A crowd of new people at once: users.info (Tier 4) refuses past its limit with 429 and a
    Retry-After. What each person did is still done, under their id, and Touchline waits as long
    as Slack asked before asking it about anyone again."""

    async def scenario(world: World) -> None:
        world.fake.tiers["users.info"] = [(3, 60.0)]
        newcomers = [f"U0NEW{n:06d}" for n in range(6)]
        for n, user in enumerate(newcomers, 1):
            status, _ = await world.command("objection", "too expensive vs Acme", user)
            assert status == 200
            await world.fake.wait_for("response_url", n)  # one after the other: none in flight at once
        replies = await world.fake.wait_for("response_url", 6)
        assert all("Recorded" in reply["text"] for reply in replies), replies
        asked = world.fake.called("users.info")
        # Three answered, the fourth refused (the fake refuses as Slack does), then none asked.
        assert len(asked) == 4 and {call.get("user") for call in asked} <= set(newcomers), asked
        refused = [c for c in world.fake.calls if c.method == "users.info" and c.answer.get("ok") is False]
        assert len(refused) == 1
        assert len(rows(world.ctx.db, Objection)) == 6

    run(sctx, scenario)


def test_a_reaction_that_means_nothing_still_leaves_the_inbox_done(sctx: Context) -> None:
    # A reaction that means nothing here is answered without a unit of work, so nothing else
    # marks its inbox item done.
    async def scenario(world: World) -> None:
        reaction = {
            "type": "reaction_added",
            "user": REP1,
            "reaction": "tada",
            "item": {"type": "message", "channel": SALES, "ts": "1700000000.000100"},
            "item_user": REP2,
        }
        assert await world.event("reaction_added", reaction, "Ev0000000002") == 200
        await world.settled()
        [item] = rows(world.ctx.db, InboxItem)
        assert item.kind == "reaction" and item.done and item.fields is None

    run(sctx, scenario)


def test_a_channel_the_bot_is_not_in_fails_that_post_only_and_the_sender_is_told_how_to_fix_it(
    sctx: Context,
) -> None:
    async def scenario(world: World) -> None:
        await announce(world)
        world.fake.errors["chat.postMessage"] = ["not_in_channel"]
        await world.deliver()
        # The two channels' lanes go side by side: the refusal meets whichever posts first.
        [failed] = rows(world.ctx.db, Outbox, status="failed")
        assert failed.address in (SALES, SALES_2)
        said = "the bot is not in the channel — invite it with /invite @Touchline"
        assert f"name-of-{failed.address.lower()}: {said}" in (failed.error or "")
        other = SALES_2 if failed.address == SALES else SALES
        assert [r.status for r in rows(world.ctx.db, Outbox, address=other)] == ["sent"]
        await world.deliver()
        [told] = [p for p in world.fake.called("chat.postMessage") if p["channel"] == LEAD]
        assert "invite it with /invite @Touchline" in json.dumps(
            told["blocks"]
        ) and "going to 1 of 2 channels" in json.dumps(told["blocks"])

    run(sctx, scenario)


def test_a_rate_limited_post_waits_as_long_as_slack_asks(sctx: Context, clock: Clock) -> None:
    async def scenario(world: World) -> None:
        await announce(world)
        world.fake.errors["chat.postMessage"] = ["429"]
        await world.deliver()
        [waiting] = rows(world.ctx.db, Outbox, status="pending")
        assert (waiting.due_at - clock.now).total_seconds() == 7 and "slow down" in (waiting.error or "")

    run(sctx, scenario)


def test_the_app_home_shows_what_matters_to_each_person(sctx: Context) -> None:
    async def scenario(world: World) -> None:
        await announce(world)
        await world.event(
            "app_home_opened",
            {"type": "app_home_opened", "user": LEAD, "tab": "home", "channel": "D0LEAD0001"},
            "Ev2",
        )
        await world.event(
            "app_home_opened",
            {"type": "app_home_opened", "user": REP1, "tab": "home", "channel": "D0REP00001"},
            "Ev3",
        )
        published = await world.fake.wait_for("views.publish", 2)
        by_user = {p["user_id"]: json.dumps(p["view"]) for p in published}
        assert "Your decisions" in by_user[LEAD] and "acknowledged by 0 of 2" in by_user[LEAD]
        assert "Your decisions" not in by_user[REP1] and "Active decisions" in by_user[REP1]
        assert "15% on 3-year deals" in by_user[REP1]

    run(sctx, scenario)


def test_user_groups_and_channel_members_give_roles_and_the_y_of_x_of_y(sctx: Context) -> None:
    async def scenario(world: World) -> None:
        world.fake.groups["S0SALES0001"] = ["U0NEWREP001"]
        world.fake.members[SALES] = [REP1, REP2, "U0NEWREP001", "U0NEWREP002", slack_fake.BOT_USER]
        world.touchline.slack.people.bot_user_id = slack_fake.BOT_USER  # type: ignore[union-attr]
        await world.touchline.slack.people.refresh()  # type: ignore[union-attr]
        paged = [c for c in world.fake.called("conversations.members") if c["channel"] == SALES]
        assert len(paged) == 3  # five members, two to a page
        newcomer = await world.touchline.slack.people.actor("U0NEWREP001")  # type: ignore[union-attr]
        assert newcomer.roles == frozenset({"rep"})  # a rep by the user group app.yaml names
        await announce(world)
        await world.fake.wait_for("chat.postEphemeral")
        await world.deliver()
        assert "acknowledged by 0 of 4" in json.dumps(world.fake.called("chat.postMessage")[0]["blocks"])
        assert {p.key for p in rows(world.ctx.db, Person)} >= {"slack:U0NEWREP001", "slack:U0NEWREP002"}

    run(sctx, scenario)


def test_the_digest_goes_with_its_chart_uploaded_in_the_direct_message(sctx: Context, clock: Clock) -> None:
    from handlers import digest

    async def scenario(world: World) -> None:
        await world.command("objection", "too expensive vs Acme", REP1)
        await world.fake.wait_for("response_url")
        clock.advance(days=1)  # Monday's digest covers the week before it
        assert digest.send_weekly(world.ctx) == 1
        await world.deliver()
        [to_market] = [p for p in world.fake.called("chat.postMessage") if p["channel"] == MARKET]
        assert "What the field heard" in to_market["text"]
        [asked] = world.fake.called("files.getUploadURLExternal")
        [completed] = world.fake.called("files.completeUploadExternal")
        assert asked["filename"].endswith(".png") and completed["channel_id"] == "D" + MARKET[1:]
        assert next(iter(world.fake.uploads.values())).startswith(b"\x89PNG")

    run(sctx, scenario)


def test_long_cards_are_split_and_cut_visibly_within_slack_s_limits() -> None:
    from slack_sdk.models.blocks import Block

    long = Card(
        title="T" * 300,
        sections=tuple(
            Section(heading=f"Part {i}", text="word " * 1000, facts=(Fact("Why", "x" * 100),))
            for i in range(40)
        ),
        buttons=(Button("B" * 100, "strategy.ack", "9" * 3000),),
        footer="f",
    )
    blocks = card_blocks(long)
    assert len(blocks) == 50
    assert "more parts not shown" in json.dumps(blocks[-3]) and "(continued)" in json.dumps(blocks)
    for block in blocks:
        Block.parse(block).to_dict()  # type: ignore[union-attr]
    form = Form("f", "A title far longer than twenty-four", (FormField("t", "Text", max_length=9000),))
    assert len(modal(form)["title"]["text"]) <= 24


def test_the_manifest_asks_for_everything_touchline_uses() -> None:
    manifest = yaml.safe_load(slack_manifest("https://touchline.example.com/"))
    commands = {c["command"]: c["url"] for c in manifest["features"]["slash_commands"]}
    assert set(commands) == {"/strategy", "/asset", "/objection", "/pulse", "/digest", "/touchline"}
    assert set(commands.values()) == {"https://touchline.example.com/slack/events"}
    assert (
        manifest["settings"]["interactivity"]["request_url"] == "https://touchline.example.com/slack/events"
    )
    assert {"reaction_added", "reaction_removed", "app_home_opened"} <= set(
        manifest["settings"]["event_subscriptions"]["bot_events"]
    )
    assert {"commands", "chat:write", "reactions:read", "users:read.email", "usergroups:read"} <= set(
        manifest["oauth_config"]["scopes"]["bot"]
    )
    assert manifest["features"]["shortcuts"][0]["callback_id"] == "log_as_objection"
    assert manifest["features"]["app_home"]["home_tab_enabled"] is True
    with pytest.raises(ValueError, match="https://"):
        slack_manifest("http://localhost:3978")
    with pytest.raises(ValueError, match="either --url"):
        slack_manifest(None)
    socket = yaml.safe_load(slack_manifest(None, socket_mode=True))
    assert socket["settings"]["socket_mode_enabled"] is True
    assert "request_url" not in socket["settings"]["interactivity"]
    assert all("url" not in c for c in socket["features"]["slash_commands"])


def test_socket_mode_hears_commands_and_events_over_slack_s_websocket(sctx: Context) -> None:
    async def main() -> None:
        async with slack_fake.fake_slack() as fake:
            env = Environment(
                slack_bot_token=SecretStr(slack_fake.TOKEN),
                slack_signing_secret=SecretStr(slack_fake.SECRET),
                slack_app_token=SecretStr("xapp-1-A0APP00001-test"),
                slack_api_url=fake.base_url,
                port=free_port(),
            )
            stop = asyncio.Event()
            running = asyncio.create_task(Touchline.build(sctx, env).run(stop))
            try:
                form = slack_fake.slash_command("objection", "too expensive", REP1, fake=fake)
                command = dict(urllib.parse.parse_qsl(form))
                ack = await fake.push("slash_commands", command, envelope_id="env-1")
                assert ack["envelope_id"] == "env-1"
                [reply] = await fake.wait_for("response_url")
                assert "Recorded" in reply["text"]
                assert [o.text for o in rows(sctx.db, Objection)] == ["too expensive"]
                home = json.loads(
                    slack_fake.event(
                        "app_home_opened",
                        {"type": "app_home_opened", "user": REP1, "tab": "home", "channel": "D0REP00001"},
                        event_id="Ev-socket-1",
                    )
                )
                await fake.push("events_api", home, envelope_id="env-2")
                [published] = await fake.wait_for("views.publish")
                assert published["user_id"] == REP1
            finally:
                stop.set()
                await running
            assert [c.method for c in fake.calls].count("apps.connections.open") == 1

    asyncio.run(main())


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_direct_message_is_updated_in_its_dm_channel_not_at_the_person_s_user_id() -> None:
    """Progress messages to a broadcast's sender are direct messages kept up to date: Slack's
    chat.update wants the DM's id (D…), which the fake, like Slack, insists on."""
    from aiohttp import ClientSession
    from slack_sdk.web.async_client import AsyncWebClient

    from bot.platform import DeliveryError
    from bot.slack.platform import SlackPlatform

    async def main() -> None:
        async with slack_fake.fake_slack() as fake, ClientSession() as http:
            async with http.post(
                f"{fake.base_url}chat.update", data={"channel": "U0LEAD0001", "ts": "1.1"}
            ) as r:
                assert (await r.json())["error"] == "channel_not_found"  # the fake refuses, as Slack does
            client = AsyncWebClient(token=slack_fake.TOKEN, base_url=fake.base_url, session=http)
            card = Card(title="📬 Delivered to 1 of 2")
            ts = await SlackPlatform(client).send_direct("U0LEAD0001", card, delivery_id=1)
            platform = SlackPlatform(client)  # as after a restart: the DM's id is not known yet
            for title in ("📬 Delivered to 2 of 2", "📬 Finished."):
                await platform.update("U0LEAD0001", ts, Card(title=title), delivery_id=2)
            updates = fake.answered("chat.update")
            assert [u.body["channel"] for u in updates] == ["D0LEAD0001", "D0LEAD0001"]
            assert all(u.answer and u.answer["ok"] for u in updates)
            assert len(fake.called("conversations.open")) == 1  # looked up once, then kept
            fake.errors["conversations.open"] = ["user_not_found"]
            with pytest.raises(DeliveryError):
                await SlackPlatform(client).update("U0GONE0001", ts, card, delivery_id=3)

    asyncio.run(main())
