"""Pulse surveys: alignment measured on a schedule, anonymously, shown only for groups large enough."""

from __future__ import annotations

import contextlib
import logging
import secrets
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from handlers import directory, forms, messages, numbered
from handlers.context import Actor, Context, Refusal
from handlers.organisation import Organisation, Survey, format_duration
from handlers.text import clip, count
from handlers.ui import Button, Card, Fact, Form, FormField, Option, Reply, Section
from storage import audit
from storage.models import (
    Audience,
    AudienceMember,
    Identity,
    Person,
    PulseAnswer,
    PulseBallot,
    PulseInvitation,
    PulseRun,
)
from storage.sealed import Unsealable

log = logging.getLogger(__name__)
ANSWER, FORM_ID = "pulse.answer", "pulse.answers"
OPEN, CLOSED = "open", "closed"
WORK_STARTS, WORK_ENDS, MORNING = time(8, 0), time(20, 0), time(9, 0)
AGREE = ("Strongly disagree", "Disagree", "Neither agree nor disagree", "Agree", "Strongly agree")
SCALES = {"agree-5": (1, 5), "scale-10": (0, 10)}
TREND_RUNS = 6
USAGE = (
    "/pulse — the surveys and their latest runs (admins)\n"
    "/pulse run <survey> — send a survey now\n"
    "/pulse close <run> — close a run now; leaders get the results\n"
    "/pulse results [run] — a run's results (admins, leaders)"
)


# --- opening a run -------------------------------------------------------------------------------


def open_scheduled(ctx: Context, survey_key: str, slot: datetime) -> int:
    """Open the run of `survey_key` for the local wall-clock time `slot` (naive), inviting each
    person at that time where they are; returns how many were invited now. Opening the same
    slot again invites only whoever was not invited yet (the scheduler may call it twice)."""
    survey = ctx.org.surveys.get(survey_key)
    if survey is None:
        return 0
    with ctx.db.session() as session:
        run = _run_for(session, ctx, survey_key, survey, slot.strftime("%Y-%m-%dT%H:%M"))
        return _invite(session, ctx, run, survey, slot=slot)


def run_now(session: Session, ctx: Context, actor: Actor, survey_key: str) -> Reply:
    """`/pulse run <survey>`: invitations go out at once, to everyone, since an admin asked."""
    _require_admin(ctx, actor)
    survey = ctx.org.surveys.get(survey_key)
    if survey is None:
        known = ", ".join(ctx.org.surveys) or "none in app.yaml"
        raise Refusal(f"There is no survey {survey_key[:40]!r} (surveys: {known}).\n{USAGE}")
    now = ctx.now()
    slot = now.astimezone(ZoneInfo(ctx.org.organisation.timezone)).strftime("now-%Y-%m-%dT%H:%M")
    run = _run_for(session, ctx, survey_key, survey, slot)
    invited = _invite(session, ctx, run, survey, slot=None, sender_id=actor.person_id)
    audit.record(session, at=now, actor_id=actor.person_id, action="pulse.run", subject=f"pulse:{run.id}")
    return Reply(
        text=f"📊 {survey.title}: run #{run.id} is open; {count(invited, 'person', 'people')} invited. "
        f"It closes {_when(run.closes_at, actor.timezone)}; /pulse results {run.id} shows how it goes."
    )


def _run_for(session: Session, ctx: Context, key: str, survey: Survey, slot: str) -> PulseRun:
    """The run for this survey and slot, created once however many processes ask at once."""
    existing = _locked_run(session, key, slot)
    if existing is not None:
        return existing
    now = ctx.now()
    try:
        with session.begin_nested():
            session.add(
                PulseRun(
                    survey=key,
                    slot=slot,
                    title=survey.title,
                    questions=[q.model_dump() for q in survey.questions],
                    min_group_size=survey.min_group_size,
                    min_group_size_comments=survey.min_group_size_comments,
                    opened_at=now,
                    closes_at=now + survey.open_for,
                )
            )
    except IntegrityError:
        pass  # another process opened it a moment ago
    run = _locked_run(session, key, slot)
    assert run is not None
    return run


def _locked_run(session: Session, key: str, slot: str) -> PulseRun | None:
    return session.exec(
        select(PulseRun)
        .where(PulseRun.survey == key, PulseRun.slot == slot)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).first()


