"""The neutral core: cards survive the outbox, forms refuse any input cleanly, people are recognised."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from handlers import directory, forms, setup
from handlers.context import Context, FormErrors
from handlers.ui import Button, Card, Fact, Form, FormField, Option, Section
from storage.models import Identity, Person
from tests.fakes import rows
from tests.generated import examples

text = st.text(max_size=200)
cards = st.builds(
    Card,
    title=text,
    sections=st.lists(
        st.builds(
            Section,
            text=text,
            heading=text,
            facts=st.lists(st.builds(Fact, text, text), max_size=3).map(tuple),
        ),
        max_size=4,
    ).map(tuple),
    buttons=st.lists(
        st.builds(Button, text, text, text, st.sampled_from(["default", "primary", "danger"])), max_size=3
    ).map(tuple),
    footer=text,
)


@given(cards)
def test_a_card_comes_back_from_the_outbox_exactly_as_it_went_in(card: Card) -> None:
    assert Card.from_dict(card.to_dict()) == card


FORM = Form(
    form_id="f",
    title="T",
    fields=(
        FormField("title", "Title", required=True, max_length=50),
        FormField("when", "When", kind="date"),
        FormField(
            "where",
            "Where",
            kind="select",
            multiple=True,
            required=True,
            options=(Option("a", "A"), Option("b", "B")),
        ),
        FormField("one", "One", kind="select", options=(Option("x", "X"),)),
        FormField("anonymous", "Anonymous", kind="checkbox"),
    ),
)
anything = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=300),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)


@examples(300)
@given(st.dictionaries(st.sampled_from(["title", "when", "where", "one", "anonymous", "extra"]), anything))
def test_any_submitted_values_are_either_clean_or_refused_with_reasons(values: dict[str, Any]) -> None:
    try:
        clean = forms.clean(FORM, values)
    except FormErrors as invalid:
        assert invalid.errors and set(invalid.errors) <= {"title", "when", "where", "one", "anonymous"}
        assert all(isinstance(m, str) and m for m in invalid.errors.values())
        return
    assert isinstance(clean["title"], str) and 0 < len(clean["title"]) <= 50
    assert clean["where"] and set(clean["where"]) <= {"a", "b"}
    assert clean["one"] in (None, "x") and isinstance(clean["anonymous"], bool)


def test_control_characters_are_dropped_and_line_breaks_kept() -> None:
    clean = forms.clean(FORM, {"title": "a\x00b\x1b[31m\r\nc  \t", "where": ["a", "a"]})
    assert clean["title"] == "ab[31m\nc" and clean["where"] == ["a"]


def test_a_person_first_seen_on_slack_becomes_the_configured_person_when_app_yaml_names_them(
    ctx: Context,
) -> None:
    stranger = directory.identify(ctx, "slack", "U0000000001", name="rita.r")
    # rep1 in the test organisation carries slack: U0000000001, so sync already knew her
    assert stranger.name == "Rita Rep" and stranger.roles == frozenset({"rep"})
    newcomer = directory.identify(ctx, "slack", "U0000000042", name="New Person", email="new@test.example")
    assert newcomer.roles == frozenset() and newcomer.timezone == "Europe/Berlin"
    assert rows(ctx.db, Person, id=newcomer.person_id)[0].key == "slack:U0000000042"


def test_a_platform_user_with_a_configured_email_is_that_person(ctx: Context) -> None:
    actor = directory.identify(ctx, "teams", "29:abc", name="L. Leader", email="lena@test.example")
    assert actor.name == "Lena Leader" and "leader" in actor.roles
    identities = {(i.platform, i.external_id) for i in rows(ctx.db, Identity, person_id=actor.person_id)}
    assert identities == {("console", "lead"), ("teams", "29:abc")}


def test_the_console_signs_in_only_people_from_app_yaml(ctx: Context) -> None:
    from handlers.context import Refusal

    with pytest.raises(Refusal, match="'mallory' is not in people"):
        directory.console_actor(ctx, "mallory")
    assert directory.console_actor(ctx, "rep3").timezone == "America/New_York"


def test_syncing_again_after_app_yaml_changes_moves_targets_and_members(ctx: Context) -> None:
    from bot.config import parse_organisation_text
    from storage.models import AudienceMember, AudienceTarget
    from tests.conftest import ORG_YAML

    changed = ORG_YAML.replace("targets: [console:#emea, slack:C0000000001]", "targets: [console:#emea-new]")
    changed = changed.replace("members: [rep1, rep2]", "members: [rep2]")
    setup.apply(Context(db=ctx.db, org=parse_organisation_text(changed), clock=ctx.clock))
    targets = {(t.platform, t.address) for t in rows(ctx.db, AudienceTarget, audience_id=1)}
    assert targets == {("console", "#emea-new")}
    assert len(rows(ctx.db, AudienceMember, audience_id=1)) == 1


@examples(150, fixtures=True)
@given(
    name=st.sampled_from(["strategy", "/strategy", "STRATEGY", "help", "", "x" * 50]) | st.text(max_size=20),
    text=st.text(max_size=300)
    | st.sampled_from(["show", "show 1", "supersede 1", "list", "show -1", "show ١"]),
)
def test_any_command_text_gets_a_reply_and_changes_nothing_for_a_rep(
    ctx: Context, people: dict[str, Any], name: str, text: str
) -> None:
    from handlers import inbound
    from storage.models import Decision, Outbox

    reply = inbound.command(ctx, people["rep1"], name, text)
    assert reply.text or reply.card or reply.form
    assert "Traceback" not in reply.text and "Something went wrong" not in reply.text
    assert rows(ctx.db, Decision) == [] and rows(ctx.db, Outbox) == []


def test_someone_added_to_app_yaml_after_using_touchline_keeps_what_they_did(ctx: Context) -> None:
    from bot.config import parse_organisation_text
    from handlers import inbound, strategy
    from storage.models import Acknowledgement, Decision, Question
    from tests.conftest import ORG_YAML

    lead = directory.console_actor(ctx, "lead")
    form = inbound.command(ctx, lead, "strategy", "").form
    assert form is not None
    inbound.submit(
        ctx,
        lead,
        form.form_id,
        {
            "title": "T",
            "decision": "D",
            "why": "W",
            "reps_may": "M",
            "effective_on": "2026-12-01",
            "audiences": ["emea"],
        },
    )
    decision = rows(ctx.db, Decision)[0]
    early = directory.identify(ctx, "slack", "U0000000077", name="nina.n")
    inbound.action(ctx, early, strategy.ACK, str(decision.id))
    question_form = inbound.action(ctx, early, strategy.ASK, str(decision.id)).form
    assert question_form is not None
    inbound.submit(ctx, early, question_form.form_id, {"text": "Why now?", **question_form.state})

    grown = ORG_YAML.replace("people:\n", "people:\n  nina:\n    name: Nina Neu\n    slack: U0000000077\n", 1)
    setup.apply(Context(db=ctx.db, org=parse_organisation_text(grown), clock=ctx.clock))
    nina = rows(ctx.db, Person, key="nina")[0]
    assert rows(ctx.db, Person, id=early.person_id) == []
    assert [a.person_id for a in rows(ctx.db, Acknowledgement)] == [nina.id]
    assert [q.asker_id for q in rows(ctx.db, Question)] == [nina.id]
    assert directory.identify(ctx, "slack", "U0000000077").name == "Nina Neu"
