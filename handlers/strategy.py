"""Strategy decisions: leaders announce them with the why and the guardrails; the field acknowledges."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, func, update
from sqlalchemy import select as select_columns
from sqlmodel import Session, col, select

from handlers import directory, forms, messages, numbered
from handlers.context import Actor, Context, Refusal
from handlers.text import clip, count
from handlers.ui import Button, Card, Fact, Form, FormField, Option, Reply, Section
from storage import audit, outbox
from storage.database import insert_new
from storage.models import (
    Acknowledgement,
    Audience,
    Decision,
    DecisionAudience,
    Person,
    Question,
    SealedConcern,
)
from storage.sealed import Unsealable

log = logging.getLogger(__name__)

ACTIVE, SUPERSEDED = "active", "superseded"
ACK, ASK, CONCERN, ANSWER = "strategy.ack", "strategy.ask", "strategy.concern", "strategy.answer"
ANNOUNCE_FORM, QUESTION_FORM, ANSWER_FORM = (
    "strategy.announce",
    "strategy.question",
    "strategy.answer",
)
USAGE = (
    "/strategy — announce a decision (leaders)\n"
    "/strategy list — the active decisions, with their why and guardrails\n"
    "/strategy show <id> — one decision, its acknowledgements and questions\n"
    "/strategy supersede <id> — replace a decision with a new version (leaders)"
)
LIST_LIMIT = 20
CONCERN_ROUND = time(8, 0)  # anonymous concerns reach their authors once a day (organisation's time)
CONCERN_BOX = "concern"
CONCERN_SIZE = 6 * 1000 + 256  # the longest concern, as JSON, and the rest: every box this long
NAMES_SHOWN = 30


def on_command(session: Session, ctx: Context, actor: Actor, text: str) -> Reply:
    """`/strategy [list | show <id> | supersede <id>]`."""
    verb, _, rest = text.strip().partition(" ")
    verb, rest = verb.lower(), rest.strip()
    if verb == "":
        _require_leader(ctx, actor, "announce strategy decisions")
        return Reply(form=announce_form(ctx))
    if verb == "list":
        return list_decisions(session, ctx)
    if verb == "show":
        return show(session, ctx, actor, _find(session, rest))
    if verb == "supersede":
        _require_leader(ctx, actor, "supersede strategy decisions")
        old = _find(session, rest)
        _require_active(session, old)
        return Reply(form=announce_form(ctx, based_on=old, audiences=_audience_keys(session, old)))
    if verb == "help":
        return Reply(text=USAGE)
    return Reply(text=f"I don't know /strategy {verb[:40]}. Try:\n{USAGE}")


# --- announcing ------------------------------------------------------------------------


def announce_form(ctx: Context, *, based_on: Decision | None = None, audiences: Sequence[str] = ()) -> Form:
    today = ctx.now().date()
    options = tuple(Option(key, spec.label or key) for key, spec in ctx.org.audiences.items())
    old = based_on
    return Form(
        form_id=ANNOUNCE_FORM,
        title="Supersede a decision" if old else "Announce a decision",
        intro=(
            f"This replaces #{old.id} “{old.title}”. Its card will point to the new version "
            "and acknowledgements start again."
            if old
            else "Tell the field what was decided, why, and what reps may and may not do."
        ),
        submit_label="Announce",
        state={"supersedes": str(old.id)} if old else {},
        fields=(
            FormField("title", "Title", required=True, max_length=150, initial=old.title if old else None),
            FormField(
                "decision",
                "The decision",
                required=True,
                multiline=True,
                max_length=2000,
                hint="What was decided, in a sentence or two.",
                initial=old.decision if old else None,
            ),
            FormField(
                "why",
                "Why",
                required=True,
                multiline=True,
                max_length=2000,
                hint="The reasons, so that reps can explain it to customers.",
                initial=old.why if old else None,
            ),
            FormField(
                "reps_may",
                "Reps may",
                multiline=True,
                max_length=1500,
                hint="e.g. offer up to 15% discount on 3-year deals",
                initial=old.reps_may if old else None,
            ),
            FormField(
                "reps_may_not",
                "Reps may not",
                multiline=True,
                max_length=1500,
                hint="e.g. discount the platform fee; promise the Q3 roadmap",
                initial=old.reps_may_not if old else None,
            ),
            FormField(
                "effective_on",
                "Effective date",
                kind="date",
                required=True,
                initial=(today if not old else max(today, old.effective_on)).isoformat(),
            ),
            FormField("review_on", "Review date", kind="date", hint="optional"),
            FormField(
                "audiences",
                "Audiences",
                kind="select",
                multiple=True,
                required=True,
                options=options,
                initial=list(audiences) or None,
            ),
        ),
    )


def announce(session: Session, ctx: Context, actor: Actor, values: Mapping[str, Any]) -> Reply:
    """Store a decision and queue its card for every target of its audiences, in one transaction."""
    _require_leader(ctx, actor, "announce strategy decisions")
    old: Decision | None = None
    if values.get("supersedes"):
        old = _find(session, str(values["supersedes"]), lock=True)
        _require_active(session, old)
    clean = forms.clean(announce_form(ctx, based_on=old), values, check=_guardrails_and_dates)

    now = ctx.now()
    decision = Decision(
        title=clean["title"],
        decision=clean["decision"],
        why=clean["why"],
        reps_may=clean["reps_may"] or "",
        reps_may_not=clean["reps_may_not"] or "",
        effective_on=clean["effective_on"],
        review_on=clean["review_on"],
        author_id=actor.person_id,
        created_at=now,
        supersedes_id=old.id if old else None,
    )
    session.add(decision)
    session.flush()
    assert decision.id is not None
    audiences = session.exec(select(Audience).where(col(Audience.key).in_(clean["audiences"]))).all()
    for audience in audiences:
        assert audience.id is not None
        session.add(DecisionAudience(decision_id=decision.id, audience_id=audience.id))
    session.flush()

    targets = directory.channels_of(session, [a.id for a in audiences if a.id is not None])
    messages.post(
        session,
        targets,
        decision_card(session, decision),
        subject=_subject(decision),
        now=now,
        sender_id=actor.person_id,
    )
    if old is not None:
        old.status = SUPERSEDED
        session.add(old)
        outbox.refresh_posts(
            session, subject=_subject(old), card=superseded_card(old, decision).to_dict(), now=now
        )
    audit.record(
        session,
        at=now,
        actor_id=actor.person_id,
        action="decision.supersede" if old else "decision.announce",
        subject=_subject(decision),
        audiences=clean["audiences"],
        supersedes=old.id if old else None,
    )
    where = ", ".join(a.label or a.key for a in audiences)
    lead = f"Decision #{decision.id} “{decision.title}”" + (f" (replacing #{old.id})" if old else "")
    if targets:
        text = (
            f"📣 {lead} is going out to {count(len(targets), 'channel')} "
            f"({where}). Follow its acknowledgements with /strategy show {decision.id}."
        )
    else:
        text = (
            f"📣 {lead} is stored, but {where} has no channels yet: add targets to the audience in app.yaml."
        )
    return Reply(text=text)


def _guardrails_and_dates(clean: dict[str, Any]) -> dict[str, str]:
    errors: dict[str, str] = {}
    if "reps_may" in clean and "reps_may_not" in clean and not (clean["reps_may"] or clean["reps_may_not"]):
        errors["reps_may"] = "Give the guardrails: what reps may do, may not do, or both."
    review: date | None = clean.get("review_on")
    effective: date | None = clean.get("effective_on")
    if review is not None and effective is not None and review <= effective:
        errors["review_on"] = "The review date must come after the effective date."
    return errors


# --- the cards -------------------------------------------------------------------------


def decision_card(session: Session, decision: Decision, *, buttons: bool = True) -> Card:
    """The card a decision is announced with; its footer carries the live acknowledgement count."""
    assert decision.id is not None
    acknowledged, members = acknowledgement_count(session, decision.id)
    guardrails = tuple(
        fact
        for fact in (
            Fact("Reps may", decision.reps_may),
            Fact("Reps may not", decision.reps_may_not),
        )
        if fact.value
    )
    when = [Fact("Effective", decision.effective_on.isoformat())]
    if decision.review_on:
        when.append(Fact("Review", decision.review_on.isoformat()))
    when.append(Fact("From", directory.name_of(session, decision.author_id)))
    return Card(
        title=f"📣 {decision.title}",
        sections=(
            Section(text=decision.decision),
            Section(heading="Why", text=decision.why),
            Section(heading="Guardrails", facts=guardrails),
            Section(facts=tuple(when)),
        ),
        buttons=(
            Button("Got it", ACK, str(decision.id), "primary"),
            Button("I have a question", ASK, str(decision.id)),
            Button("Concern from the field", CONCERN, str(decision.id)),
        )
        if buttons
        else (),
        footer=f"Decision #{decision.id} · acknowledged by {acknowledged} of {members}",
    )


def superseded_card(old: Decision, new: Decision) -> Card:
    return Card(
        title=f"Superseded: {old.title}",
        sections=(
            Section(
                text=f"This decision was replaced by #{new.id} “{new.title}”. See /strategy show {new.id}."
            ),
        ),
        footer=f"Decision #{old.id} · superseded by #{new.id}",
    )


def acknowledgement_count(session: Session, decision_id: int) -> tuple[int, int]:
    """(people who acknowledged, people the decision reached as known)."""
    session.flush()  # the statement runs on the connection, without the session's autoflush
    acknowledged, members = session.connection().execute(COUNTS, {"decision": decision_id}).one()
    return int(acknowledged), int(members)


# One statement built once: every press's reply and every card drawn of a decision counts both.
COUNTS = select_columns(
    select_columns(func.count())
    .select_from(Acknowledgement)
    .where(col(Acknowledgement.decision_id) == bindparam("decision"))
    .scalar_subquery(),
    directory.MEMBER_COUNT.scalar_subquery(),
)


# --- acknowledging ---------------------------------------------------------------------


def acknowledge(session: Session, ctx: Context, actor: Actor, decision_id: str) -> Reply:
    """*Got it*: one acknowledgement per person and decision; pressing again changes nothing."""
    # The decision row is not locked: presses from a crowd must not queue behind each other. The
    # unique (decision, person) pair settles two presses of one person at once, and the posts'
    # count is drawn when their update is sent (handlers/live.py), not here.
    decision = _find(session, decision_id)
    _require_active(session, decision)
    assert decision.id is not None
    # One statement: stored, or the person had acknowledged already (then it does nothing). On
    # PostgreSQL a press of the same person not yet committed is waited for, then counts as theirs.
    pressed = {"decision_id": decision.id, "person_id": actor.person_id, "at": ctx.now()}
    if session.connection().execute(ACKNOWLEDGE, pressed).first() is None:
        existing = _acknowledgement(session, decision.id, actor.person_id)
        when = f" on {existing.at.date().isoformat()}" if existing else ""
        return Reply(text=f"You already acknowledged “{decision.title}”{when}.")
    _refresh(session, ctx, decision)
    acknowledged, members = acknowledgement_count(session, decision.id)
    return Reply(
        text=f"✅ Thanks, {actor.name}: you acknowledged “{decision.title}” (#{decision.id}). "
        f"{acknowledged} of {members} have so far."
    )


ACKNOWLEDGE = insert_new(Acknowledgement, ("decision_id", "person_id", "at"), ("decision_id", "person_id"))


def _acknowledgement(session: Session, decision_id: int, person_id: int) -> Acknowledgement | None:
    return session.exec(
        select(Acknowledgement).where(
            Acknowledgement.decision_id == decision_id, Acknowledgement.person_id == person_id
        )
    ).first()


def withdraw_acknowledgement(session: Session, ctx: Context, actor: Actor, decision_id: str) -> Reply:
    """Undo *Got it* (the ✅ reaction was removed)."""
    decision = _find(session, decision_id)
    assert decision.id is not None
    existing = session.exec(
        select(Acknowledgement).where(
            Acknowledgement.decision_id == decision.id, Acknowledgement.person_id == actor.person_id
        )
    ).first()
    if existing is None:
        return Reply()
    session.delete(existing)
    if decision.status == ACTIVE:
        _refresh(session, ctx, decision)
    return Reply(text=f"Your acknowledgement of “{decision.title}” is withdrawn.")


def _refresh(session: Session, ctx: Context, decision: Decision) -> None:
    """The decision's count changed: its posts are updated, drawn afresh when sent."""
    session.flush()
    outbox.mark_changed(
        session,
        subject=_subject(decision),
        card=lambda: decision_card(session, decision).to_dict(),
        now=ctx.now(),
    )