@dataclass(frozen=True)
class Member:
    person_id: int
    timezone: str
    side: str
    audience: str


def members(session: Session, org: Organisation, survey: Survey) -> list[Member]:
    """Everyone in the survey's audiences, once, with their time zone and side."""
    rows = session.exec(
        select(AudienceMember.person_id, Audience.key)
        .join(Audience, col(Audience.id) == col(AudienceMember.audience_id))
        .where(col(Audience.key).in_(survey.audiences))
    ).all()
    first_audience: dict[int, str] = {}
    for person_id, key in sorted(rows, key=lambda r: (r[0], survey.audiences.index(r[1]))):
        first_audience.setdefault(person_id, key)
    people = {p.id: p for p in session.exec(select(Person).where(col(Person.id).in_(first_audience)))}
    identities: dict[int, list[Identity]] = {}
    for identity in session.exec(select(Identity).where(col(Identity.person_id).in_(first_audience))):
        identities.setdefault(identity.person_id, []).append(identity)
    groups = directory.groups_of(session, list(first_audience))
    found = []
    for person_id, audience in sorted(first_audience.items()):
        person = people[person_id]
        roles = directory.roles_of(org, person, identities.get(person_id, []), groups.get(person_id, []))
        tz = person.timezone or org.organisation.timezone
        found.append(Member(person_id, tz, side_of(roles), audience))
    return found


def side_of(roles: frozenset[str]) -> str:
    """Alignment is two-sided: marketing on one side, sales on the other."""
    if roles & {"marketer", "marketing-lead"}:
        return "marketing"
    if "rep" in roles:
        return "sales"
    return "other"


def _invite(
    session: Session,
    ctx: Context,
    run: PulseRun,
    survey: Survey,
    *,
    slot: datetime | None,
    sender_id: int | None = None,
) -> int:
    assert run.id is not None
    now = ctx.now()
    invited = set(session.exec(select(PulseInvitation.person_id).where(PulseInvitation.run_id == run.id)))
    todo: list[tuple[Member, datetime]] = []
    for member in members(session, ctx.org, survey):
        if member.person_id in invited:
            continue
        due = now if slot is None else _local_to_utc(slot, member.timezone)
        if slot is not None and not survey.allow_night_and_weekends:
            due = working_time(due, member.timezone)
        todo.append((member, max(due, now)))
    if not todo:
        return 0
    # The run stays open until the last of them has had `open_for`: settle that first, so
    # every invitation says the same closing time.
    run.closes_at = max(run.closes_at, *(due + survey.open_for for _, due in todo))
    session.add(run)
    cards: dict[str, Card] = {}
    for member, due in todo:
        session.add(PulseInvitation(run_id=run.id, person_id=member.person_id, due_at=due))
    messages.direct_each(
        session,
        [
            (m.person_id, cards.setdefault(m.timezone, invitation_card(run, m.timezone)), due)
            for m, due in todo
        ],
        subject=f"pulse:{run.id}",
        now=now,
        sender_id=sender_id,
    )
    return len(todo)


def working_time(moment: datetime, timezone: str) -> datetime:
    """`moment`, or the next working morning (09:00) if it falls at night or at a weekend there."""
    zone = ZoneInfo(timezone)
    local = moment.astimezone(zone)
    if local.weekday() < 5 and WORK_STARTS <= local.time() < WORK_ENDS:
        return moment
    day = local.date() if local.time() < WORK_STARTS else local.date() + timedelta(days=1)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return datetime.combine(day, MORNING, tzinfo=zone).astimezone(moment.tzinfo)


def _local_to_utc(slot: datetime, timezone: str) -> datetime:
    return slot.replace(tzinfo=ZoneInfo(timezone)).astimezone(UTC)


def invitation_card(run: PulseRun, timezone: str) -> Card:
    questions = len(run.questions)
    return Card(
        title=f"📊 {run.title}",
        sections=(
            Section(
                text=f"{count(questions, 'question')}, about a minute. Your answers are sealed without "
                "your name or the time you gave them, mixed with everyone's when the run closes, and "
                f"results show only then, for groups of at least {run.min_group_size} people."
            ),
            Section(facts=(Fact("Open until", _when(run.closes_at, timezone)),)),
        ),
        buttons=(Button("Answer", ANSWER, str(run.id), "primary"),),
        footer=f"Pulse run #{run.id}",
    )


