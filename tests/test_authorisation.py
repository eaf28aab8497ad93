"""Who may do what: every command, button and form against every role, through the same registry the
platforms call (`handlers.inbound`), each in a transaction that is rolled back."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlmodel import Session

from bot.config import parse_organisation_text
from handlers import assets, directory, inbound, objections, pulse, setup, signin, strategy
from handlers.context import Actor, Context, FormErrors, Refusal
from handlers.ui import Reply
from storage.database import Database
from storage.models import PulseRun
from tests.fakes import Clock, rows

ORG = """\
organisation: {name: Roles Co, timezone: Europe/Berlin}
people:
  rita: {name: Rita Rep}
  ravi: {name: Ravi Rep}
  mia: {name: Mia Marketer}
  hana: {name: Hana Head of Marketing}
  lena: {name: Lena Leader}
  adam: {name: Adam Admin}
roles:
  rep: [rita, ravi]
  marketer: [mia]
  marketing-lead: [hana]
  leader: [lena]
  admin: [adam]
audiences:
  field: {targets: ["console:#field"], members: [rita, ravi, mia, hana]}
surveys:
  pulse:
    title: Pulse
    audiences: [field]
    schedule: "0 10 * * TUE"
    min_group_size: 3
    allow_night_and_weekends: true
    questions: [{id: why, text: I know why., type: agree-5}]
objections:
  themes: {price: [price, expensive]}
