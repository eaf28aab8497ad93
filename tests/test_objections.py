"""Objections through the neutral entry: one-line logging, the full form, themes, groups, privacy."""

from __future__ import annotations

import random
from typing import Any

import pytest

from handlers import inbound, matching, objections
from handlers.context import Actor, Context
from handlers.ui import Form, Reply
from storage.models import AuditEntry, Objection
from tests.fakes import Clock, rows, theme_of


def log(ctx: Context, actor: Actor, text: str) -> Reply:
    return inbound.command(ctx, actor, "objection", text)


def form_of(reply: Reply) -> Form:
    assert reply.form is not None, reply
    return reply.form


@pytest.fixture
def lead_marketer(ctx: Context) -> Actor:
    """A marketing lead, named in app.yaml by e-mail."""
    from handlers import directory

    return directory.identify(ctx, "slack", "U0000000099", name="Hedda", email="head.marketing@test.example")


def test_one_line_records_the_objection_with_its_theme(ctx: Context, people: dict[str, Actor]) -> None:
    reply = log(ctx, people["rep1"], "too expensive vs Acme")
    assert "Recorded: “too expensive vs Acme” — theme: price." in reply.text
    assert "You are the first rep to log this in the last 30 days." in reply.text
    [objection] = rows(ctx.db, Objection)
    assert (objection.text, theme_of(ctx.db, objection), objection.reporter_id) == (
        "too expensive vs Acme",
        "price",
        people["rep1"].person_id,
    )
    assert objection.severity == "medium" and not objection.confidential
    assert reply.card is not None and [b.action_id for b in reply.card.buttons] == [
        objections.EDIT,
        objections.WITHDRAW,
    ]


def test_the_seventh_rep_hearing_the_same_thing_is_told_so(
    ctx: Context, people: dict[str, Actor], clock: Clock
) -> None:
    from handlers import directory

    said = [
        "Too expensive compared to Acme",
        "they said we are too expensive vs Acme",
        "Acme is less expensive than us",
        "too expensive, Acme costs less",
        "way too expensive next to Acme",
        "expensive compared with Acme",
    ]
    reps = [directory.identify(ctx, "slack", f"U00000005{i:02d}", name=f"Rep {i}") for i in range(7)]
    for rep, text in zip(reps, said, strict=False):
        log(ctx, rep, text)
        clock.advance(hours=1)
    log(ctx, reps[0], "too expensive vs Acme, again")  # the same rep twice counts once
    reply = log(ctx, reps[6], "Too expensive against Acme")
    assert "You are the 7th rep to hear this in the last 30 days." in reply.text
    groups = {o.group_id for o in rows(ctx.db, Objection)}
    assert len(groups) == 1


def test_what_was_heard_more_than_30_days_ago_no_longer_counts(
    ctx: Context, people: dict[str, Actor], clock: Clock
) -> None:
    log(ctx, people["rep1"], "too expensive vs Acme")
    clock.advance(days=31)
    assert "first rep" in log(ctx, people["rep2"], "too expensive vs Acme").text


def test_different_objections_stay_in_different_groups(ctx: Context, people: dict[str, Actor]) -> None:
    log(ctx, people["rep1"], "too expensive vs Acme")
    log(ctx, people["rep2"], "the price is over their budget")
    first, second = rows(ctx.db, Objection)
    assert theme_of(ctx.db, first) == theme_of(ctx.db, second) == "price"
    assert first.group_id != second.group_id


def test_an_objection_like_no_theme_yet_starts_a_theme_named_after_its_words(
    ctx: Context, people: dict[str, Actor]
) -> None:
    reply = log(ctx, people["rep1"], "They want a mobile app")
    assert "theme: want mobile app." in reply.text
    again = log(ctx, people["rep2"], "No mobile app for the field team")
    assert "theme: want mobile app." in again.text  # it joins the theme the first one started
    first, second = rows(ctx.db, Objection)
    assert first.theme_id == second.theme_id


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("\u200b\u200b", "The objection is required"),
        ("x" * 2001, "2,001 characters; the limit is 2,000"),
    ],
)
def test_empty_or_oversized_text_is_refused_with_the_usage_and_nothing_stored(
    ctx: Context, people: dict[str, Actor], text: str, says: str
) -> None:
    reply = log(ctx, people["rep1"], text)
    assert says in reply.text and "/objection <what the customer said>" in reply.text
    assert rows(ctx.db, Objection) == [] and rows(ctx.db, AuditEntry) == []


