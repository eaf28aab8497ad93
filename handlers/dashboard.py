"""The dashboard's figures: acknowledgements, asset feedback, objection themes and pulse alignment."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from handlers import digest, directory, pulse
from handlers.organisation import Organisation
from handlers.signin import Viewer
from handlers.text import clip
from storage.models import (
    Acknowledgement,
    Asset,
    AssetAudience,
    AssetFeedback,
    Audience,
    AudienceMember,
    Decision,
    DecisionAudience,
    Objection,
    PulseAnswer,
    PulseRun,
    Question,
    Theme,
)

DECISIONS = 10  # the latest active decisions
CURVE_DAYS = 30  # an acknowledgement curve covers at most the last 30 days
WEEKS = 8  # the objection trend
THEMES = 8
RUNS = 8  # the alignment index over the last runs
WEEK = timedelta(days=7)


@dataclass
class Table:
    """One table of the dashboard: shown on the page, charted, and downloadable as CSV."""

    name: str  # the CSV's file name, without .csv
    title: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    note: str = ""


@dataclass
class Section:
    key: str
    title: str
    tables: list[Table]
    facts: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Dashboard:
    sections: list[Section]
    audiences: list[tuple[str, str]]  # (key, label): the pulse filter's choices
    audience: str | None  # the filter in force
    as_of: datetime

    def table(self, name: str) -> Table | None:
        return next((t for s in self.sections for t in s.tables if t.name == name), None)


def build(
    session: Session,
    org: Organisation,
    viewer: Viewer,
    *,
    now: datetime,
    audience: str | None,
    only: str | None = None,
) -> Dashboard:
    """What `viewer` may see: everyone sees the decisions; a rep their own objections; marketers,
    leaders and admins the assets, the themes and the pulse too. `only` names the one section
    to build (a CSV download needs no more)."""
    audiences = [
        (a.key, a.label or a.key) for a in session.exec(select(Audience).order_by(col(Audience.key)))
    ]
    if audience is not None and audience not in {key for key, _ in audiences}:
        audience = None
    wanted: dict[str, Callable[[], Section]] = {"decisions": lambda: decisions(session, viewer, now=now)}
    if viewer.sees_everything:
        wanted["assets"] = lambda: assets(session)
        wanted["objections"] = lambda: objection_themes(session, org, now=now)
        wanted["pulse"] = lambda: alignment(session, org, audience)
    else:
        wanted["objections"] = lambda: own_objections(session, viewer.person_id)
    sections = [make() for key, make in wanted.items() if only in (None, key)]
    return Dashboard(sections, audiences, audience, now)


# --- decisions -----------------------------------------------------------------------------------


def decisions(session: Session, viewer: Viewer, *, now: datetime) -> Section:
    """Acknowledgement rates for everyone; the open questions' and concerns' words only for
    leaders and each decision's author (the rest see how many there are)."""
    latest = session.exec(
        select(Decision).where(Decision.status == "active").order_by(col(Decision.id).desc()).limit(DECISIONS)
    ).all()
    rates = Table(
        "decisions",
        "Acknowledgement by decision and audience",
        ["decision_id", "decision", "audience", "acknowledged", "members", "rate"],
    )
    curve = Table(
        "acknowledgements-over-time",
        "Acknowledgement rate over time",
        ["decision_id", "decision", "audience", "day", "acknowledged", "members", "rate"],
    )
    reads = viewer.has("leader")
    questions = Table(
        "open-questions",
        "Open questions and concerns",
        ["decision_id", "decision", "kind", "asked_on", "text"],
        note="" if reads else "Their words are for each decision's author and the leaders.",
    )
    for decision in latest:
        assert decision.id is not None
        members = directory.members_of(session, decision.id)
        acks = session.exec(select(Acknowledgement).where(Acknowledgement.decision_id == decision.id)).all()
        acked = {a.person_id for a in acks}
        rates.rows.append(
            [decision.id, decision.title, "all", len(acked), len(members), _rate(len(acked), len(members))]
        )
        groups = [("all", members), *_decision_audiences(session, decision.id)]
        for label, audience_members in groups[1:]:
            n = len(acked & audience_members)
            rates.rows.append(
                [
                    decision.id,
                    decision.title,
                    label,
                    n,
                    len(audience_members),
                    _rate(n, len(audience_members)),
                ]
            )
        first = max(decision.created_at.date(), now.date() - timedelta(days=CURVE_DAYS - 1))
        for label, group in groups:
            for offset in range((now.date() - first).days + 1):
                day = first + timedelta(days=offset)
                n = sum(1 for a in acks if a.at.date() <= day and a.person_id in group)
                curve.rows.append(
                    [decision.id, decision.title, label, day.isoformat(), n, len(group), _rate(n, len(group))]
                )
        for q in session.exec(
            select(Question)
            .where(Question.decision_id == decision.id, col(Question.answer).is_(None))
            .order_by(col(Question.asked_at))
        ):
            words = clip(q.text, 300) if reads or decision.author_id == viewer.person_id else ""
            questions.rows.append([decision.id, decision.title, q.kind, q.asked_at.date().isoformat(), words])
    total_members = sum(r[4] for r in rates.rows if r[2] == "all")
    total_acked = sum(r[3] for r in rates.rows if r[2] == "all")
    facts = [
        ("Active decisions", str(len(latest))),
        ("Acknowledged", f"{_percent(_rate(total_acked, total_members))} of those they reached"),
        ("Open questions and concerns", str(len(questions.rows))),
    ]
    return Section("decisions", "Decisions", [rates, curve, questions], facts)


