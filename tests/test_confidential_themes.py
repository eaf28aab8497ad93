"""Theme names never come from confidential text: a theme whose objections are all confidential is
named neutrally, everywhere a marketer looks, until a marketing lead names it or a
non-confidential objection joins it."""

from __future__ import annotations

import csv
import io
import json
import re
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlmodel import col

from handlers import dashboard, digest, directory, exports, home, inbound, setup, signin
from handlers.context import Actor, Context
from handlers.ui import Reply
from storage.models import Objection, Theme
from tests.cli import run_cli
from tests.conftest import ORG_YAML
from tests.fakes import Clock, rows
from tests.web_world import serving

SECRET = "Our champion at Contoso says their CFO vetoes every renewal"
SECRET_WORDS = ("champion", "contoso", "cfo", "vetoes", "renewal")
# Not one word of SECRET, but the same concern: it joins SECRET's theme by meaning.
JOINER = "Their finance chief blocks every contract extension"
NEUTRAL = re.compile(r"^Confidential theme \d+$")


@pytest.fixture
def lead_marketer(ctx: Context) -> Actor:
    """A marketing lead, named in app.yaml by e-mail: the one role that reads confidential text."""
    return directory.identify(ctx, "slack", "U0000000099", name="Hedda", email="head.marketing@test.example")


def log(ctx: Context, actor: Actor, text: str, *, confidential: bool = False) -> Reply:
    """An objection through the full form, as a rep submits it; the clock then moves on a minute
    (a period ends just before its `end`, so the digest of "now" holds it)."""
    form = inbound.command(ctx, actor, "objection", "").form
    assert form is not None
    values = {"text": text, "severity": "medium", "confidential": confidential, **form.state}
    reply = inbound.submit(ctx, actor, form.form_id, values)
    assert "Recorded" in reply.text, reply.text
    clock: Clock = ctx.clock  # type: ignore[assignment]
    clock.advance(minutes=1)
    return reply


def shown(reply: Reply) -> str:
    return (reply.text + " " + str(reply.card.to_dict() if reply.card else "")).casefold()


def leaked(text: str, words: tuple[str, ...] = SECRET_WORDS) -> list[str]:
    return [w for w in words if w in text.casefold()]


def theme_of_last(ctx: Context) -> Theme:
    objection = rows(ctx.db, Objection)[-1]
    [theme] = rows(ctx.db, Theme, id=objection.theme_id)
    assert isinstance(theme, Theme)
    return theme


def get(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=20) as response:
            return str(response.read().decode())
    except urllib.error.HTTPError as error:
        raise AssertionError(f"{url}: {error.code} {error.read().decode()[:300]}") from None


def test_a_confidential_objection_that_starts_a_theme_gives_it_a_neutral_name(
    ctx: Context, people: dict[str, Actor]
) -> None:
    reply = log(ctx, people["rep1"], SECRET, confidential=True)
    theme = theme_of_last(ctx)
    assert NEUTRAL.match(theme.name) and theme.name == f"Confidential theme {theme.id}", theme.name
    assert f"theme: Confidential theme {theme.id}." in reply.text
    assert "Its theme has no name yet, so that nothing you wrote shows" in reply.text
    # A second rep hearing the same, confidentially too, is counted and told the same neutral name.
    again = log(ctx, people["rep2"], "Champion at Contoso: the CFO vetoes the renewal", confidential=True)
    assert theme_of_last(ctx).id == theme.id
    assert "You are the 2nd rep to hear this" in again.text and f"Confidential theme {theme.id}" in again.text


