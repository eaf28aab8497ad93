"""A new person's first activities arriving at the same moment (issue 17): every one of them is
served, and the person, their identity and their chat are stored once."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from handlers import conversations, directory
from handlers.context import Context
from storage.models import AudienceMember, Conversation, GroupMember, Identity, Person, RosterMember
from tests.fakes import rows
from tests.teams_fake import User
from tests.teams_world import teams_world

AT_ONCE = 8
NEWCOMER = "5b0c1d2e-0000-4f00-9e9f-000000000017"
CHAT = f"a:personal-{NEWCOMER}"


def at_once(work: list[Callable[[], object]]) -> list[BaseException]:
    """Run each of `work` on its own thread, all let go together; the errors they raised."""
    barrier = threading.Barrier(len(work))
    errors: list[BaseException] = []

    def start(body: Callable[[], object]) -> None:
        barrier.wait()
        try:
            body()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=start, args=(body,)) for body in work]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return errors


def test_a_new_person_met_remembered_and_identified_at_once_is_stored_once(ctx: Context) -> None:
    def remember() -> None:
        conversations.remember(
            ctx,
            "teams",
            CHAT,
            kind=conversations.PERSONAL,
            reference={"conversation": {"id": CHAT}},
            person_external_id=NEWCOMER,
        )

    def identify() -> None:
        directory.identify(ctx, "teams", NEWCOMER, name="Nia Newcomer", email="nia@test.example")

    def meet() -> None:
        ctx.db.run(lambda session: directory.meet(session, "teams", NEWCOMER))

    work: list[Callable[[], object]] = [(remember, identify, meet)[i % 3] for i in range(AT_ONCE)]
    assert at_once(work) == []
    newcomers = [p for p in rows(ctx.db, Person) if p.key == f"teams:{NEWCOMER}"]
    assert [p.name for p in newcomers] == ["Nia Newcomer"]
    assert [i.person_id for i in rows(ctx.db, Identity, external_id=NEWCOMER)] == [newcomers[0].id]
    assert [c.person_id for c in rows(ctx.db, Conversation, address=CHAT)] == [newcomers[0].id]


def test_a_new_slack_user_s_commands_at_once_each_get_their_actor(ctx: Context) -> None:
    actors: list[Any] = []

    def command() -> None:
        actors.append(directory.identify(ctx, "slack", "U0NEW00017", name="Sam", email="sam@test.example"))

    assert at_once([command] * AT_ONCE) == []
    [person] = [p for p in rows(ctx.db, Person) if p.key == "slack:U0NEW00017"]
    assert {a.person_id for a in actors} == {person.id} and len(actors) == AT_ONCE
    assert len(rows(ctx.db, Identity, external_id="U0NEW00017")) == 1


def test_a_configured_person_s_e_mail_and_their_first_id_met_at_once_stay_apart_from_harm(
    ctx: Context,
) -> None:
    """Slack says who it is (by e-mail, `lead` of app.yaml) while a channel listing meets the same
    id: the id belongs to one person, and the configured person is never folded into a newcomer."""

    def command() -> None:
        directory.identify(ctx, "slack", "U0LENA0017", name="Lena", email="lena@test.example")

    def listing() -> None:
        ctx.db.run(lambda session: directory.meet(session, "slack", "U0LENA0017"))

    assert at_once([(command, listing)[i % 2] for i in range(AT_ONCE)]) == []
    [lead] = [p for p in rows(ctx.db, Person) if p.key == "lead"]
    met = [p.id for p in rows(ctx.db, Person) if p.key == "slack:U0LENA0017"]
    [identity] = rows(ctx.db, Identity, external_id="U0LENA0017")
    assert lead.from_config and identity.person_id in [lead.id, *met] and len(met) <= 1
    assert met == [] or identity.person_id == met[0]  # a newcomer no identity points at is not left


def test_the_same_new_group_and_team_listed_at_once_are_stored_once(ctx: Context) -> None:
    """Two replicas reading the same user group or team roster at the same moment."""
    ids = [f"U0GROUP{i:03d}" for i in range(5)]
    conversations.remember(ctx, "teams", "19:team@thread.tacv2", kind="channel", reference={})
    roster = [(f"aad-{i}", f"29:aad-{i}", f"Member {i}") for i in range(5)]
    # Someone who was in both and left: each listing drops them.
    directory.set_group_members(ctx, "slack-group:S0SALES", "slack", ["U0GONE0017"])
    directory.set_channel_members(ctx, "slack", {"C0000000001": ["U0GONE0017"]})

    def group() -> None:
        directory.set_group_members(ctx, "slack-group:S0SALES", "slack", ids)

    def channel() -> None:
        directory.set_channel_members(ctx, "slack", {"C0000000001": ids})

    def team() -> None:
        conversations.remember_members(ctx, "teams", "19:team@thread.tacv2", roster)

    assert at_once([(group, channel, team)[i % 3] for i in range(AT_ONCE + 1)]) == []
    assert (
        sorted(i.external_id for i in rows(ctx.db, Identity, platform="slack") if i.external_id in ids) == ids
    )
    assert len(rows(ctx.db, GroupMember, group_ref="slack-group:S0SALES")) == len(ids)
    assert sorted((m.external_id, m.name) for m in rows(ctx.db, RosterMember)) == [
        (r[0], r[2]) for r in roster
    ]
    in_channel = {m.person_id for m in rows(ctx.db, AudienceMember, source="slack")}
    assert in_channel == {
        i.person_id for i in rows(ctx.db, Identity, platform="slack") if i.external_id in ids
    }


def test_a_new_teams_user_s_first_messages_at_once_are_all_answered(ctx: Context) -> None:
    """Through the bot's real /api/messages: nobody is told something went wrong."""
    newcomer = User(NEWCOMER, "Nia Newcomer")

    async def scenario() -> None:
        async with teams_world(ctx) as world:
            await asyncio.gather(*(world.say(newcomer, "help") for _ in range(AT_ONCE)))
            told = [str(s.activity.get("text") or "") for s in world.fake.to(newcomer.personal)]
            assert told and not [t for t in told if "went wrong" in t], told

    asyncio.run(scenario())
    [person] = [p for p in rows(ctx.db, Person) if p.key == f"teams:{NEWCOMER}"]
    assert [i.person_id for i in rows(ctx.db, Identity, external_id=NEWCOMER)] == [person.id]
    assert [c.person_id for c in rows(ctx.db, Conversation, address=newcomer.personal)] == [person.id]