def current_card(session: Session, decision_id: str) -> Card | None:
    """An active decision's card as it is now, for a post or update about to be sent; None for
    one no longer active, whose posts carry the card they were given (superseded, …)."""
    decision = session.get(Decision, int(decision_id)) if decision_id.isdigit() else None
    if decision is None or decision.status != ACTIVE:
        return None
    return decision_card(session, decision)


# --- questions, concerns, answers ------------------------------------------------------


def question_form(session: Session, decision_id: str, *, concern: bool) -> Form:
    decision = _find(session, decision_id)
    _require_active(session, decision)
    fields = [
        FormField(
            "text",
            "Your concern" if concern else "Your question",
            required=True,
            multiline=True,
            max_length=1000,
            hint="What customers say, what worries you, what is unclear."
            if concern
            else "What is unclear about this decision?",
        )
    ]
    if concern:
        fields.append(
            FormField(
                "anonymous",
                "Send anonymously (the author will not see your name and Touchline stores none)",
                kind="checkbox",
            )
        )
    return Form(
        form_id=QUESTION_FORM,
        title="Raise a concern" if concern else "Ask a question",
        intro=f"About #{decision.id} “{decision.title}”. It goes to the decision's author.",
        submit_label="Send",
        fields=tuple(fields),
        state={"decision": str(decision.id), "kind": "concern" if concern else "question"},
    )


