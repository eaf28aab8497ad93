"""Strategy decisions through the neutral entry: announce, acknowledge, ask, answer, supersede, remind."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import text

from bot.delivery import DeliveryWorker
from handlers import inbound, strategy
from handlers.context import Actor, Context, PostRef
from handlers.ui import Card, Form, Reply
from storage.models import (
    Acknowledgement,
    AuditEntry,
    Decision,
    DecisionAudience,
    Outbox,
    Person,
    Question,
)
from tests.fakes import Clock, RecordingPlatform, rows

GOOD = {
    "title": "Mid-market first in EMEA",
    "decision": "From January we lead with the mid-market tier.",
    "why": "Win rates in mid-market are twice enterprise.",
    "reps_may": "offer up to 15% on 3-year deals",
    "reps_may_not": "discount the platform fee",
    "effective_on": "2026-12-01",
    "review_on": "",
    "audiences": ["emea"],
}


def open_form(reply: Reply) -> Form:
    assert reply.form is not None, reply
    return reply.form


def fill(ctx: Context, actor: Actor, form: Form, **values: Any) -> Reply:
    """Submit a form the way every platform does: the values plus the form's own state."""
    return inbound.submit(ctx, actor, form.form_id, {**values, **form.state})


def announce(ctx: Context, leader: Actor, **overrides: Any) -> Decision:
    form = open_form(inbound.command(ctx, leader, "strategy", ""))
    reply = fill(ctx, leader, form, **{**GOOD, **overrides})
    assert not reply.errors, reply.errors
    return rows(ctx.db, Decision)[-1]


def deliver(ctx: Context, platform: RecordingPlatform) -> None:
    asyncio.run(DeliveryWorker(ctx.db, {"console": platform}, clock=ctx.clock).drain())


def posts(ctx: Context, decision: Decision) -> list[Outbox]:
    return rows(ctx.db, Outbox, subject=f"decision:{decision.id}", kind="post")


# --- announcing ------------------------------------------------------------------------------


def test_only_leaders_may_announce_and_are_told_who_may(ctx: Context, people: dict[str, Actor]) -> None:
    reply = inbound.command(ctx, people["rep1"], "strategy", "")
    assert reply.form is None
    assert "Only leaders" in reply.text and "Lena Leader" in reply.text and "Luis Leader" in reply.text

    forged = inbound.submit(ctx, people["rep1"], strategy.ANNOUNCE_FORM, GOOD)
    assert "Only leaders" in forged.text
    assert rows(ctx.db, Decision) == [] and rows(ctx.db, Outbox) == []


def test_the_announce_form_asks_for_the_why_and_the_guardrails(
    ctx: Context, people: dict[str, Actor]
) -> None:
    form = open_form(inbound.command(ctx, people["lead"], "/strategy", ""))
    names = [f.name for f in form.fields]
    assert names == [
        "title",
        "decision",
        "why",
        "reps_may",
        "reps_may_not",
        "effective_on",
        "review_on",
        "audiences",
    ]
    audiences = next(f for f in form.fields if f.name == "audiences")
    assert [o.value for o in audiences.options] == ["emea", "na", "marketing"]


def test_an_announced_decision_goes_to_every_target_once_in_one_transaction(
    ctx: Context, people: dict[str, Actor]
) -> None:
    decision = announce(ctx, people["lead"], audiences=["emea", "na"])

    assert decision.title == GOOD["title"] and decision.why == GOOD["why"]
    assert decision.author_id == people["lead"].person_id
    assert len(rows(ctx.db, DecisionAudience, decision_id=decision.id)) == 2
    # emea: console:#emea + slack:C0000000001; na: console:#na + console:#emea (already counted)
    targets = sorted((p.platform, p.address) for p in posts(ctx, decision))
    assert targets == [("console", "#emea"), ("console", "#na"), ("slack", "C0000000001")]
    card = Card.from_dict(posts(ctx, decision)[0].card)
    assert [b.label for b in card.buttons] == ["Got it", "I have a question", "Concern from the field"]
    flat = str(card.to_dict())
    assert GOOD["why"] in flat and GOOD["reps_may"] in flat and GOOD["reps_may_not"] in flat
    assert card.footer.endswith("acknowledged by 0 of 3")
    assert [a.action for a in rows(ctx.db, AuditEntry)] == ["decision.announce"]