def _decision_audiences(session: Session, decision_id: int) -> list[tuple[str, set[int]]]:
    found = []
    for audience in session.exec(
        select(Audience)
        .join(DecisionAudience, col(DecisionAudience.audience_id) == col(Audience.id))
        .where(DecisionAudience.decision_id == decision_id)
        .order_by(col(Audience.key))
    ):
        members = set(
            session.exec(
                select(AudienceMember.person_id).where(AudienceMember.audience_id == audience.id)
            ).all()
        )
        found.append((audience.label or audience.key, members))
    return found


# --- assets --------------------------------------------------------------------------------------


def assets(session: Session) -> Section:
    feedback = Table(
        "assets",
        "Feedback per asset",
        ["asset_id", "asset", "status", "useful", "used_with_customer", "doesnt_fit", "reached", "adoption"],
        note="Adoption: the share of the people an asset reached who used it with a customer.",
    )
    reasons = Table(
        "doesnt-fit", "“Doesn't fit the field”: the reasons", ["asset_id", "asset", "day", "reason"]
    )
    counts: dict[tuple[int, str], int] = {
        (asset_id, kind): int(n)
        for asset_id, kind, n in session.exec(
            select(AssetFeedback.asset_id, AssetFeedback.kind, func.count()).group_by(
                col(AssetFeedback.asset_id), col(AssetFeedback.kind)
            )
        )
    }
    for asset in session.exec(select(Asset).order_by(col(Asset.id).desc()).limit(50)):
        assert asset.id is not None
        reached = int(
            session.exec(
                select(func.count(func.distinct(AudienceMember.person_id)))
                .join(AssetAudience, col(AssetAudience.audience_id) == col(AudienceMember.audience_id))
                .where(AssetAudience.asset_id == asset.id)
            ).one()
        )
        used = counts.get((asset.id, "used"), 0)
        feedback.rows.append(
            [
                asset.id,
                asset.title,
                asset.status,
                counts.get((asset.id, "useful"), 0),
                used,
                counts.get((asset.id, "doesnt-fit"), 0),
                reached,
                _rate(used, reached),
            ]
        )
    for asset_id, title, at, reason in session.exec(
        select(Asset.id, Asset.title, AssetFeedback.at, AssetFeedback.reason)
        .join(AssetFeedback, col(AssetFeedback.asset_id) == col(Asset.id))
        .where(AssetFeedback.kind == "doesnt-fit")
        .order_by(col(AssetFeedback.at).desc())
        .limit(100)
    ):
        reasons.rows.append(
            [asset_id, title, at.date().isoformat(), clip(reason or "(no reason given)", 300)]
        )
    facts = [
        ("Assets", str(len(feedback.rows))),
        ("Marked useful", str(sum(r[3] for r in feedback.rows))),
        ("Used with a customer", str(sum(r[4] for r in feedback.rows))),
        ("Doesn't fit the field", str(sum(r[5] for r in feedback.rows))),
    ]
    return Section("assets", "Assets", [feedback, reasons], facts)