def open_question(session: Session, ctx: Context, actor: Actor, decision_id: str) -> Reply:
    """*I have a question* opens the question form."""
    return Reply(form=question_form(session, decision_id, concern=False))


def open_concern(session: Session, ctx: Context, actor: Actor, decision_id: str) -> Reply:
    """*Concern from the field* opens the concern form, which can be sent anonymously."""
    return Reply(form=question_form(session, decision_id, concern=True))


def open_answer(session: Session, ctx: Context, actor: Actor, question_id: str) -> Reply:
    """*Answer*, on the question's direct message to the author."""
    return Reply(form=answer_form(session, ctx, actor, question_id))


def ask(session: Session, ctx: Context, actor: Actor, values: Mapping[str, Any]) -> Reply:
    """Route a question or concern to the decision's author as a direct message; an anonymous
    concern waits, sealed, for the day's delivery round (see `deliver_concerns`)."""
    concern = values.get("kind") == "concern"
    form = question_form(session, str(values.get("decision", "")), concern=concern)
    clean = forms.clean(form, values)
    decision = _find(session, form.state["decision"])
    assert decision.id is not None
    now = ctx.now()
    if concern and clean.get("anonymous"):
        return _seal_concern(session, ctx, actor, decision, clean["text"])
    question = Question(
        decision_id=decision.id,
        kind="concern" if concern else "question",
        asker_id=actor.person_id,
        text=clean["text"],
        asked_at=now,
    )
    session.add(question)
    session.flush()
    assert question.id is not None
    _direct(
        session,
        ctx,
        decision.author_id,
        question_card(session, decision, question),
        subject=f"question:{question.id}",
        missing=f"{_author(session, decision)} cannot be reached",
    )
    audit.record(
        session,
        at=now,
        actor_id=actor.person_id,
        action=f"decision.{question.kind}",
        subject=_subject(decision),
        question=question.id,
    )
    kind = "concern" if concern else "question"
    return Reply(
        text=f"Your {kind} about “{decision.title}” went to {_author(session, decision)}. "
        "You will get the answer here."
    )


