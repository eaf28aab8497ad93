"""A person's home: what matters to them now, by role (Slack's App Home, and any platform's)."""

from __future__ import annotations

from sqlmodel import Session, col, select

from handlers import digest, pulse, strategy
from handlers.context import Actor, Context
from handlers.text import clip, count
from handlers.ui import Button, Card, Fact, Section
from storage.models import Asset, AssetFeedback, Decision, PulseInvitation, PulseRun, Question

SHOWN = 5


def home(session: Session, ctx: Context, actor: Actor) -> Card:
    """Leaders: their decisions' acknowledgements and open questions. Marketers: their assets'
    feedback and this week's digest headline. Everyone: the active decisions with their
    guardrails, and the pulses waiting for their answer."""
    sections: list[Section] = []
    if actor.has("leader"):
        sections.append(_my_decisions(session, actor))
    if actor.has("marketer", "marketing-lead"):
        sections.append(_my_assets(session, actor))
        week = digest.build(session, ctx.org, end=ctx.now())
        headline = digest.card(week, actor.timezone).sections[0].text if not week.empty else "Nothing yet."
        sections.append(
            Section(heading="This week in the field", text=f"{headline} /digest for the whole read.")
        )
    sections.append(_active_decisions(session))
    waiting = _open_pulses(session, actor, ctx)
    if waiting:
        sections.append(Section(heading="Pulses waiting for you", text="\n".join(r.title for r in waiting)))
    return Card(
        title=f"Touchline for {ctx.org.organisation.name}",
        sections=tuple(sections),
        buttons=tuple(
            Button(f"Answer: {clip(r.title, 60)}", pulse.ANSWER, str(r.id), "primary") for r in waiting
        ),
        footer="/help lists everything you can do",
    )


def _my_decisions(session: Session, actor: Actor) -> Section:
    mine = session.exec(
        select(Decision)
        .where(Decision.author_id == actor.person_id, Decision.status == strategy.ACTIVE)
        .order_by(col(Decision.id).desc())
        .limit(SHOWN)
    ).all()
    lines = []
    for d in mine:
        assert d.id is not None
        acknowledged, members = strategy.acknowledgement_count(session, d.id)
        open_questions = len(
            session.exec(
                select(Question.id).where(Question.decision_id == d.id, col(Question.answer).is_(None))
            ).all()
        )
        lines.append(
            f"#{d.id} {d.title}: acknowledged by {acknowledged} of {members}"
            + (f" · {count(open_questions, 'open question')}" if open_questions else "")
        )
    return Section(heading="Your decisions", text="\n".join(lines) or "None active. /strategy announces one.")


def _my_assets(session: Session, actor: Actor) -> Section:
    mine = session.exec(
        select(Asset).where(Asset.owner_id == actor.person_id).order_by(col(Asset.id).desc()).limit(SHOWN)
    ).all()
    lines = []
    for a in mine:
        kinds = list(session.exec(select(AssetFeedback.kind).where(AssetFeedback.asset_id == a.id)))
        lines.append(
            f"#{a.id} {a.title} ({a.status}): {kinds.count('useful')} useful · "
            f"{kinds.count('used')} used · {kinds.count('doesnt-fit')} doesn't fit"
        )
    return Section(heading="Your assets", text="\n".join(lines) or "None yet. /asset publishes one.")


def _active_decisions(session: Session) -> Section:
    active = session.exec(
        select(Decision)
        .where(Decision.status == strategy.ACTIVE)
        .order_by(col(Decision.id).desc())
        .limit(SHOWN)
    ).all()
    facts = []
    for d in active:
        rules = "; ".join(
            part
            for part in (
                f"may: {d.reps_may}" if d.reps_may else "",
                f"may not: {d.reps_may_not}" if d.reps_may_not else "",
            )
            if part
        )
        facts.append(Fact(f"#{d.id} {d.title}", clip(rules, 300)))
    return Section(
        heading="Active decisions",
        text="" if facts else "No active strategy decisions.",
        facts=tuple(facts),
    )


def _open_pulses(session: Session, actor: Actor, ctx: Context) -> list[PulseRun]:
    return list(
        session.exec(
            select(PulseRun)
            .join(PulseInvitation, col(PulseInvitation.run_id) == col(PulseRun.id))
            .where(
                PulseRun.status == pulse.OPEN,
                PulseInvitation.person_id == actor.person_id,
                col(PulseInvitation.answered).is_(False),
                col(PulseInvitation.due_at) <= ctx.now(),
            )
            .order_by(col(PulseRun.id))
            .limit(3)
        ).all()
    )
