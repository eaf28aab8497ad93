"""The visibility table held against every surface: each piece of data planted once, then looked
for in what each role sees in chat, on App Home, on the dashboard and in its CSVs, in the digest,
and in what `touchline export` and `touchline digest` print; SECURITY.md prints the same table."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from bot.config import parse_organisation_text
from bot.web.dashboard_page import table_csv
from handlers import dashboard, digest, directory, home, inbound, pulse, setup, strategy, visibility
from handlers.context import Actor, Context
from handlers.signin import Viewer
from storage.database import Database
from tests.cli import run_cli
from tests.conftest import ROOT
from tests.fakes import Clock

MARKERS = {
    "question": "Does quokka pricing apply to renewals?",
    "concern": "Walrus tenders will stall for months.",
    "asker": "Rita Reporter",
    "confidential": "Okapi Holdings CFO backs us quietly",
    "theme": "zanzibar freight",
    "results": "narwhal",  # the question's id and words: whatever shows its results names it
    "comment": "Axolotl demos would help.",
}
ROLE_KEYS = {
    "rep": "rita",
    "another rep": "ravi",
    "marketer": "mia",
    "marketing lead": "max",
    "leader": "lena",
    "admin": "ada",
}


def organisation() -> str:
    people = {
        "lena": {"name": "Lena Leader"},
        "mia": {"name": "Mia Marketer"},
        "max": {"name": "Max Marketinglead"},
        "rita": {"name": MARKERS["asker"]},
        "ravi": {"name": "Ravi Rep"},
        "ada": {"name": "Ada Admin"},
    } | {f"s{i}": {"name": f"Seller {i}"} for i in range(5)}
    sellers = [f"s{i}" for i in range(5)]
    return yaml.safe_dump(
        {
            "organisation": {"name": "Visible Co", "timezone": "Europe/Berlin"},
            "people": people,
            "roles": {
                "leader": ["lena"],
                "marketer": ["mia"],
                "marketing-lead": ["max"],
                "rep": ["rita", "ravi", *sellers],
                "admin": ["ada"],
            },
            "audiences": {
                "sales": {"targets": ["console:#sales"], "members": ["rita", "ravi", *sellers]},
            },
            "digest": {"recipients": ["mia"]},
            "objections": {"themes": {"price": ["price", "expensive"]}},
            "surveys": {
                "alignment": {
                    "title": "Alignment pulse",
                    "audiences": ["sales"],
                    "schedule": "0 10 * * TUE",
                    "open_for": "3d",
                    "min_group_size": 5,
                    "min_group_size_comments": 5,
                    "questions": [
                        {"id": "narwhal", "text": "I grasp the narwhal strategy.", "type": "agree-5"},
                        {"id": "else", "text": "Anything else?", "type": "text", "optional": True},
                    ],
                }
            },
        },
        sort_keys=False,
    )


@pytest.fixture
def world(db: Database, clock: Clock) -> tuple[Context, dict[str, Actor]]:
    """Every piece of the table planted through the inbound calls, as people would."""
    clock.now = datetime(2026, 11, 30, 9, 15, tzinfo=UTC)  # a Monday
    ctx = Context(db=db, org=parse_organisation_text(organisation()), clock=clock)
    setup.apply(ctx)
    who = {key: directory.console_actor(ctx, key) for key in ctx.org.people}
    who["unknown"] = directory.identify(ctx, "slack", "U0UNKNOWN01", name="Una Known")

    def submit(actor: Actor, form_id: str, values: dict[str, object]) -> None:
        reply = inbound.submit(ctx, actor, form_id, values)
        assert not reply.errors and "went wrong" not in reply.text, reply

    submit(
        who["lena"],
        strategy.ANNOUNCE_FORM,
        {
            "title": "Mid-market first",
            "decision": "Lead with the mid-market tier.",
            "why": "Twice the win rate.",
            "reps_may": "15% on 3-year deals",
            "reps_may_not": "discount the platform fee",
            "effective_on": "2026-12-01",
            "audiences": ["sales"],
        },
    )
    submit(
        who["rita"],
        strategy.QUESTION_FORM,
        {"text": MARKERS["question"], "decision": "1", "kind": "question"},
    )
    submit(
        who["rita"],
        strategy.QUESTION_FORM,
        {"text": MARKERS["concern"], "decision": "1", "kind": "concern", "anonymous": True},
    )
    clock.now = datetime(2026, 12, 1, 7, 0, tzinfo=UTC)  # the anonymous concerns' round
    assert strategy.deliver_concerns(ctx) == 1
    assert (
        "Recorded"
        in inbound.command(ctx, who["rita"], "objection", f"{MARKERS['theme']} delays every deal").text
    )
    objection = {"text": MARKERS["confidential"], "severity": "high", "confidential": True}
    submit(who["rita"], "objection.log", objection)
    assert "open" in inbound.command(ctx, who["ada"], "pulse", "run alignment").text
    for key in ["rita", "ravi", *[f"s{i}" for i in range(4)]]:
        submit(who[key], pulse.FORM_ID, {"run": "1", "narwhal": "4", "else": f"{MARKERS['comment']} ({key})"})
    assert "closed" in inbound.command(ctx, who["ada"], "pulse", "close 1").text
    clock.now += timedelta(hours=1)
    return ctx, who


CHAT = [
    ("strategy", "list"),
    ("strategy", "show 1"),
    ("objection", "mine"),
    ("objection", "list"),
    ("objection", "theme"),
    ("pulse", "results 1"),
    ("digest", ""),
]


def chat(ctx: Context, actor: Actor) -> str:
    said = []
    for name, text in CHAT:
        reply = inbound.command(ctx, actor, name, text)
        said.append(reply.text + (str(reply.card.to_dict()) if reply.card else ""))
    return "\n".join(said)


def app_home(ctx: Context, actor: Actor) -> str:
    with ctx.db.session() as session:
        return str(home.home(session, ctx, actor).to_dict())


def dashboard_and_csvs(ctx: Context, actor: Actor) -> str:
    viewer = Viewer(actor.person_id, actor.name, actor.roles)
    with ctx.db.session() as session:
        board = dashboard.build(session, ctx.org, viewer, now=ctx.now(), audience=None)
    seen = [str(s.facts) + s.title for s in board.sections]
    for section in board.sections:
        for table in section.tables:
            rendered = table_csv(table)
            assert next(csv.reader(io.StringIO(rendered))) == table.columns
            seen.append(table.title + table.note + rendered)
    return "\n".join(seen)


def the_digest(ctx: Context) -> str:
    with ctx.db.session() as session:
        week = digest.build(session, ctx.org, end=ctx.now())
    return str(digest.card(week, "Europe/Berlin").to_dict())


def operator(ctx: Context, tmp_path: Path, *args: str) -> str:
    config = tmp_path / "app.yaml"
    config.write_text(organisation())
    url = ctx.db.engine.url.render_as_string(hide_password=False)
    done = run_cli(*args, env={"DATABASE_URL": url, "TOUCHLINE_CONFIG": str(config)})
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_every_surface_shows_each_role_exactly_what_the_visibility_table_says(
    world: tuple[Context, dict[str, Actor]], tmp_path: Path
) -> None:
    ctx, who = world
    seen: dict[tuple[str, str], str] = {}
    for role in visibility.ROLES:
        if role == "operator":
            continue
        actor = who[ROLE_KEYS.get(role, "unknown")]
        seen[(role, "chat")] = chat(ctx, actor)
        seen[(role, "App Home")] = app_home(ctx, actor)
        seen[(role, "dashboard")] = dashboard_and_csvs(ctx, actor)
        seen[(role, "digest")] = the_digest(ctx) if role in visibility.READERS_OF_THE_DIGEST else ""
    exports = [
        operator(ctx, tmp_path, "export", kind, "--format", "csv") for kind in ("objections", "assets")
    ]
    exports += [operator(ctx, tmp_path, "export", kind) for kind in ("acknowledgements", "pulse")]
    seen[("operator", "touchline export")] = "\n".join(exports)
    seen[("operator", "touchline digest")] = "\n".join(
        operator(ctx, tmp_path, "digest", "--format", f) for f in ("text", "markdown", "json")
    )
    wrong = []
    for piece in visibility.PIECES:
        needle = MARKERS[piece.key].casefold()
        for surface in visibility.SURFACES:
            expected = piece.seen_by(surface)
            for role in visibility.ROLES:
                shown = needle in seen.get((role, surface), "").casefold()
                if shown != (role in expected):
                    wrong.append(f"{piece.key} on {surface} as {role}: {'shown' if shown else 'not shown'}")
    assert wrong == [], "\n".join(wrong)


def test_security_md_prints_the_visibility_table() -> None:
    assert visibility.markdown() in (ROOT / "SECURITY.md").read_text()