@pytest.mark.parametrize(
    ("overrides", "field", "says"),
    [
        ({"title": "   "}, "title", "required"),
        ({"why": ""}, "why", "required"),
        ({"audiences": []}, "audiences", "at least one"),
        ({"audiences": ["nowhere"]}, "audiences", "not one of"),
        ({"reps_may": "", "reps_may_not": ""}, "reps_may", "guardrails"),
        ({"effective_on": "next monday"}, "effective_on", "YYYY-MM-DD"),
        ({"review_on": "2026-11-01"}, "review_on", "after the effective date"),
        ({"decision": "x" * 2001}, "decision", "2,001 characters; the limit is 2,000"),
        ({"why": "y" * 10_000_000}, "why", "10,000,000 characters"),
        ({"title": {"nested": "object"}}, "title", "expected text"),
    ],
)
def test_bad_fields_are_refused_with_the_reason_and_nothing_is_stored(
    ctx: Context, people: dict[str, Actor], overrides: dict[str, Any], field: str, says: str
) -> None:
    form = open_form(inbound.command(ctx, people["lead"], "strategy", ""))
    reply = fill(ctx, people["lead"], form, **{**GOOD, **overrides})
    assert field in reply.errors and says in reply.errors[field]
    assert rows(ctx.db, Decision) == [] and rows(ctx.db, Outbox) == [] and rows(ctx.db, AuditEntry) == []


def test_a_failure_half_way_leaves_nothing_behind_and_no_stack_trace(
    ctx: Context, people: dict[str, Actor]
) -> None:
    # The audit entry is written last; without its table the transaction fails after
    # the decision and its outbox rows were written, and all of it must roll back.
    with ctx.db.session() as session:
        session.execute(text("ALTER TABLE auditentry RENAME TO auditentry_away"))
    try:
        form = open_form(inbound.command(ctx, people["lead"], "strategy", ""))
        reply = fill(ctx, people["lead"], form, **GOOD)
    finally:
        with ctx.db.session() as session:
            session.execute(text("ALTER TABLE auditentry_away RENAME TO auditentry"))
    assert "Something went wrong" in reply.text and "reference" in reply.text
    assert "Traceback" not in reply.text and "auditentry" not in reply.text
    assert rows(ctx.db, Decision) == [] and rows(ctx.db, Outbox) == []


# --- acknowledging ---------------------------------------------------------------------------


def test_got_it_counts_once_per_person_and_updates_every_posted_card(
    ctx: Context, people: dict[str, Actor]
) -> None:
    decision = announce(ctx, people["lead"], audiences=["emea", "na"])
    platform = RecordingPlatform()
    deliver(ctx, platform)
    # Two channels' lanes go side by side: in either order.
    assert sorted(platform.ops()) == [("send", "#emea"), ("send", "#na")]

    first = inbound.action(ctx, people["rep1"], strategy.ACK, str(decision.id))
    again = inbound.action(ctx, people["rep1"], strategy.ACK, str(decision.id))
    assert "1 of 3" in first.text
    assert "already acknowledged" in again.text
    assert len(rows(ctx.db, Acknowledgement, decision_id=decision.id)) == 1

    inbound.action(ctx, people["rep3"], strategy.ACK, str(decision.id))
    # Two acknowledgements before the worker ran: one pending update per console post, not two.
    updates = rows(ctx.db, Outbox, kind="update", platform="console")
    assert len(updates) == 2
    deliver(ctx, platform)
    updated = [s for s in platform.transcript if s.op == "update"]
    assert sorted(s.address for s in updated) == ["#emea", "#na"]
    assert all(s.card.footer.endswith("acknowledged by 2 of 3") for s in updated)
    assert {s.ref for s in updated} == {s.ref for s in platform.transcript if s.op == "send"}