def test_a_marketer_sees_none_of_a_confidential_theme_s_words_in_chat_app_home_or_the_digest(
    ctx: Context, people: dict[str, Actor]
) -> None:
    log(ctx, people["rep1"], SECRET, confidential=True)
    theme = theme_of_last(ctx)
    market, lead = people["market"], people["lead"]
    for actor in (market, lead):
        for command, text in (
            ("objection", "list"),
            ("objection", f"list {theme.id}"),
            ("objection", "theme"),
            ("digest", ""),
        ):
            reply = inbound.command(ctx, actor, command, text)
            assert not leaked(shown(reply)), (actor.name, command, text, shown(reply))
            assert f"confidential theme {theme.id}" in shown(reply), (command, text)
    overview = shown(inbound.command(ctx, market, "objection", "theme"))
    assert "its objections are all confidential" in overview
    assert f"/objection theme rename {theme.id} to <name>" in overview
    with ctx.db.session() as session:
        app_home = str(home.home(session, ctx, market).to_dict())
        week = digest.build(session, ctx.org, end=ctx.now())
    assert not leaked(app_home)
    assert [t.name for t in week.new_themes] == [theme.name]
    assert not leaked(digest.text(week, "Europe/Berlin")) and not leaked(
        digest.text(week, "Europe/Berlin", markdown=True)
    )
    assert not leaked(json.dumps(digest.as_json(week)))


def test_the_dashboard_its_csvs_and_the_exports_show_a_confidential_theme_only_by_its_neutral_name(
    ctx: Context, people: dict[str, Actor]
) -> None:
    log(ctx, people["rep1"], SECRET, confidential=True)
    theme = theme_of_last(ctx)
    with ctx.db.session() as session:
        viewer = signin.viewer_of(session, ctx, people["market"].person_id)
        board = dashboard.build(session, ctx.org, viewer, now=ctx.now(), audience=None)
        exported = list(exports.objection_rows(session))
    tables = {t.name: t for s in board.sections for t in s.tables}
    assert [r[0] for r in tables["themes"].rows] == [theme.name]
    assert (theme.name, "new") in [(r[0], r[1]) for r in tables["theme-signals"].rows]
    assert not leaked(str([t.rows for t in tables.values()]))
    assert [(r["text"], r["theme"]) for r in exported] == [("(confidential)", theme.name)]

    with serving(ctx) as served:
        page = get(f"{served.url}/?as=market")
        downloads = [
            get(f"{served.url}/dashboard/objections/{name}.csv?as=market")
            for name in ("themes", "theme-signals")
        ]
    assert theme.name in page and not leaked(page)
    for download in downloads:
        assert theme.name in [row[0] for row in csv.reader(io.StringIO(download))]
        assert not leaked(download)


def test_touchline_export_and_touchline_digest_never_print_a_confidential_theme_s_words(
    ctx: Context, people: dict[str, Actor], database_url: str, tmp_path: Path
) -> None:
    log(ctx, people["rep1"], SECRET, confidential=True)
    theme = theme_of_last(ctx)
    config = tmp_path / "app.yaml"
    config.write_text(ORG_YAML)

    def cli(*args: str) -> str:
        done = run_cli(*args, "--config", str(config), env={"DATABASE_URL": database_url})
        assert done.returncode == 0, done.stderr
        return done.stdout

    exported_csv = cli("export", "objections")
    exported_json = cli("export", "objections", "--format", "json")
    assert [r["theme"] for r in csv.DictReader(io.StringIO(exported_csv))] == [theme.name]
    assert [r["theme"] for r in json.loads(exported_json)] == [theme.name]
    printed = [
        cli("digest", "--since", "2026-11-01", "--format", kind) for kind in ("text", "markdown", "json")
    ]
    assert all(theme.name in out for out in printed), printed[0]
    for out in (exported_csv, exported_json, *printed):
        assert not leaked(out), out


def test_a_marketing_lead_names_a_confidential_theme_and_everyone_then_sees_that_name(
    ctx: Context, people: dict[str, Actor], lead_marketer: Actor
) -> None:
    log(ctx, people["rep1"], SECRET, confidential=True)
    theme = theme_of_last(ctx)
    reading = shown(inbound.command(ctx, lead_marketer, "objection", f"list {theme.id}"))
    assert "contoso" in reading and "rita rep" not in reading  # the lead reads it, never with a name
    renamed = inbound.command(
        ctx, lead_marketer, "objection", f"theme rename {theme.id} to Executive sponsor blocks"
    )
    assert (
        f"Theme #{theme.id} “Confidential theme {theme.id}” is now “Executive sponsor blocks”."
        in renamed.text
    )
    for actor in (people["market"], people["lead"]):
        listed = shown(inbound.command(ctx, actor, "objection", "list"))
        assert "executive sponsor blocks" in listed and "confidential theme" not in listed
    # The name a person gave stays, whoever joins the theme and whatever they say.
    later = log(ctx, people["rep2"], JOINER)
    assert theme_of_last(ctx).id == theme.id
    assert "theme: Executive sponsor blocks." in later.text
    assert rows(ctx.db, Theme, id=theme.id)[0].name == "Executive sponsor blocks"