def _seal_concern(session: Session, ctx: Context, actor: Actor, decision: Decision, text: str) -> Reply:
    """Nothing of the sender is written, and nothing readable: the concern is sealed (with the
    day, and the round that delivers it) so that its moment in the database files, which anyone
    holding them can read, says nothing about it. The round opens it beside the day's others."""
    if decision.author_id not in directory.direct_addresses(session, [decision.author_id]):
        raise Refusal(f"Nothing was sent: {_author(session, decision)} cannot be reached on any platform.")
    now = ctx.now()
    local = now.astimezone(ZoneInfo(ctx.org.organisation.timezone))
    round_at = datetime.combine(local.date(), CONCERN_ROUND, tzinfo=local.tzinfo)
    if round_at <= local:
        round_at += timedelta(days=1)
    session.add(
        SealedConcern(
            id=secrets.token_hex(16),
            key_id=ctx.seal.key_id,
            sealed=ctx.seal.seal(
                {
                    "decision": decision.id,
                    "text": text,
                    "day": local.date().isoformat(),
                    "round": round_at.isoformat(),
                },
                context=CONCERN_BOX,
                size=CONCERN_SIZE,
            ),
        )
    )
    when = round_at.strftime("%a %d %b %H:%M (%Z)")
    return Reply(
        text=f"Your concern about “{decision.title}” goes anonymously to {_author(session, decision)} "
        f"with the day's other anonymous concerns at {when}: at a set time and together, so that "
        "neither its moment nor Touchline's records point to you. The answer will be posted where "
        "the decision was announced."
    )