def test_no_text_opens_the_full_form(ctx: Context, people: dict[str, Actor]) -> None:
    form = form_of(log(ctx, people["rep1"], "   "))
    assert [f.name for f in form.fields] == [
        "text",
        "competitor",
        "segment",
        "product",
        "deal_stage",
        "deal_size",
        "deal_link",
        "severity",
        "confidential",
    ]
    competitor = next(f for f in form.fields if f.name == "competitor")
    assert competitor.kind == "text"  # free text, known ones only suggested


FULL = {
    "text": "Globex quoted 30% less",
    "competitor": "Globex",
    "segment": "Enterprise",
    "product": "Insights",
    "deal_stage": "Negotiation",
    "deal_size": "25k-100k",
    "deal_link": "https://crm.example.com/deal/1",
    "severity": "high",
    "confidential": False,
}


def test_the_full_form_records_every_detail(ctx: Context, people: dict[str, Actor]) -> None:
    form = form_of(log(ctx, people["rep1"], ""))
    reply = inbound.submit(ctx, people["rep1"], form.form_id, {**FULL, **form.state})
    assert "Recorded" in reply.text
    [o] = rows(ctx.db, Objection)
    assert (o.competitor, o.segment, o.deal_stage, o.deal_size, o.severity) == (
        "Globex",
        "Enterprise",
        "Negotiation",
        "25k-100k",
        "high",
    )
    assert o.deal_link == "https://crm.example.com/deal/1"


@pytest.mark.parametrize(
    ("change", "field", "says"),
    [
        ({"deal_link": "crm/deal/1"}, "deal_link", "must start with https://"),
        ({"deal_link": "javascript:alert(1)"}, "deal_link", "must start with https://"),
        ({"deal_link": "ftp://crm.example.com/x"}, "deal_link", "must start with https://"),
        ({"segment": "Galaxy"}, "segment", "choose one of"),
        ({"severity": "apocalyptic"}, "severity", "choose one of"),
        ({"text": "   "}, "text", "required"),
        ({"competitor": "A" * 101}, "competitor", "the limit is 100"),
    ],
)
def test_bad_details_are_refused_and_nothing_is_stored(
    ctx: Context, people: dict[str, Actor], change: dict[str, Any], field: str, says: str
) -> None:
    form = form_of(log(ctx, people["rep1"], ""))
    reply = inbound.submit(ctx, people["rep1"], form.form_id, {**FULL, **change, **form.state})
    assert says in reply.errors[field]
    assert rows(ctx.db, Objection) == []


def test_a_rep_edits_or_withdraws_their_own_objection_for_24_hours(
    ctx: Context, people: dict[str, Actor], clock: Clock
) -> None:
    log(ctx, people["rep1"], "too expensive vs Acme")
    [o] = rows(ctx.db, Objection)
    stranger = inbound.action(ctx, people["rep2"], objections.EDIT, str(o.id))
    assert "You have no objection" in stranger.text

    form = form_of(inbound.action(ctx, people["rep1"], objections.EDIT, str(o.id)))
    assert next(f.initial for f in form.fields if f.name == "text") == "too expensive vs Acme"
    reply = inbound.submit(
        ctx,
        people["rep1"],
        form.form_id,
        {**FULL, "text": "SOC2 report missing", "competitor": "", **form.state},
    )
    assert "Updated" in reply.text
    [edited] = rows(ctx.db, Objection)
    assert (edited.id, edited.text, theme_of(ctx.db, edited)) == (o.id, "SOC2 report missing", "security")

    clock.advance(hours=24)
    late = inbound.command(ctx, people["rep1"], "objection", f"withdraw {o.id}")
    assert "more than 24 hours ago" in late.text
    assert len(rows(ctx.db, Objection)) == 1


def test_withdrawing_hands_the_group_on(ctx: Context, people: dict[str, Actor]) -> None:
    log(ctx, people["rep1"], "too expensive vs Acme")
    log(ctx, people["rep2"], "too expensive compared to Acme")
    log(ctx, people["rep3"], "too expensive vs Acme really")
    first = rows(ctx.db, Objection)[0]
    reply = inbound.command(ctx, people["rep1"], "objection", f"withdraw #{first.id}")
    assert "withdrawn" in reply.text
    remaining = rows(ctx.db, Objection)
    assert len(remaining) == 2 and {o.group_id for o in remaining} == {remaining[0].id}