def test_a_card_not_yet_sent_goes_out_with_the_latest_count(ctx: Context, people: dict[str, Actor]) -> None:
    decision = announce(ctx, people["lead"])
    inbound.action(ctx, people["rep2"], strategy.ACK, str(decision.id))
    assert rows(ctx.db, Outbox, kind="update") == []
    platform = RecordingPlatform()
    deliver(ctx, platform)
    assert platform.transcript[0].card.footer.endswith("acknowledged by 1 of 2")


def test_someone_outside_the_audience_who_acknowledges_is_counted_in_both(
    ctx: Context, people: dict[str, Actor]
) -> None:
    decision = announce(ctx, people["lead"])
    reply = inbound.action(ctx, people["market"], strategy.ACK, str(decision.id))
    assert "1 of 3" in reply.text


def test_a_check_mark_reaction_acknowledges_and_removing_it_takes_it_back(
    ctx: Context, people: dict[str, Actor]
) -> None:
    announce(ctx, people["lead"])
    platform = RecordingPlatform()
    deliver(ctx, platform)
    post = PostRef("console", "#emea", platform.transcript[0].ref)

    added = inbound.reaction(ctx, people["rep2"], post, ":white_check_mark::skin-tone-3:", True)
    assert "acknowledged" in added.text
    assert len(rows(ctx.db, Acknowledgement)) == 1
    inbound.reaction(ctx, people["rep2"], post, "✅", False)
    assert rows(ctx.db, Acknowledgement) == []
    deliver(ctx, platform)
    assert platform.transcript[-1].card.footer.endswith("acknowledged by 0 of 2")


def test_other_reactions_and_reactions_elsewhere_change_nothing(
    ctx: Context, people: dict[str, Actor]
) -> None:
    decision = announce(ctx, people["lead"])
    platform = RecordingPlatform()
    deliver(ctx, platform)
    ours = PostRef("console", "#emea", platform.transcript[0].ref)
    theirs = PostRef("console", "#emea", "somebody-elses-message")
    assert inbound.reaction(ctx, people["rep2"], ours, "tada", True).is_empty
    assert inbound.reaction(ctx, people["rep2"], theirs, "white_check_mark", True).is_empty
    assert rows(ctx.db, Acknowledgement, decision_id=decision.id) == []


# --- questions and concerns ------------------------------------------------------------------


def test_a_question_reaches_the_author_with_who_asked_and_the_answer_reaches_the_asker(
    ctx: Context, people: dict[str, Actor]
) -> None:
    decision = announce(ctx, people["lead"])
    form = open_form(inbound.action(ctx, people["rep1"], strategy.ASK, str(decision.id)))
    reply = fill(ctx, people["rep1"], form, text="Does this apply to renewals?")
    assert "went to Lena Leader" in reply.text

    question = rows(ctx.db, Question)[0]
    assert question.asker_id == people["rep1"].person_id and question.kind == "question"
    to_author = rows(ctx.db, Outbox, kind="direct")[0]
    card = Card.from_dict(to_author.card)
    assert (to_author.platform, to_author.address) == ("console", "lead")
    assert "Rita Rep" in str(card.to_dict()) and "renewals" in str(card.to_dict())
    assert [b.action_id for b in card.buttons] == [strategy.ANSWER]

    refused = inbound.action(ctx, people["rep2"], strategy.ANSWER, card.buttons[0].value)
    assert "Only the decision's author or a leader" in refused.text
    answer_form = open_form(inbound.action(ctx, people["lead"], strategy.ANSWER, card.buttons[0].value))
    done = fill(ctx, people["lead"], answer_form, answer="Yes, renewals too.")
    assert "went to Rita Rep" in done.text
    to_asker = rows(ctx.db, Outbox, kind="direct")[-1]
    assert (to_asker.platform, to_asker.address) == ("console", "rep1")
    assert "Yes, renewals too." in str(to_asker.card)
    again = inbound.action(ctx, people["lead2"], strategy.ANSWER, card.buttons[0].value)
    assert "answered already" in again.text