# --- objections ----------------------------------------------------------------------------------


def objection_themes(session: Session, org: Organisation, *, now: datetime) -> Section:
    """Themes by week (oldest first), new and rising themes, and the themes no asset answers.
    Counts only: no objection's text, so confidential ones stay confidential."""
    weeks = [now - (WEEKS - i) * WEEK for i in range(WEEKS)]
    per_week = [digest.theme_counts(session, start, start + WEEK) for start in weeks]
    totals: dict[int, int] = {}
    for counts in per_week:
        for theme_id, n in counts.items():
            totals[theme_id] = totals.get(theme_id, 0) + n
    top = sorted(totals, key=lambda t: -totals[t])[:THEMES]
    names = dict(session.exec(select(Theme.id, Theme.name).where(col(Theme.id).in_(top))).all())
    labels = [(start + WEEK).date().isoformat() for start in weeks]
    trend = Table(
        "themes",
        "Objections per theme and week",
        ["theme", *[f"week to {label}" for label in labels]],
        note="Each column counts the objections of the 7 days up to its date.",
    )
    for theme_id in sorted(top, key=lambda t: (-totals[t], names.get(t, ""))):
        trend.rows.append([names.get(theme_id, f"theme {theme_id}"), *[c.get(theme_id, 0) for c in per_week]])
    week = digest.build(session, org, end=now, start=now - WEEK)
    signals = Table(
        "theme-signals", "New, rising, and unanswered themes", ["theme", "signal", "this_week", "detail"]
    )
    for t in week.new_themes:
        signals.rows.append([t.name, "new", t.objections, "first heard this week"])
    for t in week.rising:
        signals.rows.append([t.name, "rising", t.objections, f"{t.previous} the week before"])
    for gap in week.unanswered:
        signals.rows.append([gap.theme, "no asset answers it", gap.objections, ""])
    for gap in week.growing_after_asset:
        signals.rows.append([gap.theme, "growing despite an asset", gap.objections, f"asset: {gap.asset}"])
    facts = [
        ("Objections this week", str(week.objections)),
        ("Reps who logged them", str(week.reps)),
        ("The week before", str(week.previous_objections)),
    ]
    return Section("objections", "Objections", [trend, signals], facts)


def own_objections(session: Session, person_id: int) -> Section:
    mine = Table("my-objections", "What you logged", ["id", "day", "theme", "text"])
    names = dict(session.exec(select(Theme.id, Theme.name)).all())
    for o in session.exec(
        select(Objection)
        .where(Objection.reporter_id == person_id)
        .order_by(col(Objection.id).desc())
        .limit(100)
    ):
        mine.rows.append(
            [o.id, o.created_at.date().isoformat(), names.get(o.theme_id, ""), clip(o.text, 300)]
        )
    return Section("objections", "Your objections", [mine], [("Logged", str(len(mine.rows)))])


# --- pulse ---------------------------------------------------------------------------------------