def test_a_non_confidential_objection_joining_a_confidential_theme_gives_it_its_own_words(
    ctx: Context, people: dict[str, Actor]
) -> None:
    log(ctx, people["rep1"], SECRET, confidential=True)
    theme = theme_of_last(ctx)
    reply = log(ctx, people["rep2"], JOINER)
    assert theme_of_last(ctx).id == theme.id
    named = rows(ctx.db, Theme, id=theme.id)[0]
    assert named.name == "finance chief blocks"
    assert "theme: finance chief blocks." in reply.text
    listed = shown(inbound.command(ctx, people["market"], "objection", "list"))
    assert "finance chief blocks" in listed and "(confidential)" in listed
    assert not leaked(listed, ("contoso", "cfo", "vetoes", "renewal"))


def test_an_objection_made_confidential_afterwards_takes_its_words_out_of_its_theme_s_name(
    ctx: Context, people: dict[str, Actor]
) -> None:
    log(ctx, people["rep1"], SECRET)
    theme = theme_of_last(ctx)
    assert theme.name == "champion contoso cfo"
    form = inbound.command(ctx, people["rep1"], "objection", "edit 1").form
    assert form is not None
    edited = inbound.submit(
        ctx,
        people["rep1"],
        form.form_id,
        {"text": SECRET, "severity": "medium", "confidential": True, **form.state},
    )
    assert f"theme: Confidential theme {theme.id}." in edited.text
    assert not leaked(shown(inbound.command(ctx, people["market"], "objection", "theme")))


def test_withdrawing_the_objection_a_theme_is_named_after_renames_it_after_what_is_left(
    ctx: Context, people: dict[str, Actor]
) -> None:
    log(ctx, people["rep2"], JOINER)
    theme = theme_of_last(ctx)
    log(ctx, people["rep1"], SECRET, confidential=True)
    assert theme_of_last(ctx).id == theme.id
    assert rows(ctx.db, Theme, id=theme.id)[0].name == "finance chief blocks"
    # What is left is confidential only: "finance chief blocks" would now describe it.
    assert "withdrawn" in inbound.command(ctx, people["rep2"], "objection", "withdraw 1").text
    assert rows(ctx.db, Theme, id=theme.id)[0].name == f"Confidential theme {theme.id}"


def test_a_theme_an_older_touchline_named_after_a_confidential_objection_is_renamed_at_start(
    ctx: Context, people: dict[str, Actor]
) -> None:
    log(ctx, people["rep1"], SECRET, confidential=True)
    theme = theme_of_last(ctx)
    with ctx.db.session() as session:  # as the database of an older version has it
        session.execute(
            update(Theme).where(col(Theme.id) == theme.id).values(name="champion contoso cfo", origin="found")
        )
    setup.apply(ctx)
    assert rows(ctx.db, Theme, id=theme.id)[0].name == f"Confidential theme {theme.id}"
    assert not leaked(shown(inbound.command(ctx, people["market"], "objection", "list")))


def test_a_marketing_lead_splits_confidential_objections_off_into_a_theme_they_name(
    ctx: Context, people: dict[str, Actor], lead_marketer: Actor
) -> None:
    log(ctx, people["rep1"], SECRET, confidential=True)
    theme = theme_of_last(ctx)
    split = inbound.command(ctx, lead_marketer, "objection", f"theme split {theme.id} 1 as Sponsor risk").text
    assert "to the new theme “Sponsor risk”" in split
    # The theme it left is empty now and keeps its neutral name.
    assert rows(ctx.db, Theme, id=theme.id)[0].name == f"Confidential theme {theme.id}"
