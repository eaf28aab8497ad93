"""Privacy: `touchline forget` erases a person and says what it did; old objections go after the months
app.yaml keeps; confidential objections and anonymous concerns never carry a name."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from bot.config import parse_organisation_text
from handlers import assets, digest, directory, exports, inbound, privacy, setup, signin, strategy
from handlers.context import Actor, Context
from scheduler.runner import Timing, wanted_jobs
from storage.database import Database
from storage.models import (
    Acknowledgement,
    AssetFeedback,
    AudienceMember,
    Identity,
    Objection,
    Outbox,
    Person,
    Question,
    SignInLink,
    Suggestion,
    Theme,
)
from tests.cli import run_cli
from tests.conftest import ORG_YAML
from tests.fakes import Clock, rows
from tests.test_refusals import ASSET, DECISION


def story(ctx: Context, people: dict[str, Actor]) -> None:
    """Rita Rep does a bit of everything: an objection, an acknowledgement, a question answered in a
    direct message, feedback and a suggestion on assets, a sign-in link."""
    lead, rita, market = people["lead"], people["rep1"], people["market"]
    inbound.submit(ctx, lead, strategy.ANNOUNCE_FORM, DECISION)
    inbound.action(ctx, rita, strategy.ACK, "1")
    inbound.command(ctx, rita, "objection", "too expensive vs Acme")
    inbound.submit(
        ctx, rita, strategy.QUESTION_FORM, {"text": "Renewals too?", "decision": 1, "kind": "question"}
    )
    inbound.submit(ctx, lead, strategy.ANSWER_FORM, {"answer": "Yes.", "question": 1})
    inbound.submit(ctx, market, assets.PUBLISH_FORM, ASSET)
    inbound.action(ctx, rita, assets.USEFUL, "1")
    inbound.submit(ctx, market, assets.DRAFT_FORM, {**ASSET, "title": "Draft", "input_until": "2026-12-10"})
    inbound.submit(ctx, rita, assets.SUGGEST_FORM, {"asset": "2", "text": "Shorter, please."})
    inbound.command(ctx, rita, "touchline", "dashboard")


def test_forget_erases_a_person_and_keeps_what_they_said_without_them(
    ctx: Context, people: dict[str, Actor]
) -> None:
    ctx.public_url = "https://touchline.example.com"
    story(ctx, people)
    rita = people["rep1"]
    assert rows(ctx.db, Outbox, kind="direct", address="rep1")  # the answer to her question

    forgotten = privacy.forget(ctx, "slack:U0000000001")  # found by her Slack id

    said = "\n".join(forgotten.lines())
    assert said.startswith("Forgot Rita Rep:")
    for line in (
        "objections kept, reporter removed: 1",
        "questions kept, asker removed: 1",
        "suggestions kept, author removed: 1",
        "acknowledgements deleted: 1",
        "asset feedback deleted: 1",
        "sign-in links and sessions deleted: 1",
        "platform identities deleted: 2",
    ):
        assert line in said, said
    assert "still in app.yaml" in said  # she is configured: sync would know her again

    [objection] = rows(ctx.db, Objection)
    assert objection.text == "too expensive vs Acme" and objection.reporter_id is None
    assert [q.asker_id for q in rows(ctx.db, Question)] == [None]
    assert [s.person_id for s in rows(ctx.db, Suggestion)] == [None]
    assert rows(ctx.db, Acknowledgement) == [] and rows(ctx.db, AssetFeedback) == []
    assert rows(ctx.db, Outbox, kind="direct", address="rep1") == []
    assert rows(ctx.db, Identity, person_id=rita.person_id) == []
    assert rows(ctx.db, AudienceMember, person_id=rita.person_id) == []
    with ctx.db.session() as session:
        assert session.exec(select(SignInLink).where(SignInLink.person_id == rita.person_id)).all() == []
        person = session.get(Person, rita.person_id)
        assert person is not None
        assert (person.name, person.email, person.key) == (
            "A former colleague",
            None,
            f"forgotten:{rita.person_id}",
        )
        names = [p.name for p in session.exec(select(Person))]
    assert "Rita Rep" not in names

    # The decision's count no longer includes her; her objection still counts in the digest.
    with ctx.db.session() as session:
        assert strategy.acknowledgement_count(session, 1)[0] == 0
        weekly = digest.build(session, ctx.org, end=ctx.now() + timedelta(days=1))
    assert weekly.objections == 1 and weekly.reps == 0


def test_forget_on_the_command_line_says_what_it_did_and_refuses_a_stranger(
    tmp_path: Path, database_url: str
) -> None:
    config = tmp_path / "app.yaml"
    config.write_text(ORG_YAML)
    db = Database.from_url(database_url)
    ctx = Context(db=db, org=parse_organisation_text(ORG_YAML), clock=Clock())
    setup.apply(ctx)
    inbound.command(ctx, directory.console_actor(ctx, "rep2"), "objection", "no SAP connector")
    db.dispose()
    env = {"DATABASE_URL": database_url}

    done = run_cli("forget", "rep2", "--config", str(config), env=env)
    assert done.returncode == 0, done.stderr
    assert "Forgot Ravi Rep:" in done.stdout and "objections kept, reporter removed: 1" in done.stdout

    unknown = run_cli("forget", "nobody@nowhere.example", "--config", str(config), env=env)
    assert unknown.returncode == 2 and "knows nobody as 'nobody@nowhere.example'" in unknown.stderr
    assert "Traceback" not in unknown.stderr


@pytest.fixture
def kept(db: Database, clock: Clock) -> Context:
    org = parse_organisation_text(ORG_YAML.replace("objections:\n", "objections:\n  keep_for_months: 6\n"))
    context = Context(db=db, org=org, clock=clock)
    setup.apply(context)
    return context


def test_objections_older_than_the_months_app_yaml_keeps_are_deleted(kept: Context, clock: Clock) -> None:
    rep = directory.console_actor(kept, "rep1")
    clock.now = datetime(2026, 3, 31, 12, 0, tzinfo=UTC)
    inbound.command(kept, rep, "objection", "too expensive for a pilot")  # theme: price
    clock.now = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    inbound.command(kept, rep, "objection", "budget is frozen")  # price too
    clock.now = datetime(2026, 9, 30, 12, 0, tzinfo=UTC)  # six months back: 30 March, still kept
    assert privacy.apply_retention(kept) == 0
    clock.now = datetime(2026, 10, 1, 12, 0, tzinfo=UTC)  # six months back: 1 April
    assert privacy.apply_retention(kept) == 1
    assert [o.text for o in rows(kept.db, Objection)] == ["budget is frozen"]
    with kept.db.session() as session:
        price = session.exec(select(Theme).where(Theme.key == "price")).one()
    assert price.size == 1  # the theme counts what it has now
    assert "objection-retention" in wanted_jobs(kept.org, Timing())


def test_months_before_keeps_the_day_or_takes_the_month_s_last() -> None:
    assert privacy.months_before(datetime(2026, 8, 31, 9, 0), 6) == datetime(2026, 2, 28, 9, 0)
    assert privacy.months_before(datetime(2026, 1, 15), 1) == datetime(2025, 12, 15)
    assert privacy.months_before(datetime(2026, 3, 31), 24) == datetime(2024, 3, 31)


def test_confidential_objections_never_reach_digests_or_exports_with_their_text(
    ctx: Context, people: dict[str, Actor]
) -> None:
    inbound.submit(
        ctx,
        people["rep1"],
        "objection.log",
        {"text": "our CFO says the price is a scam", "confidential": True, "severity": "high"},
    )
    with ctx.db.session() as session:
        exported = list(exports.objection_rows(session))
        weekly = digest.build(session, ctx.org, end=ctx.now() + timedelta(days=1))
    assert [r["text"] for r in exported] == ["(confidential)"]
    assert weekly.objections == 1
    assert not any("scam" in quote for theme in weekly.themes for quote in theme.quotes)
    assert "scam" not in str(digest.card(weekly, "Europe/Berlin").to_dict())


def test_an_anonymous_concern_stores_no_author_and_no_time_finer_than_the_day(
    ctx: Context, people: dict[str, Actor]
) -> None:
    inbound.submit(ctx, people["lead"], strategy.ANNOUNCE_FORM, DECISION)
    inbound.submit(
        ctx,
        people["rep2"],
        strategy.QUESTION_FORM,
        {"text": "This will cost us renewals.", "decision": 1, "kind": "concern", "anonymous": True},
    )
    ctx.clock.now += timedelta(days=1)  # type: ignore[attr-defined]
    strategy.deliver_concerns(ctx)
    [concern] = rows(ctx.db, Question)
    assert concern.kind == "concern" and concern.asker_id is None
    assert (concern.asked_at.hour, concern.asked_at.minute, concern.asked_at.second) == (0, 0, 0)


def test_sign_in_links_are_stored_as_hashes_only(ctx: Context, people: dict[str, Actor]) -> None:
    ctx.public_url = "https://touchline.example.com"
    text = inbound.command(ctx, people["rep1"], "touchline", "dashboard").text
    token = text.split("/sign-in/")[1].split()[0]
    with ctx.db.session() as session:
        [link] = session.exec(select(SignInLink)).all()
    assert link.token_hash != token and len(link.token_hash) == 64
    assert signin.redeem(ctx, token)  # the token itself opens it, once


def test_what_was_received_and_done_is_forgotten_after_a_day(db: Database, clock: Clock) -> None:
    from storage import inbound_events, inbox
    from storage.models import InboundEvent, InboxItem

    ctx = Context(db=db, org=parse_organisation_text(ORG_YAML), clock=clock)
    with db.session() as session:
        old = inbox.receive(
            session,
            platform="slack",
            key="a",
            kind="command",
            fields={"text": "x"},
            now=clock(),
            claimant="p",
        )
        waiting = inbox.receive(
            session,
            platform="slack",
            key="b",
            kind="command",
            fields={"text": "y"},
            now=clock(),
            claimant="p",
        )
        assert old is not None and waiting is not None
        inbox.finish(session, old)
        inbound_events.first_time(session, platform="slack", event_id="Ev1", now=clock())
    clock.advance(hours=23)
    assert privacy.forget_received(ctx) == 0
    clock.advance(hours=2)
    assert privacy.forget_received(ctx) == 2
    assert [i.key for i in rows(db, InboxItem)] == ["b"]  # not done: kept, whatever its age
    assert rows(db, InboundEvent) == []
