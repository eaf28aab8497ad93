"""The weekly digest: totals, themes with trends and quotes, new and rising themes, gaps,
asset feedback, decisions; its JSON schema; sending it once; `/digest` and `touchline digest`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from sqlalchemy import update

from bot.config import parse_organisation_text
from handlers import digest, inbound, setup, strategy
from handlers.context import Actor, Context
from handlers.ui import Card
from storage.database import Database, migrate
from storage.models import Asset, Objection, Outbox
from tests.cli import run_cli
from tests.conftest import ORG_YAML, ROOT
from tests.fakes import Clock, rows, theme_named

SCHEMA = json.loads((ROOT / "docs" / "digest.schema.json").read_text())
NOW = datetime(2026, 12, 7, 7, 0, tzinfo=UTC)  # Monday 08:00 in Berlin


def with_digest(**digest_settings: Any) -> str:
    config = yaml.safe_load(ORG_YAML)
    config["digest"] = {"recipients": ["market"], **digest_settings}
    return yaml.safe_dump(config, sort_keys=False)


@pytest.fixture
def dctx(db: Database, clock: Clock) -> Context:
    ctx = Context(db=db, org=parse_organisation_text(with_digest()), clock=clock)
    setup.apply(ctx)
    return ctx


def log(ctx: Context, actor: Actor, text: str, *, days_ago: float, **details: Any) -> Objection:
    """An objection as if logged `days_ago` before NOW (through the real entry)."""
    clock: Clock = ctx.clock  # type: ignore[assignment]
    clock.now = NOW - timedelta(days=days_ago)
    if details:
        form = inbound.command(ctx, actor, "objection", "").form
        assert form is not None
        values = {"text": text, "severity": "medium", **details, **form.state}
        reply = inbound.submit(ctx, actor, form.form_id, values)
    else:
        reply = inbound.command(ctx, actor, "objection", text)
    assert "Recorded" in reply.text, reply
    clock.now = NOW
    return rows(ctx.db, Objection)[-1]


def build(ctx: Context) -> digest.Digest:
    with ctx.db.session() as session:
        return digest.build(session, ctx.org, end=NOW)


def test_the_digest_counts_the_period_and_compares_it_with_the_one_before(
    dctx: Context, people: dict[str, Actor]
) -> None:
    for days in (1, 2, 3):
        log(dctx, people["rep1"], "too expensive vs Acme", days_ago=days)
    log(dctx, people["rep2"], "their budget is too small", days_ago=4)
    log(dctx, people["rep2"], "too expensive again", days_ago=9)
    log(dctx, people["rep3"], "the price went up", days_ago=10)
    result = build(dctx)
    assert (result.objections, result.reps, result.previous_objections) == (4, 2, 2)
    assert result.change == pytest.approx(1.0)
    [price] = result.themes
    assert (price.name, price.objections, price.reps, price.previous) == ("price", 4, 2, 2)
    assert price.trend == [0, 0, 0, 0, 0, 0, 2, 4]
    assert "+100% on the period before" in digest.card(result, "Europe/Berlin").sections[0].text


def test_themes_come_largest_first_with_segments_competitors_and_quotes_but_nothing_confidential(
    dctx: Context, people: dict[str, Actor]
) -> None:
    log(dctx, people["rep1"], "Globex quoted 30% less", days_ago=1, competitor="Globex", segment="SMB")
    log(
        dctx,
        people["rep2"],
        "Globex quoted them 30% less too",
        days_ago=2,
        competitor="Globex",
        segment="SMB",
    )
    log(dctx, people["rep3"], "Acme offered 50% off", days_ago=2, competitor="Acme", confidential=True)
    log(dctx, people["rep1"], "No SAP connector", days_ago=3)
    result = build(dctx)
    assert [t.name for t in result.themes] == ["competitor", "integration"]
    competitor = result.themes[0]
    assert competitor.competitors == [("Globex", 2), ("Acme", 1)] and competitor.segments == [("SMB", 2)]
    assert competitor.quotes == ["“Globex quoted 30% less”"]  # one voice per group, the most heard first
    shown = json.dumps(digest.as_json(result))
    assert "50% off" not in shown and "Rita" not in shown and "Ravi" not in shown


def test_quotes_carry_names_only_when_configured(
    db: Database, clock: Clock, people: dict[str, Actor]
) -> None:
    ctx = Context(db=db, org=parse_organisation_text(with_digest(quote_names=True)), clock=clock)
    log(ctx, people["rep1"], "too expensive vs Acme", days_ago=1)
    assert build(ctx).themes[0].quotes == ["“too expensive vs Acme” — Rita Rep"]


def test_new_and_rising_themes(dctx: Context, people: dict[str, Actor]) -> None:
    log(dctx, people["rep1"], "too expensive", days_ago=20)
    log(dctx, people["rep1"], "too expensive", days_ago=9)
    for days in (1, 2, 3, 4):
        log(dctx, people["rep2"], f"the price is too high {days}", days_ago=days)
    log(dctx, people["rep3"], "They want a mobile app", days_ago=1)
    result = build(dctx)
    assert [t.name for t in result.new_themes] == ["want mobile app"]
    assert [(t.name, t.previous, t.objections) for t in result.rising] == [("price", 1, 4)]


def test_gaps_are_themes_no_asset_answers_and_themes_growing_after_one(
    dctx: Context, people: dict[str, Actor]
) -> None:
    price, integration = theme_named(dctx.db, "price"), theme_named(dctx.db, "integration")
    clock: Clock = dctx.clock  # type: ignore[assignment]
    clock.now = NOW - timedelta(days=30)
    form = inbound.command(dctx, people["market"], "asset", "").form
    assert form is not None
    values = {
        "title": "Price battlecard",
        "link": "https://x.example/b",
        "kind": "battlecard",
        "key_message": "TCO",
        "themes": [str(price)],
        "audiences": ["emea"],
    }
    inbound.submit(dctx, people["market"], form.form_id, {**values, **form.state})
    log(dctx, people["rep1"], "too expensive", days_ago=9)
    log(dctx, people["rep1"], "too expensive still", days_ago=2)
    log(dctx, people["rep2"], "price too high", days_ago=1)
    log(dctx, people["rep2"], "no SAP connector", days_ago=1)
    result = build(dctx)
    assert [(g.theme_id, g.objections) for g in result.unanswered] == [(integration, 1)]
    [growing] = result.growing_after_asset
    assert (growing.theme, growing.previous, growing.objections, growing.asset) == (
        "price",
        1,
        2,
        "Price battlecard",
    )


def test_asset_feedback_and_decisions_are_in_it(dctx: Context, people: dict[str, Actor]) -> None:
    from handlers import assets

    clock: Clock = dctx.clock  # type: ignore[assignment]
    clock.now = NOW - timedelta(days=3)
    form = inbound.command(dctx, people["market"], "asset", "").form
    assert form is not None
    values = {
        "title": "Deck",
        "link": "https://x.example/d",
        "kind": "deck",
        "key_message": "Why us",
        "audiences": ["emea"],
    }
    inbound.submit(dctx, people["market"], form.form_id, {**values, **form.state})
    asset = rows(dctx.db, Asset)[0]
    inbound.action(dctx, people["rep1"], assets.USEFUL, str(asset.id))
    reason = inbound.action(dctx, people["rep2"], assets.DOESNT_FIT, str(asset.id)).form
    assert reason is not None
    inbound.submit(dctx, people["rep2"], reason.form_id, {"reason": "Too generic.", **reason.state})
    decision = inbound.command(dctx, people["lead"], "strategy", "").form
    assert decision is not None
    inbound.submit(
        dctx,
        people["lead"],
        decision.form_id,
        {
            "title": "Focus",
            "decision": "D",
            "why": "W",
            "reps_may": "M",
            "effective_on": "2026-12-01",
            "audiences": ["emea"],
            **decision.state,
        },
    )
    inbound.action(dctx, people["rep1"], strategy.ACK, "1")
    question = inbound.action(dctx, people["rep2"], strategy.ASK, "1").form
    assert question is not None
    inbound.submit(dctx, people["rep2"], question.form_id, {"text": "Until when?", **question.state})
    clock.now = NOW
    result = build(dctx)
    assert [(a.title, a.useful) for a in result.useful_assets] == [("Deck", 1)]
    assert [(a.title, a.reason) for a in result.doesnt_fit] == [("Deck", "Too generic.")]
    [focus] = result.decisions
    assert (focus.title, focus.acknowledged, focus.members, focus.open_questions) == (
        "Focus",
        1,
        2,
        1,
    )
    assert "Until when?" not in str(digest.card(result, "Europe/Berlin").to_dict())  # the author's, leaders'

    assert not result.empty and result.objections == 0


def test_the_json_follows_its_documented_schema(dctx: Context, people: dict[str, Actor]) -> None:
    log(dctx, people["rep1"], "too expensive vs Acme", days_ago=1, competitor="Acme", segment="SMB")
    log(dctx, people["rep2"], "they want a mobile app", days_ago=2)
    data = digest.as_json(build(dctx))
    jsonschema.Draft202012Validator(SCHEMA).validate(data)
    assert data["themes"][0]["id"] == theme_named(dctx.db, "price")
    jsonschema.Draft202012Validator(SCHEMA).validate(digest.as_json(build_empty(dctx)))


def build_empty(ctx: Context) -> digest.Digest:
    with ctx.db.session() as session:
        return digest.build(session, ctx.org, end=NOW - timedelta(days=100))


def test_the_digest_goes_to_its_recipients_once_per_period_and_not_at_all_when_empty(
    dctx: Context, people: dict[str, Actor], clock: Clock
) -> None:
    clock.now = NOW
    assert digest.send_weekly(dctx) == 0  # nothing happened
    assert "Nothing to report" in inbound.command(dctx, people["market"], "digest", "").text
    log(dctx, people["rep1"], "too expensive vs Acme", days_ago=1)
    assert digest.send_weekly(dctx) == 1
    assert digest.send_weekly(dctx) == 0  # a retry or a second scheduler: once
    [sent] = rows(dctx.db, Outbox, kind="direct", address="market")
    card = Card.from_dict(sent.card)
    assert card.title.startswith("🗞 What the field heard")
    assert card.image is not None and card.image.png.startswith(b"\x89PNG")


def test_slash_digest_is_for_marketers_and_leaders(dctx: Context, people: dict[str, Actor]) -> None:
    log(dctx, people["rep1"], "too expensive vs Acme", days_ago=1)
    assert "for marketers and leaders" in inbound.command(dctx, people["rep1"], "digest", "").text
    reply = inbound.command(dctx, people["market"], "digest", "")
    assert reply.card is not None and reply.card.sections[1].heading == "price (new)"


def test_touchline_digest_prints_text_markdown_json_and_the_chart(
    tmp_path: Path, people: dict[str, Actor]
) -> None:
    url = f"sqlite:///{tmp_path / 'd.db'}"
    migrate(url)
    config = tmp_path / "app.yaml"
    config.write_text(with_digest())
    ctx = Context(db=Database.from_url(url), org=parse_organisation_text(with_digest()))
    setup.apply(ctx)
    from handlers import directory

    rep = directory.console_actor(ctx, "rep1")
    inbound.command(ctx, rep, "objection", "too expensive vs Acme")
    ctx.db.dispose()
    env = {"DATABASE_URL": url}
    as_json = run_cli("digest", "--format", "json", "--config", str(config), env=env)
    assert as_json.returncode == 0, as_json.stderr
    jsonschema.Draft202012Validator(SCHEMA).validate(json.loads(as_json.stdout))
    markdown = run_cli("digest", "--format", "markdown", "--config", str(config), env=env)
    assert markdown.stdout.startswith("# 🗞 What the field heard") and "## price (new)" in markdown.stdout
    chart = tmp_path / "chart.png"
    text = run_cli("digest", "--since", "2026-01-01", "--chart", str(chart), "--config", str(config), env=env)
    assert "1 objection from 1 rep" in text.stdout and chart.read_bytes().startswith(b"\x89PNG")
    bad = run_cli("digest", "--since", "01/02/2026", "--config", str(config), env=env)
    assert bad.returncode == 2 and "YYYY-MM-DD" in bad.stderr


def test_old_objections_are_counted_by_the_database_not_loaded(
    dctx: Context, people: dict[str, Actor]
) -> None:
    # A year of history behind the period changes nothing in what the period says.
    log(dctx, people["rep1"], "too expensive", days_ago=1)
    before = build(dctx)
    log(dctx, people["rep2"], "too expensive", days_ago=300)
    with dctx.db.session() as session:
        session.execute(update(Objection).values(severity="high"))
    after = build(dctx)
    assert (after.objections, after.themes[0].trend) == (before.objections, before.themes[0].trend)
    assert not after.themes[0].new  # it was heard 300 days ago