def deliver_concerns(ctx: Context) -> int:
    """The daily round: every sealed concern whose round has come is opened and becomes a
    concern with only its day, numbered and sent to the decision's author in a shuffled order,
    all in one transaction; returns how many. Two rounds at once deliver each concern once."""
    now = ctx.now()
    with ctx.db.session() as session:
        waiting = session.exec(select(SealedConcern).with_for_update(skip_locked=True)).all()
        due: list[tuple[SealedConcern, dict[str, Any]]] = []
        for box in waiting:
            try:
                opened = ctx.seal.open(box.sealed, context=CONCERN_BOX)
            except Unsealable:
                log.warning("an anonymous concern was sealed under another key and cannot be delivered")
                session.delete(box)
                continue
            if datetime.fromisoformat(opened["round"]) <= now:
                due.append((box, opened))
        secrets.SystemRandom().shuffle(due)
        delivered = 0
        for box, opened in due:
            session.delete(box)
            decision = session.get(Decision, int(opened["decision"]))
            if decision is None or decision.id is None:
                log.warning("an anonymous concern's decision no longer exists: the concern was dropped")
                continue
            day = date.fromisoformat(opened["day"])
            question = Question(
                decision_id=decision.id,
                kind="concern",
                asker_id=None,
                text=str(opened["text"]),
                asked_at=datetime.combine(day, datetime.min.time(), tzinfo=UTC),
            )
            session.add(question)
            session.flush()
            messages.direct(
                session,
                decision.author_id,
                question_card(session, decision, question),
                subject=f"question:{question.id}",
                now=now,
            )
            delivered += 1
        return delivered