# --- answering -----------------------------------------------------------------------------------


def open_answers(session: Session, ctx: Context, actor: Actor, run_id: str) -> Reply:
    """*Answer* on the invitation opens the questions."""
    run, _ = _invitation(session, ctx, actor, run_id)
    return Reply(form=answer_form(run))


def answer_form(run: PulseRun) -> Form:
    fields = []
    for q in run.questions:
        required = not q.get("optional", False)
        if q["type"] == "agree-5":
            options = tuple(Option(str(i), f"{i} {label}") for i, label in enumerate(AGREE, 1))
        elif q["type"] == "scale-10":
            options = tuple(Option(str(i), str(i)) for i in range(11))
        elif q["type"] == "choice":
            options = tuple(Option(c, c) for c in q["choices"])
        else:
            fields.append(FormField(q["id"], q["text"], required=required, multiline=True, max_length=1000))
            continue
        fields.append(FormField(q["id"], q["text"], kind="select", required=required, options=options))
    return Form(
        form_id=FORM_ID,
        title=clip(run.title, 24),
        intro="Anonymous: your answers are sealed without your name or the time you gave them, "
        "and mixed with everyone's when the run closes.",
        submit_label="Send answers",
        fields=tuple(fields),
        state={"run": str(run.id)},
    )


def answer(session: Session, ctx: Context, actor: Actor, values: Mapping[str, Any]) -> Reply:
    """Seal the answers into the run's ballot box and note that the person answered.

    Both happen in one transaction, so that nothing is lost and nobody answers twice; anyone
    holding the database files can therefore tie this ballot to this invitation, and can read
    nothing in it: it is sealed with a key kept outside the database, padded to the run's one
    ballot length, and holds no name and no time. The answers reach the results only when the
    run closes, mixed with everyone's (see `mix`)."""
    run, invitation = _invitation(session, ctx, actor, str(values.get("run", "")), lock_run=True)
    form = answer_form(run)
    clean = forms.clean(form, values)
    assert run.id is not None
    # Only the side and the audience travel with the answers, to compare groups of enough people.
    theirs = session.exec(
        select(Audience.key)
        .join(AudienceMember, col(AudienceMember.audience_id) == col(Audience.id))
        .where(AudienceMember.person_id == actor.person_id)
    ).all()
    survey = ctx.org.surveys.get(run.survey)
    audience = next((a for a in (survey.audiences if survey else []) if a in theirs), "")
    given = {q["id"]: clean[q["id"]] for q in run.questions if clean.get(q["id"]) is not None}
    session.add(
        PulseBallot(
            id=secrets.token_hex(16),
            run_id=run.id,
            key_id=ctx.seal.key_id,
            sealed=ctx.seal.seal(
                {"answers": given, "side": side_of(actor.roles), "audience": audience},
                context=_box(run),
                size=ballot_size(form),
            ),
        )
    )
    invitation.answered = True
    session.add(invitation)
    return Reply(
        text=f"Thank you: your answers to “{run.title}” are in, sealed and without your name. "
        f"They are mixed with everyone's when the run closes ({_when(run.closes_at, actor.timezone)}), "
        f"and results show then, only for groups of at least {run.min_group_size}."
    )


def ballot_size(form: Form) -> int:
    """One length for every ballot of a run, enough for the longest answers it allows: JSON
    takes at most six bytes a character (a control character's escape)."""
    return 256 + sum(len(f.name) * 2 + 16 + 6 * (f.max_length or 100) for f in form.fields)


def _box(run: PulseRun) -> str:
    return f"pulse:{run.id}"