def test_an_anonymous_concern_stores_nothing_that_leads_back_to_its_sender(
    ctx: Context, people: dict[str, Actor], clock: Clock
) -> None:
    decision = announce(ctx, people["lead"])
    sender = people["rep2"]
    before = _snapshot(ctx)
    form = open_form(inbound.action(ctx, sender, strategy.CONCERN, str(decision.id)))
    reply = fill(ctx, sender, form, text="Customers say the tier lacks SSO.", anonymous=True)
    assert "anonymously" in reply.text

    # Sent: one sealed box, nothing readable, nothing of the sender, no time; no message yet.
    new_rows = [r for r in _snapshot(ctx) if r not in before]
    assert {table for table, _ in new_rows} == {"sealedconcern"}
    [(_, box)] = new_rows
    assert b"SSO" not in box["sealed"] and set(box) == {"id", "key_id", "sealed"}
    assert rows(ctx.db, Question) == [] and rows(ctx.db, Outbox, kind="direct") == []
    assert strategy.deliver_concerns(ctx) == 0  # before its round

    clock.now = datetime(2026, 12, 1, 7, 0, tzinfo=UTC)  # 08:00 in Berlin, the next morning
    assert strategy.deliver_concerns(ctx) == 1 and strategy.deliver_concerns(ctx) == 0
    [concern] = rows(ctx.db, Question)
    assert concern.asker_id is None and concern.kind == "concern"
    assert concern.asked_at == datetime(2026, 11, 30, tzinfo=UTC)  # only the day is kept
    delivered = [r for r in _snapshot(ctx) if r not in before]
    assert {table for table, _ in delivered} == {"question", "outbox"}
    for _table, values in delivered:
        assert "Ravi Rep" not in str(values) and "rep2" not in str(values)
        assert sender.person_id not in [v for k, v in values.items() if k.endswith("_id")]
    [message] = rows(ctx.db, Outbox, kind="direct")
    assert "anonymous" in str(message.card) and "SSO" in str(message.card)
    # The message was written by the round, at the round's time: not when the concern was sent.
    assert message.created_at == clock.now


def test_the_answer_to_an_anonymous_concern_is_posted_where_the_decision_was(
    ctx: Context, people: dict[str, Actor]
) -> None:
    decision = announce(ctx, people["lead"], audiences=["emea", "marketing"])
    form = open_form(inbound.action(ctx, people["rep2"], strategy.CONCERN, str(decision.id)))
    fill(ctx, people["rep2"], form, text="Too rigid for renewals.", anonymous="true")
    ctx.clock.now = datetime(2026, 12, 1, 7, 0, tzinfo=UTC)  # type: ignore[attr-defined]
    strategy.deliver_concerns(ctx)
    question = rows(ctx.db, Question)[0]
    answer_form = open_form(inbound.action(ctx, people["lead"], strategy.ANSWER, str(question.id)))
    assert "posted where the decision was announced" in answer_form.intro
    reply = fill(ctx, people["lead"], answer_form, answer="Renewals keep their terms.")
    assert "3 channels" in reply.text
    answers = rows(ctx.db, Outbox, subject=f"answer:{question.id}")
    assert sorted(a.address for a in answers) == ["#emea", "#marketing", "C0000000001"]


def test_a_question_that_cannot_reach_its_author_is_refused_and_not_kept(
    ctx: Context, people: dict[str, Actor]
) -> None:
    decision = announce(ctx, people["lead"])
    with ctx.db.session() as session:
        session.execute(text("DELETE FROM identity WHERE person_id = :p"), {"p": people["lead"].person_id})
    form = open_form(inbound.action(ctx, people["rep1"], strategy.ASK, str(decision.id)))
    reply = fill(ctx, people["rep1"], form, text="Hello?")
    assert "Nothing was sent" in reply.text
    assert rows(ctx.db, Question) == [] and rows(ctx.db, Outbox, kind="direct") == []


# --- looking at decisions --------------------------------------------------------------------


def test_list_shows_active_decisions_with_why_and_guardrails(ctx: Context, people: dict[str, Actor]) -> None:
    assert "No active strategy decisions" in inbound.command(ctx, people["rep1"], "strategy", "list").text
    announce(ctx, people["lead"], title="Lead with analytics", why="Buyers ask for it.")
    reply = inbound.command(ctx, people["rep1"], "strategy", "list")
    assert reply.card is not None
    listed = str(reply.card.to_dict())
    assert "Lead with analytics" in listed and "Buyers ask for it." in listed
    assert GOOD["reps_may"] in listed and GOOD["reps_may_not"] in listed