def question_card(session: Session, decision: Decision, question: Question) -> Card:
    kind = "Concern" if question.kind == "concern" else "Question"
    asker = directory.name_of(session, question.asker_id) if question.asker_id else "anonymous"
    return Card(
        title=f"{kind} on “{decision.title}”",
        sections=(Section(text=question.text, facts=(Fact("From", asker),)),),
        buttons=(Button("Answer", ANSWER, str(question.id), "primary"),),
        footer=f"Decision #{decision.id} · {kind.lower()} #{question.id}",
    )


def answer_form(session: Session, ctx: Context, actor: Actor, question_id: str) -> Form:
    question = _question(session, question_id)
    decision = _find(session, str(question.decision_id))
    _require_answerer(ctx, actor, decision)
    if question.answer is not None:
        raise Refusal(f"This was answered already: “{question.answer[:200]}”")
    public = question.asker_id is None
    return Form(
        form_id=ANSWER_FORM,
        title="Answer",
        intro=f"{question.kind.capitalize()}: “{question.text[:500]}”"
        + (
            "\nIt was sent anonymously, so your answer will be posted where the decision was announced."
            if public
            else ""
        ),
        submit_label="Send answer",
        fields=(FormField("answer", "Your answer", required=True, multiline=True, max_length=2000),),
        state={"question": str(question.id)},
    )


def answer(session: Session, ctx: Context, actor: Actor, values: Mapping[str, Any]) -> Reply:
    """The author's answer reaches the asker, or everyone the decision reached if they asked anonymously."""
    # Locked first, so that two leaders answering at once cannot both answer.
    question = _question(session, str(values.get("question", "")), lock=True)
    form = answer_form(session, ctx, actor, str(question.id))
    clean = forms.clean(form, values)
    decision = _find(session, str(question.decision_id))
    now = ctx.now()
    question.answer, question.answered_by_id, question.answered_at = (
        clean["answer"],
        actor.person_id,
        now,
    )
    session.add(question)
    card = answer_card(session, decision, question)
    if question.asker_id is not None:
        _direct(
            session,
            ctx,
            question.asker_id,
            card,
            subject=f"question:{question.id}",
            missing="the person who asked cannot be reached",
        )
        sent_to = directory.name_of(session, question.asker_id)
    else:
        audience_ids = session.exec(
            select(DecisionAudience.audience_id).where(DecisionAudience.decision_id == decision.id)
        ).all()
        targets = directory.channels_of(session, audience_ids)
        messages.post(
            session, targets, card, subject=f"answer:{question.id}", now=now, sender_id=actor.person_id
        )
        sent_to = f"the {count(len(targets), 'channel')} the decision was announced in"
    audit.record(
        session,
        at=now,
        actor_id=actor.person_id,
        action="decision.answer",
        subject=_subject(decision),
        question=question.id,
    )
    return Reply(text=f"Your answer went to {sent_to}.")


def answer_card(session: Session, decision: Decision, question: Question) -> Card:
    kind = "concern" if question.kind == "concern" else "question"
    whose = "your" if question.asker_id else "an anonymous"
    return Card(
        title=f"Answer to {whose} {kind} on “{decision.title}”",
        sections=(
            Section(heading=kind.capitalize(), text=question.text),
            Section(
                heading="Answer",
                text=question.answer or "",
                facts=(Fact("From", directory.name_of(session, question.answered_by_id)),),
            ),
        ),
        footer=f"Decision #{decision.id} · /strategy show {decision.id}",
    )


# --- looking -----------------------------------------------------------------------------