def mix(session: Session, ctx: Context, run: PulseRun) -> int:
    """Open the run's ballots and write their answers as new rows, all at once, in a shuffled
    order, then delete the ballots; returns how many answered ballots were opened.

    What would never be shown is not kept: no answer at all when fewer than the minimum
    answered, no question answered by fewer (comments: fewer than their own minimum), and no
    side or audience on a question's answers that would single out a small group (`_labels`).
    The rows then say no more than the results do, to anyone who reads the tables."""
    assert run.id is not None
    ballots = session.exec(select(PulseBallot).where(PulseBallot.run_id == run.id).with_for_update()).all()
    opened: list[dict[str, Any]] = []
    for ballot in ballots:
        # One that cannot be opened is counted below; its person stays counted as having answered.
        with contextlib.suppress(Unsealable):
            opened.append(ctx.seal.open(ballot.sealed, context=_box(run)))
    session.execute(delete(PulseBallot).where(col(PulseBallot.run_id) == run.id))
    if len(opened) < len(ballots):
        log.warning(
            "pulse run #%s: %d of %d ballots were sealed under another key (TOUCHLINE_SECRET_KEY "
            "changed while the run was open) and could not be counted",
            run.id,
            len(ballots) - len(opened),
            len(ballots),
        )
    minimum, minimum_comments = _minimums(ctx.org, run)
    rows: list[PulseAnswer] = []
    if len(opened) >= minimum:
        for q in run.questions:
            given = [b for b in opened if q["id"] in b.get("answers", {})]
            if len(given) < (minimum_comments if q["type"] == "text" else minimum):
                continue
            sides, audiences = _labels(
                [(str(b.get("side", "")), str(b.get("audience", ""))) for b in given],
                minimum,
                keep=q["type"] in SCALES,
            )
            for b, side, audience in zip(given, sides, audiences, strict=True):
                value = b["answers"][q["id"]]
                rows.append(
                    PulseAnswer(
                        id=secrets.token_hex(16),
                        run_id=run.id,
                        question=q["id"],
                        side=side,
                        audience=audience,
                        number=int(value) if q["type"] in SCALES else None,
                        choice=value if q["type"] == "choice" else None,
                        text=value if q["type"] == "text" else None,
                    )
                )
    # Rows are inserted in the order added: the shuffled one, whatever order ballots came in.
    secrets.SystemRandom().shuffle(rows)
    session.add_all(rows)
    session.flush()
    return len(opened)


def _labels(pairs: list[tuple[str, str]], minimum: int, *, keep: bool) -> tuple[list[str], list[str]]:
    """Each answer's side and audience as far as they may be kept: both when every (side,
    audience) cell holds at least the minimum (else the two together single out whoever is alone
    in a cell, such as the one seller in a marketing audience), else the sides alone when every
    side is that large, else the audiences alone likewise, else neither."""
    blank = [""] * len(pairs)
    if not keep:
        return blank, blank

    def large(groups: list[object]) -> bool:
        return all(groups.count(g) >= minimum for g in set(groups))

    sides, audiences = [p[0] for p in pairs], [p[1] for p in pairs]
    if large(list(pairs)):
        return sides, audiences
    if large(list(sides)):
        return sides, blank
    if large(list(audiences)):
        return blank, audiences
    return blank, blank


def _minimums(org: Organisation, run: PulseRun) -> tuple[int, int]:
    # The minimum only ever rises: a run keeps the one it opened with unless app.yaml asks for more.
    survey = org.surveys.get(run.survey)
    return (
        max(run.min_group_size, survey.min_group_size if survey else 0),
        max(run.min_group_size_comments, survey.min_group_size_comments if survey else 0),
    )