def test_show_tells_the_author_who_has_not_acknowledged_but_not_a_rep(
    ctx: Context, people: dict[str, Actor]
) -> None:
    decision = announce(ctx, people["lead"])
    inbound.action(ctx, people["rep1"], strategy.ACK, str(decision.id))
    as_author = inbound.command(ctx, people["lead"], "strategy", f"show {decision.id}")
    as_rep = inbound.command(ctx, people["rep1"], "strategy", f"show #{decision.id}")
    assert as_author.card is not None and as_rep.card is not None
    assert "Not acknowledged yet" in str(as_author.card.to_dict())
    assert "Ravi Rep" in str(as_author.card.to_dict())
    assert "Not acknowledged yet" not in str(as_rep.card.to_dict())
    assert "There is no decision #99" in inbound.command(ctx, people["rep1"], "strategy", "show 99").text
    assert "Which decision?" in inbound.command(ctx, people["rep1"], "strategy", "show abc").text


# --- superseding -----------------------------------------------------------------------------


def test_superseding_points_the_old_card_to_the_new_one_and_restarts_acknowledgement(
    ctx: Context, people: dict[str, Actor]
) -> None:
    old = announce(ctx, people["lead"])
    platform = RecordingPlatform()
    deliver(ctx, platform)
    inbound.action(ctx, people["rep1"], strategy.ACK, str(old.id))
    deliver(ctx, platform)

    assert "Only leaders" in inbound.command(ctx, people["rep1"], "strategy", f"supersede {old.id}").text
    form = open_form(inbound.command(ctx, people["lead2"], "strategy", f"supersede {old.id}"))
    assert form.state == {"supersedes": str(old.id)}
    initial = {f.name: f.initial for f in form.fields}
    assert initial["title"] == old.title and initial["audiences"] == ["emea"]
    reply = fill(ctx, people["lead2"], form, **{**GOOD, "title": "Mid-market first, EMEA and NA"})
    assert "replacing #1" in reply.text

    new = rows(ctx.db, Decision)[-1]
    assert new.supersedes_id == old.id
    assert rows(ctx.db, Decision, id=old.id)[0].status == "superseded"
    assert rows(ctx.db, Acknowledgement, decision_id=new.id) == []
    deliver(ctx, platform)
    old_update = [s for s in platform.transcript if s.op == "update"][-1]
    assert old_update.card.title.startswith("Superseded") and not old_update.card.buttons
    assert f"#{new.id}" in str(old_update.card.to_dict())
    late = inbound.action(ctx, people["rep2"], strategy.ACK, str(old.id))
    assert "superseded" in late.text and f"/strategy show {new.id}" in late.text
    listed = inbound.command(ctx, people["rep1"], "strategy", "list")
    assert listed.card is not None and [s.heading for s in listed.card.sections] == [f"#{new.id} {new.title}"]


# --- reminders -------------------------------------------------------------------------------


def test_one_reminder_goes_to_those_who_have_not_acknowledged_after_the_delay(
    ctx: Context, people: dict[str, Actor], clock: Clock
) -> None:
    decision = announce(ctx, people["lead"], audiences=["emea", "na"])
    inbound.action(ctx, people["rep1"], strategy.ACK, str(decision.id))
    clock.advance(days=1, hours=23)
    assert strategy.remind_unacknowledged(ctx) == 0
    clock.advance(hours=1)
    assert strategy.remind_unacknowledged(ctx) == 2
    reminders = rows(ctx.db, Outbox, kind="direct")
    assert sorted(r.address for r in reminders) == ["rep2", "rep3"]
    card = Card.from_dict(reminders[0].card)
    assert card.title.startswith("Reminder") and card.buttons[0].action_id == strategy.ACK
    clock.advance(days=3)
    assert strategy.remind_unacknowledged(ctx) == 0