"""
# The seats: `rep` logged objection 1 and asked question 1; `other rep` is another rep.
ROLES = ("rep", "other rep", "marketer", "marketing lead", "leader", "admin", "unknown")
SEATS = {"rep": "rita", "other rep": "ravi", "marketer": "mia", "marketing lead": "hana", "leader": "lena"}
SEATS |= {"admin": "adam"}
EVERYONE = frozenset(ROLES)
MARKETING = frozenset({"marketer", "marketing lead"})
THEMES = MARKETING | {"leader"}
INVITED = frozenset({"rep", "other rep", "marketer", "marketing lead"})  # the survey's audience

Call = Callable[[Session, Context, Actor], Reply]


def command(name: str, text: str = "") -> Call:
    if name == "touchline":
        return lambda s, ctx, actor: signin.dashboard_link(s, ctx, actor)
    return lambda s, ctx, actor: inbound.COMMANDS[name](s, ctx, actor, text)


def press(action_id: str, value: str) -> Call:
    return lambda s, ctx, actor: inbound.ACTIONS[action_id](s, ctx, actor, value)


def submit(form_id: str, values: dict[str, Any]) -> Call:
    return lambda s, ctx, actor: inbound.FORMS[form_id](s, ctx, actor, values)


DECISION = {"title": "T", "decision": "D", "why": "W", "reps_may": "M", "effective_on": "2026-12-01"}
ASSET = {"title": "Card", "link": "https://example.com/c", "kind": "battlecard", "key_message": "K"}
# (what is done, who may do it)
RULES: list[tuple[str, Call, frozenset[str]]] = [
    ("/strategy (announce)", command("strategy"), frozenset({"leader"})),
    ("/strategy list", command("strategy", "list"), EVERYONE),
    ("/strategy show 1", command("strategy", "show 1"), EVERYONE),
    ("/strategy supersede 1", command("strategy", "supersede 1"), frozenset({"leader"})),
    ("/objection <text>", command("objection", "too expensive"), EVERYONE),
    ("/objection (form)", command("objection"), EVERYONE),
    ("/objection mine", command("objection", "mine"), EVERYONE),
    ("/objection list", command("objection", "list"), THEMES),
    ("/objection theme", command("objection", "theme"), THEMES),
    ("/objection theme rename", command("objection", "theme rename price to pricing"), MARKETING),
    ("/objection edit 1", command("objection", "edit 1"), frozenset({"rep"})),
    ("/objection withdraw 1", command("objection", "withdraw 1"), frozenset({"rep"})),
    ("/asset (publish)", command("asset"), MARKETING),
    ("/asset draft", command("asset", "draft"), MARKETING),
    ("/asset publish 2", command("asset", "publish 2"), MARKETING),
    ("/asset list", command("asset", "list"), EVERYONE),
    ("/asset show 1", command("asset", "show 1"), EVERYONE),
    ("/pulse", command("pulse"), frozenset({"admin"})),
    ("/pulse run pulse", command("pulse", "run pulse"), frozenset({"admin"})),
    ("/pulse close 1", command("pulse", "close 1"), frozenset({"admin"})),
    ("/pulse results 1", command("pulse", "results 1"), frozenset({"admin", "leader"})),
    ("/digest", command("digest"), THEMES),
    ("/touchline dashboard", command("touchline", "dashboard"), EVERYONE),
    ("Got it", press(strategy.ACK, "1"), EVERYONE),
    ("I have a question", press(strategy.ASK, "1"), EVERYONE),
    ("Concern from the field", press(strategy.CONCERN, "1"), EVERYONE),
    ("Answer (a question)", press(strategy.ANSWER, "1"), frozenset({"leader"})),
    ("Edit (an objection)", press(objections.EDIT, "1"), frozenset({"rep"})),
    ("Withdraw (an objection)", press(objections.WITHDRAW, "1"), frozenset({"rep"})),
    ("Log as objection", press(objections.FROM_MESSAGE, "they say it is too expensive"), EVERYONE),
    ("Useful", press(assets.USEFUL, "1"), EVERYONE),
    ("Used with a customer", press(assets.USED, "1"), EVERYONE),
    ("Doesn't fit the field", press(assets.DOESNT_FIT, "1"), EVERYONE),
    ("Suggest a change (a draft)", press(assets.SUGGEST, "2"), EVERYONE),
    ("Answer the pulse", press(pulse.ANSWER, "1"), INVITED),
    (
        "announce (form)",
        submit(strategy.ANNOUNCE_FORM, {**DECISION, "audiences": ["field"]}),
        frozenset({"leader"}),
    ),
    (
        "answer a question (form)",
        submit(strategy.ANSWER_FORM, {"answer": "Yes.", "question": "1"}),
        frozenset({"leader"}),
    ),
    ("publish an asset (form)", submit(assets.PUBLISH_FORM, {**ASSET, "audiences": ["field"]}), MARKETING),
    ("pulse answers (form)", submit(pulse.FORM_ID, {"run": "1", "why": "4"}), INVITED),
]


@pytest.fixture
def seats(sqlite_url: str, clock: Clock) -> tuple[Context, dict[str, Actor]]:
    ctx = Context(db=Database.from_url(sqlite_url), org=parse_organisation_text(ORG), clock=clock)
    setup.apply(ctx)
    actors = {role: directory.console_actor(ctx, key) for role, key in SEATS.items()}
    actors["unknown"] = directory.identify(ctx, "slack", "U0STRANGER1", name="A Stranger")
    assert not actors["unknown"].roles
    ctx.public_url = "https://touchline.example.com"
    # The scene every rule acts on: decision 1 with question 1, objection 1, asset 1 and draft 2,
    # pulse run 1 open for the field.
    done = [
        inbound.submit(ctx, actors["leader"], strategy.ANNOUNCE_FORM, {**DECISION, "audiences": ["field"]}),
        inbound.command(ctx, actors["rep"], "objection", "too expensive for us"),
        inbound.submit(
            ctx, actors["rep"], strategy.QUESTION_FORM, {"text": "Why?", "decision": "1", "kind": "question"}
        ),
        inbound.submit(ctx, actors["marketer"], assets.PUBLISH_FORM, {**ASSET, "audiences": ["field"]}),
        inbound.submit(
            ctx,
            actors["marketer"],
            assets.DRAFT_FORM,
            {**ASSET, "audiences": ["field"], "input_until": "2026-12-20"},
        ),
        inbound.command(ctx, actors["admin"], "pulse", "run pulse"),
    ]
    assert not any(r.errors for r in done), [r.errors for r in done]
    assert [r.status for r in rows(ctx.db, PulseRun)] == ["open"]
    yield ctx, actors
    ctx.db.dispose()


def outcome(ctx: Context, actor: Actor, call: Call) -> str:
    """ "allowed" or "refused"; the transaction is rolled back either way, so every rule sees the scene."""
    with Session(ctx.db.engine, expire_on_commit=False) as session:
        try:
            call(session, ctx, actor)
        except Refusal:
            return "refused"
        except FormErrors:
            return "allowed"  # past the permission check, stopped by the form's own rules
        finally:
            session.rollback()
    return "allowed"


def test_every_command_button_and_form_against_every_role(seats: tuple[Context, dict[str, Actor]]) -> None:
    ctx, actors = seats
    found = {
        what: frozenset(r for r in ROLES if outcome(ctx, actors[r], call) == "allowed")
        for what, call, _ in RULES
    }
    expected = {what: allowed for what, _, allowed in RULES}
    wrong = {
        what: (sorted(found[what]), sorted(expected[what]))
        for what in expected
        if found[what] != expected[what]
    }
    assert wrong == {}, "\n".join(f"{w}: allowed {f}, expected {e}" for w, (f, e) in wrong.items())