def _invitation(
    session: Session, ctx: Context, actor: Actor, run_id: str, *, lock_run: bool = False
) -> tuple[PulseRun, PulseInvitation]:
    run = numbered.find(session, PulseRun, run_id)
    if run is not None and lock_run:
        # Shared: answers go in side by side, but not while the run is being closed and mixed.
        run = session.exec(
            select(PulseRun)
            .where(PulseRun.id == run.id)
            .with_for_update(read=True)
            .execution_options(populate_existing=True)
        ).first()
    if run is None:
        raise Refusal("That pulse no longer exists.")
    invitation = session.exec(
        select(PulseInvitation)
        .where(PulseInvitation.run_id == run.id, PulseInvitation.person_id == actor.person_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).first()
    if invitation is None:
        raise Refusal(f"You were not invited to “{run.title}” (run #{run.id}).")
    if invitation.answered:
        raise Refusal(f"You already answered “{run.title}”. Thank you!")
    if run.status != OPEN:
        raise Refusal(f"“{run.title}” closed {_when(run.closed_at or run.closes_at, actor.timezone)}.")
    return run, invitation


# --- reminders and closing -------------------------------------------------------------------------


def remind_due(ctx: Context) -> int:
    """One reminder, only to those who have not answered, once `remind_after` has passed since
    their invitation; returns how many were queued. Running it again sends nothing new."""
    now = ctx.now()
    queued = 0
    with ctx.db.session() as session:
        open_runs = session.exec(select(PulseRun).where(PulseRun.status == OPEN).with_for_update()).all()
        for run in open_runs:
            survey = ctx.org.surveys.get(run.survey)
            if survey is None or survey.remind_after is None:
                continue
            waiting = session.exec(
                select(PulseInvitation).where(
                    PulseInvitation.run_id == run.id,
                    col(PulseInvitation.answered).is_(False),
                    col(PulseInvitation.reminded).is_(False),
                    col(PulseInvitation.due_at) <= now - survey.remind_after,
                )
            ).all()
            for invitation in waiting:
                tz = directory.timezone_of(session, ctx.org, invitation.person_id)
                due = now if survey.allow_night_and_weekends else working_time(now, tz)
                if due >= run.closes_at:
                    invitation.reminded = True  # too late to be of use
                else:
                    card = invitation_card(run, tz)
                    reminder = Card(f"Reminder: {card.title}", card.sections, card.buttons, card.footer)
                    if messages.direct(
                        session,
                        invitation.person_id,
                        reminder,
                        subject=f"pulse:{run.id}",
                        now=now,
                        due_at=due,
                    ):
                        queued += 1
                    invitation.reminded = True
                session.add(invitation)
    return queued


def close_due(ctx: Context) -> int:
    """Close every open run whose time is up and send leaders the results; returns how many."""
    now = ctx.now()
    with ctx.db.session() as session:
        due = session.exec(
            select(PulseRun)
            .where(PulseRun.status == OPEN, col(PulseRun.closes_at) <= now)
            .with_for_update(skip_locked=True)
        ).all()
        for run in due:
            _close(session, ctx, run)
        return len(due)


def close_now(session: Session, ctx: Context, actor: Actor, run_id: str) -> Reply:
    _require_admin(ctx, actor)
    run = _find_run(session, run_id, lock=True)
    if run.status != OPEN:
        raise Refusal(f"Run #{run.id} is already closed.")
    told = _close(session, ctx, run)
    audit.record(
        session, at=ctx.now(), actor_id=actor.person_id, action="pulse.close", subject=f"pulse:{run.id}"
    )
    return Reply(
        text=f"Run #{run.id} of “{run.title}” is closed; {count(told, 'leader')} got the results.",
        card=results_card(session, ctx, run),
    )


def _close(session: Session, ctx: Context, run: PulseRun) -> int:
    run.status, run.closed_at = CLOSED, ctx.now()
    session.add(run)
    session.flush()
    mix(session, ctx, run)
    card = results_card(session, ctx, run)
    leaders = directory.person_ids(session, ctx.org.roles.get("leader", []))
    return messages.send_to_each(session, leaders, card, subject=f"pulse:{run.id}", now=ctx.now())


# --- results -------------------------------------------------------------------------------------


@dataclass
class QuestionResult:
    """One question's answers in a run; `None` where a group is too small to show."""

    id: str
    text: str
    type: str
    answered: int
    distribution: dict[str, int] | None = None
    mean: float | None = None
    change: float | None = None
    by_side: dict[str, float | None] = field(default_factory=dict)
    by_audience: dict[str, float | None] = field(default_factory=dict)
    comments: list[str] | None = None


@dataclass
class RunResult:
    run: PulseRun
    invited: int
    answered: int
    shown: bool
    min_group_size: int
    index: float | None
    trend: list[tuple[str, float | None]]
    questions: list[QuestionResult]

    @property
    def response_rate(self) -> float:
        return self.answered / self.invited if self.invited else 0.0


def results(session: Session, org: Organisation, run: PulseRun) -> RunResult:
    """What a run says, with every group below the minimum size left out."""
    assert run.id is not None
    minimum, minimum_comments = _minimums(org, run)
    invited, answered = _participation(session, run.id)
    if run.status != CLOSED:
        # Results only once a run closes: shown while it is open, two looks either side of one
        # more answer would tell what that answer was (and the invitations, whose it was).
        return RunResult(run, invited, answered, False, minimum, None, [], [])
    answers = session.exec(select(PulseAnswer).where(PulseAnswer.run_id == run.id)).all()
    previous = _previous(session, run)
    before = (
        {q.id: q for q in _question_results(session, previous, [], minimum, minimum_comments)}
        if previous
        else {}
    )
    questions = _question_results(session, run, answers, minimum, minimum_comments)
    for q in questions:
        old = before.get(q.id)
        if q.mean is not None and old is not None and old.mean is not None:
            q.change = q.mean - old.mean
    shown = answered >= minimum
    trend = [
        (r.slot, _index(_question_results(session, r, [], minimum, minimum_comments)))
        for r in _history(session, run)
    ]
    return RunResult(
        run, invited, answered, shown, minimum, _index(questions) if shown else None, trend, questions
    )


def _participation(session: Session, run_id: int) -> tuple[int, int]:
    invited = session.exec(
        select(func.count()).select_from(PulseInvitation).where(PulseInvitation.run_id == run_id)
    ).one()
    answered = session.exec(
        select(func.count())
        .select_from(PulseInvitation)
        .where(PulseInvitation.run_id == run_id, col(PulseInvitation.answered).is_(True))
    ).one()
    return int(invited), int(answered)


def _question_results(
    session: Session, run: PulseRun, answers: Sequence[PulseAnswer], minimum: int, minimum_comments: int
) -> list[QuestionResult]:
    if not answers:
        answers = session.exec(select(PulseAnswer).where(PulseAnswer.run_id == run.id)).all()
    found = []
    for q in run.questions:
        mine = [a for a in answers if a.question == q["id"]]
        result = QuestionResult(q["id"], q["text"], q["type"], len(mine))
        if q["type"] in SCALES and len(mine) >= minimum:
            numbers = [a.number for a in mine if a.number is not None]
            low, high = SCALES[q["type"]]
            result.distribution = {str(v): numbers.count(v) for v in range(low, high + 1)}
            result.mean = statistics.fmean(numbers) if numbers else None
            sides = breakdown({a.side: [] for a in mine}, mine, lambda a: a.side, minimum)
            result.by_side = {side: sides.get(side) for side in ("sales", "marketing")}
            audiences = breakdown({a.audience: [] for a in mine}, mine, lambda a: a.audience, minimum)
            result.by_audience = {k: v for k, v in sorted(audiences.items()) if k}
        elif q["type"] == "choice" and len(mine) >= minimum:
            result.distribution = {c: sum(1 for a in mine if a.choice == c) for c in q.get("choices", [])}
        elif q["type"] == "text" and len(mine) >= minimum_comments:
            # Sorted, so that the order says nothing about who wrote what, or when.
            result.comments = sorted(a.text for a in mine if a.text)
        found.append(result)
    return found


def breakdown(
    groups: dict[str, list[int]],
    answers: Sequence[PulseAnswer],
    group_of: Callable[[PulseAnswer], str],
    minimum: int,
) -> dict[str, float | None]:
    """Each group's mean, or no mean for any group when one of them is smaller than the minimum:
    beside the total, a small group's answers would follow from the others' by subtraction."""
    for a in answers:
        if a.number is not None:
            groups.setdefault(group_of(a), []).append(a.number)
    if any(len(values) < minimum for values in groups.values()):
        return dict.fromkeys(groups)
    return {group: statistics.fmean(values) for group, values in groups.items()}


def _index(questions: Sequence[QuestionResult]) -> float | None:
    """The alignment index: the mean of the scored questions, each put on 0-100."""
    scores = []
    for q in questions:
        if q.mean is not None and q.type in SCALES:
            low, high = SCALES[q.type]
            scores.append((q.mean - low) / (high - low) * 100)
    return statistics.fmean(scores) if scores else None


def _previous(session: Session, run: PulseRun) -> PulseRun | None:
    earlier = _history(session, run)
    return earlier[-1] if earlier else None


def _history(session: Session, run: PulseRun) -> list[PulseRun]:
    """The survey's closed runs before this one, oldest first (at most the last few)."""
    earlier = session.exec(
        select(PulseRun)
        .where(
            PulseRun.survey == run.survey, PulseRun.status == CLOSED, col(PulseRun.opened_at) < run.opened_at
        )
        .order_by(col(PulseRun.opened_at).desc())
        .limit(TREND_RUNS)
    ).all()
    return list(reversed(earlier))


def results_card(session: Session, ctx: Context, run: PulseRun) -> Card:
    result = results(session, ctx.org, run)
    state = "closed" if run.status == CLOSED else "open"
    head = [
        Fact("Response", f"{result.answered} of {result.invited} ({result.response_rate:.0%})"),
    ]
    if not result.shown:
        why = (
            f"Results show when the run closes ({_when(run.closes_at, ctx.org.organisation.timezone)}): "
            "the answers stay sealed until then and are mixed all at once, so that nobody can tell "
            "one person's answers from the results before and after them."
            if run.status != CLOSED
            else f"Not enough answers to show results: {result.answered}, and at least "
            f"{result.min_group_size} keep everyone anonymous; none of the answers were kept."
        )
        return Card(
            title=f"📊 {run.title} — run #{run.id} ({state})",
            sections=(Section(facts=tuple(head)), Section(text=why)),
            footer=f"Pulse run #{run.id}",
        )
    index = f"{result.index:.0f} / 100" if result.index is not None else "no scored questions"
    trend = [f"{v:.0f}" for _, v in result.trend if v is not None]
    if trend and result.index is not None:
        index += f" (earlier runs: {' → '.join(trend)})"
    head.append(Fact("Alignment index", index))
    sections = [Section(facts=tuple(head))]
    for q in result.questions:
        sections.append(
            Section(heading=q.text, text=_describe(q, result.min_group_size, _minimums(ctx.org, run)[1]))
        )
    return Card(
        title=f"📊 {run.title} — run #{run.id} ({state})",
        sections=tuple(sections),
        footer=f"Pulse run #{run.id} · groups under {result.min_group_size} people are not shown",
    )


def _describe(q: QuestionResult, minimum: int, minimum_comments: int) -> str:
    if q.type == "text":
        if q.comments is None:
            return f"Fewer than {minimum_comments} comments: not shown."
        return "\n".join(f"“{clip(c, 300)}”" for c in q.comments) or "no comments"
    if q.distribution is None:
        return f"Fewer than {minimum} answers: not shown."
    spread = " · ".join(f"{k}: {v}" for k, v in q.distribution.items())
    if q.mean is None:
        return spread
    line = f"mean {q.mean:.1f} of {SCALES[q.type][1]}"
    if q.change is not None:
        line += f" ({'▲' if q.change >= 0 else '▼'}{abs(q.change):.1f} since the last run)"
    sales, marketing = q.by_side.get("sales"), q.by_side.get("marketing")
    if sales is not None and marketing is not None:
        line += f" · sales {sales:.1f} vs marketing {marketing:.1f} (gap {abs(sales - marketing):.1f})"
    else:
        line += " · sales vs marketing: a side has too few answers to compare"
    audiences = " · ".join(
        f"{name} {mean:.1f}" if mean is not None else f"{name}: too few"
        for name, mean in q.by_audience.items()
    )
    return f"{line}\n{spread}" + (f"\nby audience: {audiences}" if len(q.by_audience) > 1 else "")


def export_rows(session: Session, org: Organisation) -> list[dict[str, Any]]:
    """Every run's results as rows for a spreadsheet, under the same group-size rule as on screen:
    a group too small to show is a row that says so, with no numbers."""
    found: list[dict[str, Any]] = []
    for run in session.exec(select(PulseRun).order_by(col(PulseRun.opened_at))).all():
        result = results(session, org, run)
        if run.status != CLOSED:
            found.append(
                {
                    "run": run.id,
                    "survey": run.survey,
                    "slot": run.slot,
                    "status": run.status,
                    "group": "all",
                    "note": f"open until {run.closes_at:%Y-%m-%d}: results when it closes",
                }
            )
        for q in result.questions:
            if q.type == "text":
                note = (
                    f"{count(len(q.comments), 'comment')} (read them in /pulse results)"
                    if q.comments is not None
                    else f"fewer than {run.min_group_size_comments} comments: not shown"
                )
                found.append(
                    {
                        "run": run.id,
                        "survey": run.survey,
                        "slot": run.slot,
                        "status": run.status,
                        "question": q.id,
                        "group": "all",
                        "note": note,
                    }
                )
                continue
            groups: list[tuple[str, Any]] = [("all", q.mean)]
            groups += [(f"side:{k}", v) for k, v in q.by_side.items()]
            groups += [(f"audience:{k}", v) for k, v in q.by_audience.items()]
            for group, mean in groups:
                shown = q.distribution is not None and (group == "all" or mean is not None)
                found.append(
                    {
                        "run": run.id,
                        "survey": run.survey,
                        "slot": run.slot,
                        "status": run.status,
                        "question": q.id,
                        "group": group,
                        "response_rate": f"{result.response_rate:.2f}" if group == "all" else "",
                        "mean": f"{mean:.2f}" if shown and mean is not None else "",
                        "distribution": " ".join(f"{k}:{v}" for k, v in (q.distribution or {}).items())
                        if shown and group == "all"
                        else "",
                        "note": "" if shown else f"fewer than {result.min_group_size} answers: not shown",
                    }
                )
    return found


# --- the /pulse command --------------------------------------------------------------------------


def on_command(session: Session, ctx: Context, actor: Actor, text: str) -> Reply:
    verb, _, rest = text.strip().partition(" ")
    verb, rest = verb.lower(), rest.strip()
    if verb in ("", "list"):
        _require_admin(ctx, actor)
        return overview(session, ctx)
    if verb == "run":
        return run_now(session, ctx, actor, rest)
    if verb == "close":
        return close_now(session, ctx, actor, rest)
    if verb == "results":
        if not actor.has("admin", "leader"):
            raise Refusal("Only admins and leaders see pulse results.")
        run = _find_run(session, rest) if rest else _latest(session)
        return Reply(card=results_card(session, ctx, run))
    if verb == "help":
        return Reply(text=USAGE)
    return Reply(text=f"I don't know /pulse {verb[:40]}. Try:\n{USAGE}")


def overview(session: Session, ctx: Context) -> Reply:
    sections = []
    for key, survey in ctx.org.surveys.items():
        runs = session.exec(
            select(PulseRun).where(PulseRun.survey == key).order_by(col(PulseRun.opened_at).desc()).limit(3)
        ).all()
        open_for = format_duration(survey.open_for)
        lines = [f"schedule “{survey.schedule}” in each person's time zone, open {open_for}"]
        for run in runs:
            assert run.id is not None
            invited, answered = _participation(session, run.id)
            lines.append(f"run #{run.id} ({run.status}): {answered} of {invited} answered")
        sections.append(Section(heading=f"{key}: {survey.title}", text="\n".join(lines)))
    if not sections:
        return Reply(text="No surveys in app.yaml yet (surveys:).")
    return Reply(card=Card(title="Pulse surveys", sections=tuple(sections), footer=USAGE.splitlines()[1]))


def _latest(session: Session) -> PulseRun:
    run = session.exec(select(PulseRun).order_by(col(PulseRun.opened_at).desc())).first()
    if run is None:
        raise Refusal("No pulse has run yet. /pulse run <survey> sends one now.")
    return run


def _find_run(session: Session, text: str, *, lock: bool = False) -> PulseRun:
    if numbered.number_in(text) is None:
        raise Refusal(f"Which run? Give its number.\n{USAGE}")
    run = numbered.find(session, PulseRun, text, lock=lock)
    if run is None:
        raise Refusal(f"There is no pulse run #{numbered.number_in(text)}.")
    return run


def _require_admin(ctx: Context, actor: Actor) -> None:
    if not actor.has("admin"):
        admins = ", ".join(directory.holders_of(ctx.org, "admin")) or "nobody yet"
        raise Refusal(f"Only admins run pulse surveys. Admins here: {admins}.")


def _when(moment: datetime, timezone: str) -> str:
    return moment.astimezone(ZoneInfo(timezone)).strftime("%a %d %b %H:%M (%Z)")