def test_reminders_go_where_the_person_last_used_touchline(
    ctx: Context, people: dict[str, Actor], clock: Clock
) -> None:
    from handlers import directory

    decision = announce(ctx, people["lead"])
    directory.identify(ctx, "slack", "U0000000001", name="Rita")  # rep1 talks to us on Slack
    clock.advance(days=3)
    strategy.remind_unacknowledged(ctx)
    targets = sorted((r.platform, r.address) for r in rows(ctx.db, Outbox, kind="direct"))
    assert targets == [("console", "rep2"), ("slack", "U0000000001")]
    assert rows(ctx.db, Decision, id=decision.id)[0].reminded_at is not None


def test_a_superseded_decision_gets_no_reminder(ctx: Context, people: dict[str, Actor], clock: Clock) -> None:
    old = announce(ctx, people["lead"])
    form = open_form(inbound.command(ctx, people["lead"], "strategy", f"supersede {old.id}"))
    fill(ctx, people["lead"], form, **GOOD)
    clock.advance(days=3)
    strategy.remind_unacknowledged(ctx)
    subjects = {r.subject for r in rows(ctx.db, Outbox, kind="direct")}
    assert subjects == {f"decision:{old.id + 1}"}


# --- the entry itself ------------------------------------------------------------------------


def test_unknown_commands_buttons_and_forms_get_help_not_an_error(
    ctx: Context, people: dict[str, Actor]
) -> None:
    reply = inbound.command(ctx, people["rep1"], "/frobnicate", "now")
    assert "I don't know /frobnicate" in reply.text and reply.card is not None
    assert "/strategy list" in str(reply.card.to_dict())
    assert "/strategy supersede" not in str(reply.card.to_dict())  # a rep is not offered leaders' commands
    assert "/strategy supersede" in str(inbound.command(ctx, people["lead"], "help", "").card)
    assert "no longer does anything" in inbound.action(ctx, people["rep1"], "nope", "1").text
    assert "expired" in inbound.submit(ctx, people["rep1"], "nope", {}).text
    assert "I don't know /strategy dance" in inbound.command(ctx, people["rep1"], "strategy", "dance").text


def test_an_oversized_command_is_refused_before_anything_runs(ctx: Context, people: dict[str, Actor]) -> None:
    reply = inbound.command(ctx, people["rep1"], "strategy", "show " + "9" * 10_000_000)
    assert "10,000,005 characters" in reply.text


def _snapshot(ctx: Context) -> list[tuple[str, dict[str, Any]]]:
    """Every row of every table, to see exactly what an action added."""
    from storage.models import metadata

    found = []
    with ctx.db.engine.connect() as connection:
        for table in metadata.sorted_tables:
            for row in connection.execute(table.select()):
                found.append((table.name, dict(row._mapping)))
    return found


def test_people_first_seen_on_a_platform_are_remembered_without_a_timestamp(ctx: Context) -> None:
    from handlers import directory

    actor = directory.identify(ctx, "slack", "U0000000009", name="Nina New")
    assert actor.roles == frozenset({"rep"})  # app.yaml names her by Slack id
    person = rows(ctx.db, Person, id=actor.person_id)[0]
    assert person.name == "Nina New" and person.home_platform == "slack"
    from sqlalchemy import DateTime

    assert not [c.name for c in Person.__table__.columns if isinstance(c.type, DateTime)]  # type: ignore[attr-defined]


def test_people_acknowledging_at_the_same_moment_all_show_in_the_final_count(
    ctx: Context, people: dict[str, Actor]
) -> None:
    import threading

    from handlers import directory

    decision = announce(ctx, people["lead"])
    platform = RecordingPlatform()
    deliver(ctx, platform)
    crowd = [directory.identify(ctx, "slack", f"U00000001{i:02d}", name=f"Rep {i}") for i in range(8)]
    crowd += [crowd[0]]  # one of them double-clicks
    barrier = threading.Barrier(len(crowd))
    replies: list[Reply] = []

    def press(actor: Actor) -> None:
        barrier.wait()
        replies.append(inbound.action(ctx, actor, strategy.ACK, str(decision.id)))

    threads = [threading.Thread(target=press, args=(actor,)) for actor in crowd]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not [r.text for r in replies if "Something went wrong" in r.text]
    assert len(rows(ctx.db, Acknowledgement, decision_id=decision.id)) == 8
    deliver(ctx, platform)
    assert platform.transcript[-1].card.footer.endswith("acknowledged by 8 of 10")