def test_mine_lists_only_your_own(ctx: Context, people: dict[str, Actor]) -> None:
    log(ctx, people["rep1"], "too expensive vs Acme")
    log(ctx, people["rep2"], "no SAP connector")
    reply = inbound.command(ctx, people["rep1"], "objection", "mine")
    assert reply.card is not None
    text = str(reply.card.to_dict())
    assert "too expensive vs Acme" in text and "SAP" not in text
    assert "You have not logged" in inbound.command(ctx, people["rep3"], "objection", "mine").text


def test_only_marketers_and_leaders_list_the_field_s_objections(
    ctx: Context, people: dict[str, Actor]
) -> None:
    log(ctx, people["rep1"], "too expensive vs Acme")
    log(ctx, people["rep2"], "too expensive compared to Acme")
    log(ctx, people["rep3"], "No connector for SAP")
    assert "Only marketers and leaders" in inbound.command(ctx, people["rep1"], "objection", "list").text
    reply = inbound.command(ctx, people["market"], "objection", "list")
    assert reply.card is not None
    headings = [s.heading for s in reply.card.sections]
    assert headings == ["price — 2 objections from 2 reps", "integration — 1 objection from 1 rep"]
    assert "— 2 reps" in reply.card.sections[0].text  # one line with two voices, not two lines
    detail = inbound.command(ctx, people["market"], "objection", "list integration")
    assert detail.card is not None and "Rosa Rep" in str(detail.card.to_dict())


def test_a_confidential_objection_is_read_only_by_marketing_leads_and_never_with_a_name(
    ctx: Context, people: dict[str, Actor], lead_marketer: Actor
) -> None:
    form = form_of(log(ctx, people["rep1"], ""))
    secret = {**FULL, "text": "Acme offered them 50% off", "confidential": True}
    reply = inbound.submit(ctx, people["rep1"], form.form_id, {**secret, **form.state})
    assert "only marketing leads will see it" in reply.text

    as_marketer = inbound.command(ctx, people["market"], "objection", "list competitor")
    as_leader = inbound.command(ctx, people["lead2"], "objection", "list competitor")
    as_lead = inbound.command(ctx, lead_marketer, "objection", "list competitor")
    for reply in (as_marketer, as_leader):
        assert reply.card is not None
        assert "50% off" not in str(reply.card.to_dict()) and "(confidential)" in str(reply.card.to_dict())
    assert as_lead.card is not None
    assert "50% off" in str(as_lead.card.to_dict())
    for reply in (as_marketer, as_leader, as_lead):
        assert "Rita Rep" not in str(reply.card.to_dict()) if reply.card else True


def test_subcommand_words_inside_an_objection_are_still_an_objection(
    ctx: Context, people: dict[str, Actor]
) -> None:
    log(ctx, people["rep1"], "list prices are too high")
    log(ctx, people["rep1"], "mine is bigger, said the Acme rep")
    assert [o.text for o in rows(ctx.db, Objection)] == [
        "list prices are too high",
        "mine is bigger, said the Acme rep",
    ]


def test_the_best_match_is_the_candidate_scoring_highest_of_all() -> None:
    """best_match passes over candidates that could not win; what it finds is what scoring every
    one of them finds: the highest score at or above the threshold, then the earliest."""
    rng = random.Random(5)
    vocabulary = [
        "price",
        "budget",
        "expensive",
        "acme",
        "globex",
        "quote",
        "cheaper",
        "seats",
        "contract",
        "renewal",
        "pricing",
        "security",
        "soc2",
        "audit",
        "sap",
        "connector",
        "sync",
        "api",
        "integration",
        "freeze",
        "quarter",
        "reorg",
    ]

    def said() -> str:
        return " ".join(rng.sample(vocabulary, rng.randint(1, 6)))

    found = 0
    for _ in range(300):
        candidates = [matching.Candidate(n, n, said()) for n in range(1, 40)]
        text = said()
        scored = [(matching.similarity(text, c.text), -c.id, c) for c in candidates]
        alike = [s for s in scored if s[0] >= matching.SAME_THRESHOLD]
        best = max(alike, key=lambda s: (s[0], s[1]))[2] if alike else None
        assert matching.best_match(text, candidates) == best, text
        found += best is not None
    assert 50 < found < 300  # both kinds of answer were checked