def list_decisions(session: Session, ctx: Context) -> Reply:
    decisions = session.exec(
        select(Decision)
        .where(Decision.status == ACTIVE)
        .order_by(col(Decision.effective_on).desc(), col(Decision.id).desc())
        .limit(LIST_LIMIT + 1)
    ).all()
    if not decisions:
        return Reply(text="No active strategy decisions yet. Leaders announce one with /strategy.")
    sections = []
    for decision in decisions[:LIST_LIMIT]:
        assert decision.id is not None
        acknowledged, members = acknowledgement_count(session, decision.id)
        facts = [Fact("Why", clip(decision.why, 300))]
        if decision.reps_may:
            facts.append(Fact("Reps may", clip(decision.reps_may, 300)))
        if decision.reps_may_not:
            facts.append(Fact("Reps may not", clip(decision.reps_may_not, 300)))
        sections.append(
            Section(
                heading=f"#{decision.id} {decision.title}",
                text=f"{clip(decision.decision, 300)}\n"
                f"Effective {decision.effective_on.isoformat()} · acknowledged by "
                f"{acknowledged} of {members}",
                facts=tuple(facts),
            )
        )
    more = len(decisions) > LIST_LIMIT
    return Reply(
        card=Card(
            title="Active strategy decisions",
            sections=tuple(sections),
            footer=("Showing the latest 20. " if more else "") + "/strategy show <id> for the whole decision",
        )
    )


def show(session: Session, ctx: Context, actor: Actor, decision: Decision) -> Reply:
    """One decision; its author and leaders also see who has not acknowledged and who asked."""
    assert decision.id is not None
    card = decision_card(session, decision, buttons=decision.status == ACTIVE)
    sections = list(card.sections)
    if decision.status == SUPERSEDED:
        newer = session.exec(select(Decision).where(Decision.supersedes_id == decision.id)).first()
        if newer:
            sections.insert(0, Section(text=f"⚠️ Superseded by #{newer.id} “{newer.title}”."))
    insider = actor.person_id == decision.author_id or actor.has("leader")
    if insider:
        missing = _not_acknowledged(session, decision.id)
        if missing:
            shown = ", ".join(missing[:NAMES_SHOWN])
            extra = f" and {len(missing) - NAMES_SHOWN} more" if len(missing) > NAMES_SHOWN else ""
            sections.append(Section(heading="Not acknowledged yet", text=shown + extra))
        else:
            sections.append(Section(text="Everyone has acknowledged. 🎉"))
    questions = session.exec(
        select(Question).where(Question.decision_id == decision.id).order_by(col(Question.id))
    ).all()
    for question in questions:
        if question.answer is None and not insider:
            continue
        asker = ""
        if insider:
            asker = (
                f" — {directory.name_of(session, question.asker_id)}" if question.asker_id else " — anonymous"
            )
        heading = f"{question.kind.capitalize()} #{question.id}{asker}"
        text = question.text + (f"\n↳ {question.answer}" if question.answer else "\n↳ not answered yet")
        sections.append(Section(heading=heading, text=text))
    return Reply(card=Card(card.title, tuple(sections), card.buttons, card.footer))


def _not_acknowledged(session: Session, decision_id: int) -> list[str]:
    members = directory.members_of(session, decision_id)
    acknowledged = set(
        session.exec(
            select(Acknowledgement.person_id).where(Acknowledgement.decision_id == decision_id)
        ).all()
    )
    waiting = members - acknowledged
    if not waiting:
        return []
    people = session.exec(select(Person).where(col(Person.id).in_(waiting))).all()
    return sorted(p.name for p in people)


# --- reminders -----------------------------------------------------------------------------