def alignment(session: Session, org: Organisation, audience: str | None) -> Section:
    """The alignment index over the last runs and the latest run's questions, for everyone or for one
    audience; any group below the survey's minimum size is left out whatever the filter."""
    index = Table(
        "alignment", "Alignment index over time (0–100)", ["survey", "run", "slot", "answers", "index"]
    )
    questions = Table(
        "pulse-questions",
        "The latest closed run, question by question",
        ["survey", "run", "question", "answers", "mean", "sales", "marketing", "distribution"],
    )
    minimums = []
    for key, survey in org.surveys.items():
        runs = list(
            reversed(
                session.exec(
                    # Closed runs only: an open run's answers are still sealed.
                    select(PulseRun)
                    .where(PulseRun.survey == key, PulseRun.status == pulse.CLOSED)
                    .order_by(col(PulseRun.opened_at).desc())
                    .limit(RUNS)
                ).all()
            )
        )
        for run in runs:
            assert run.id is not None
            minimum = max(run.min_group_size, survey.min_group_size)
            minimums.append(minimum)
            answers = session.exec(select(PulseAnswer).where(PulseAnswer.run_id == run.id)).all()
            results = [
                _question(q, answers, audience, minimum) for q in run.questions if q["type"] in pulse.SCALES
            ]
            visible = [r for r in results if r.mean is not None]
            answered: int | str = max(r.answers for r in visible) if visible else _hidden(results, minimum)
            index.rows.append([run.title, run.id, run.slot, answered, _index(run, results)])
            if run is runs[-1]:
                for r in results:
                    questions.rows.append(
                        [
                            run.title,
                            run.id,
                            r.text,
                            r.answers if r.mean is not None else _hidden([r], minimum),
                            r.mean,
                            r.sales,
                            r.marketing,
                            ""
                            if r.distribution is None
                            else " ".join(f"{k}:{v}" for k, v in r.distribution.items()),
                        ]
                    )
    smallest = max(minimums, default=0)
    note = (
        f"Groups of fewer than {smallest} people are not shown (“fewer than {smallest}”), whatever the "
        "filter; sales versus marketing, and a filtered audience, show only when the other side is "
        "that large too."
        if smallest
        else ""
    )
    index.note = questions.note = note
    label = dict((a.key, a.label or a.key) for a in session.exec(select(Audience))).get(
        audience or "", "Everyone"
    )
    facts = [("Audience", label)]
    return Section("pulse", "Pulse", [index, questions], facts)


@dataclass
class _Result:
    text: str
    answers: int
    mean: float | None = None
    sales: float | None = None
    marketing: float | None = None
    distribution: dict[str, int] | None = None
    rest: int = 0  # answers outside the filter


def _question(
    q: dict[str, Any], answers: Sequence[PulseAnswer], audience: str | None, minimum: int
) -> _Result:
    """One question's answers from `audience` (None: everyone), shown only when the group and the
    rest of the run (whose figures the unfiltered page shows) each hold at least `minimum` answers."""
    everyone = [a for a in answers if a.question == q["id"] and a.number is not None]
    group = [a for a in everyone if audience is None or a.audience == audience]
    result = _Result(q["text"], len(group), rest=len(everyone) - len(group))
    if len(group) < minimum or 0 < result.rest < minimum:
        return result
    low, high = pulse.SCALES[q["type"]]
    values = [a.number for a in group if a.number is not None]
    result.mean = round(statistics.fmean(values), 2)
    result.distribution = {str(v): values.count(v) for v in range(low, high + 1)}
    sides = pulse.breakdown({}, group, lambda a: a.side, minimum)
    # Beside the unfiltered page's sides, a side outside the filter follows by subtraction: it
    # must be empty or large enough too.
    inside = {a.id for a in group}
    outside = [a.side for a in everyone if a.id not in inside]
    if any(0 < outside.count(side) < minimum for side in set(outside)):
        sides = {}
    result.sales, result.marketing = (
        None if sides.get(side) is None else round(sides[side] or 0, 2) for side in ("sales", "marketing")
    )
    return result


def _index(run: PulseRun, results: Sequence[_Result]) -> float | None:
    scores = []
    for q, r in zip((q for q in run.questions if q["type"] in pulse.SCALES), results, strict=True):
        if r.mean is not None:
            low, high = pulse.SCALES[q["type"]]
            scores.append((r.mean - low) / (high - low) * 100)
    return round(statistics.fmean(scores), 1) if scores else None


def _hidden(results: Sequence[_Result], minimum: int) -> str:
    """Why a group is not shown, without its exact size: a small count would tell people apart."""
    if any(r.answers >= minimum for r in results):
        return f"not shown: the rest would be fewer than {minimum}"
    return f"fewer than {minimum}"


def _rate(n: int, of: int) -> float | None:
    return round(n / of, 3) if of else None


def _percent(rate: float | None) -> str:
    return "—" if rate is None else f"{rate:.0%}"