def remind_unacknowledged(ctx: Context) -> int:
    """Queue one reminder per decision, after `strategy.remind_after`, to those who have not
    acknowledged it; returns how many were queued. Running it again, or twice at once, sends
    nothing new."""
    now = ctx.now()
    cutoff = now - ctx.org.strategy.remind_after
    queued = 0
    with ctx.db.session() as session:
        # Each decision's reminder is claimed before any is queued, in the same transaction. A
        # run at the same time waits for this one's row locks (PostgreSQL) or its write lock
        # (SQLite) and then finds reminded_at set: no reminder goes out twice. The claim asks
        # only whether one was ever sent, never how long ago, so another process's clock being
        # seconds off cannot make one due again.
        claimed = (
            session.execute(
                update(Decision)
                .where(
                    col(Decision.status) == ACTIVE,
                    col(Decision.reminded_at).is_(None),
                    col(Decision.created_at) <= cutoff,
                )
                .values(reminded_at=now)
                .returning(col(Decision.id))
                .execution_options(synchronize_session=False)
            )
            .scalars()
            .all()
        )
        due = session.exec(
            select(Decision).where(col(Decision.id).in_(claimed)).order_by(col(Decision.id))
        ).all()
        for decision in due:
            assert decision.id is not None
            acknowledged = set(
                session.exec(
                    select(Acknowledgement.person_id).where(Acknowledgement.decision_id == decision.id)
                ).all()
            )
            waiting = sorted(directory.members_of(session, decision.id) - acknowledged)
            queued += messages.send_to_each(
                session, waiting, reminder_card(session, decision), subject=_subject(decision), now=now
            )
    return queued


def reminder_card(session: Session, decision: Decision) -> Card:
    card = decision_card(session, decision)
    return Card(
        title=f"Reminder: please acknowledge “{decision.title}”",
        sections=card.sections,
        buttons=card.buttons,
        footer=card.footer,
    )


# --- helpers -----------------------------------------------------------------------------


def _subject(decision: Decision) -> str:
    return f"decision:{decision.id}"


def _find(session: Session, text: str, *, lock: bool = False) -> Decision:
    """The decision numbered in `text`; `lock` while acknowledgements (and their live count)
    or superseding change it."""
    if numbered.number_in(text) is None:
        raise Refusal(f"Which decision? Give its number, e.g. /strategy show 3.\n{USAGE}")
    decision = numbered.find(session, Decision, text, lock=lock)
    if decision is None:
        raise Refusal(
            f"There is no decision #{numbered.number_in(text)}. /strategy list shows the active ones."
        )
    return decision


def _question(session: Session, text: str, *, lock: bool = False) -> Question:
    question = numbered.find(session, Question, text, lock=lock)
    if question is None:
        raise Refusal("That question no longer exists.")
    return question


def _require_active(session: Session, decision: Decision) -> None:
    if decision.status == SUPERSEDED:
        newer = session.exec(select(Decision).where(Decision.supersedes_id == decision.id)).first()
        pointer = f" by #{newer.id} “{newer.title}”: /strategy show {newer.id}" if newer else ""
        raise Refusal(f"Decision #{decision.id} “{decision.title}” was superseded{pointer}.")


def _require_leader(ctx: Context, actor: Actor, what: str) -> None:
    if not actor.has("leader"):
        leaders = ", ".join(directory.holders_of(ctx.org, "leader")) or "nobody yet"
        raise Refusal(
            f"Only leaders can {what}. Leaders here: {leaders}. "
            "An admin can add you under roles: leader in app.yaml."
        )


def _require_answerer(ctx: Context, actor: Actor, decision: Decision) -> None:
    if actor.person_id != decision.author_id and not actor.has("leader"):
        raise Refusal("Only the decision's author or a leader can answer its questions.")


def _author(session: Session, decision: Decision) -> str:
    return directory.name_of(session, decision.author_id)


def _direct(
    session: Session, ctx: Context, person_id: int, card: Card, *, subject: str, missing: str
) -> None:
    if not messages.direct(session, person_id, card, subject=subject, now=ctx.now()):
        raise Refusal(f"Nothing was sent: {missing} on any platform Touchline knows.")


def _audience_keys(session: Session, decision: Decision) -> list[str]:
    return list(
        session.exec(
            select(Audience.key)
            .join(DecisionAudience, col(DecisionAudience.audience_id) == col(Audience.id))
            .where(DecisionAudience.decision_id == decision.id)
        ).all()
    )
