"""The weekly objection digest: what the field heard, by theme, with trends, gaps, asset
feedback and the state of the strategy, in a five-minute read.

Everything is counted by the database (GROUP BY over indexed columns), so the digest costs
about the same however many objections the period holds; quotes never come from a
confidential objection, and never carry a name unless `digest.quote_names` is on.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from handlers import directory, messages
from handlers.context import Actor, Context, Refusal
from handlers.organisation import Organisation
from handlers.text import clip, count
from handlers.ui import Card, Image, Reply, Section
from storage.models import (
    Asset,
    AssetFeedback,
    Decision,
    DigestIssue,
    Objection,
    Question,
    Theme,
)

TREND_PERIODS = 8
# About twenty items in all, so that it stays a five-minute read.
THEMES_SHOWN = 6
QUOTES = 2
NEW, RISING, GAPS, USEFUL, REASONS, DECISIONS = 2, 2, 3, 2, 3, 3
WEEK = timedelta(days=7)


@dataclass
class ThemeLine:
    id: int
    name: str
    objections: int
    reps: int
    previous: int
    trend: list[int]  # objections per period, oldest first, this period last
    segments: list[tuple[str, int]] = field(default_factory=list)
    competitors: list[tuple[str, int]] = field(default_factory=list)
    quotes: list[str] = field(default_factory=list)
    new: bool = False


@dataclass
class Gap:
    theme_id: int
    theme: str
    objections: int
    asset_id: int | None = None
    asset: str | None = None
    previous: int | None = None


@dataclass
class AssetLine:
    id: int
    title: str
    useful: int = 0
    reason: str | None = None


@dataclass
class DecisionLine:
    id: int
    title: str
    acknowledged: int
    members: int
    # A count: the questions' words are for the decision's author and leaders (SECURITY.md).
    open_questions: int


@dataclass
class Digest:
    start: datetime
    end: datetime
    objections: int
    reps: int
    previous_objections: int
    themes: list[ThemeLine]
    new_themes: list[ThemeLine]
    rising: list[ThemeLine]
    unanswered: list[Gap]  # themes that no published asset answers
    growing_after_asset: list[Gap]
    useful_assets: list[AssetLine]
    doesnt_fit: list[AssetLine]
    doesnt_fit_more: int  # reasons of the period beyond those shown; /asset show has them all
    decisions: list[DecisionLine]

    @property
    def empty(self) -> bool:
        """Nothing happened in the period: no objection, no feedback."""
        return not (self.objections or self.useful_assets or self.doesnt_fit)

    @property
    def change(self) -> float | None:
        """Objections this period against the previous one, as a fraction (+0.25 = a quarter more)."""
        if not self.previous_objections:
            return None
        return (self.objections - self.previous_objections) / self.previous_objections


def build(session: Session, org: Organisation, *, end: datetime, start: datetime | None = None) -> Digest:
    """The digest of [start, end), by default the `digest.period` (7 days) before `end`."""
    period = org.digest.period if org.digest else WEEK
    start = start or end - period
    length = end - start
    previous_start = start - length
    in_period = (col(Objection.created_at) >= start, col(Objection.created_at) < end)

    # Each pass over the period's rows costs the same as the next: the totals come from the
    # per-theme counts where they can, and the two latest trend points are those counts too.
    reps = session.exec(select(func.count(func.distinct(Objection.reporter_id))).where(*in_period)).one()
    by_theme = {
        theme_id: (n, r)
        for theme_id, n, r in session.exec(
            select(Objection.theme_id, func.count(), func.count(func.distinct(Objection.reporter_id)))
            .where(*in_period)
            .group_by(col(Objection.theme_id))
        )
    }
    before = theme_counts(session, previous_start, start)
    total, previous_total = sum(n for n, _ in by_theme.values()), sum(before.values())
    names = {t.id: t for t in session.exec(select(Theme).where(col(Theme.id).in_(list(by_theme))))}

    heard_before = _heard_before(session, list(by_theme), start)

    def line(theme_id: int) -> ThemeLine:
        n, r = by_theme[theme_id]
        return ThemeLine(
            id=theme_id,
            name=names[theme_id].name,
            objections=n,
            reps=r,
            previous=before.get(theme_id, 0),
            trend=[],
            new=theme_id not in heard_before,
        )

    ranked = sorted(by_theme, key=lambda t: (-by_theme[t][0], names[t].name))
    shown = [line(t) for t in ranked[:THEMES_SHOWN]]
    trends = _trends(session, [t.id for t in shown], start - length, length, periods=TREND_PERIODS - 2)
    for theme in shown:
        theme.trend = [*trends.get(theme.id, []), theme.previous, theme.objections]
    _details(session, shown, start, end, quote_names=bool(org.digest and org.digest.quote_names))

    everyone = [line(t) for t in ranked]
    new_themes = [t for t in everyone if t.new][:NEW]
    rising = sorted(
        (t for t in everyone if t.objections >= 3 and t.objections > t.previous and not t.new),
        key=lambda t: (-(t.objections - t.previous) / max(t.previous, 1), t.name),
    )[:RISING]
    unanswered, growing = _gaps(session, everyone, start, length)
    useful, reasons, more = _asset_feedback(session, start, end)
    return Digest(
        start=start,
        end=end,
        objections=int(total),
        reps=int(reps),
        previous_objections=int(previous_total),
        themes=shown,
        new_themes=new_themes,
        rising=rising,
        unanswered=unanswered,
        growing_after_asset=growing,
        useful_assets=useful,
        doesnt_fit=reasons,
        doesnt_fit_more=more,
        decisions=_decisions(session),
    )


def theme_counts(
    session: Session, start: datetime, end: datetime, theme_ids: Sequence[int] | None = None
) -> dict[int, int]:
    query = (
        select(Objection.theme_id, func.count())
        .where(col(Objection.created_at) >= start, col(Objection.created_at) < end)
        .group_by(col(Objection.theme_id))
    )
    if theme_ids is not None:
        query = query.where(col(Objection.theme_id).in_(theme_ids))
    return {theme_id: int(n) for theme_id, n in session.exec(query)}


def _heard_before(session: Session, theme_ids: list[int], start: datetime) -> set[int]:
    """The themes with an objection before `start`: one index lookup each, however long the history."""
    return {
        theme_id
        for theme_id in theme_ids
        if session.exec(
            select(Objection.id)
            .where(Objection.theme_id == theme_id, col(Objection.created_at) < start)
            .limit(1)
        ).first()
        is not None
    }


def _trends(
    session: Session, theme_ids: list[int], end: datetime, length: timedelta, *, periods: int
) -> dict[int, list[int]]:
    """Objections per period over the `periods` periods before `end`, oldest first, for these
    themes: one indexed count per period, so that years of history behind them cost nothing."""
    trends: dict[int, list[int]] = {t: [] for t in theme_ids}
    if not theme_ids:
        return trends
    for back in range(periods - 1, -1, -1):
        counts = theme_counts(session, end - (back + 1) * length, end - back * length, theme_ids)
        for theme_id in theme_ids:
            trends[theme_id].append(counts.get(theme_id, 0))
    return trends


def _details(
    session: Session, shown: list[ThemeLine], start: datetime, end: datetime, *, quote_names: bool
) -> None:
    """Fill in each shown theme's most involved segments and competitors, and its quotes: the
    first words of its most widely heard groups, never from a confidential objection.

    A few small queries per theme, each grouped and cut to its top rows by the database over
    the (theme, time) index: only a handful of rows ever reach Python, however busy the week."""
    quoted: dict[int, ThemeLine] = {}
    for theme in shown:
        where = (
            Objection.theme_id == theme.id,
            col(Objection.created_at) >= start,
            col(Objection.created_at) < end,
        )
        for column, attribute in ((Objection.segment, "segments"), (Objection.competitor, "competitors")):
            top = session.exec(
                select(column, func.count())
                .where(*where, col(column).is_not(None))
                .group_by(col(column))
                .order_by(func.count().desc(), col(column))
                .limit(2)
            ).all()
            setattr(theme, attribute, [(str(value), int(n)) for value, n in top])
        voices = func.count(func.distinct(Objection.reporter_id))
        first = func.min(Objection.id)
        for _group, _voices, objection_id in session.exec(
            select(Objection.group_id, voices, first)
            .where(*where, col(Objection.confidential).is_(False))
            .group_by(col(Objection.group_id))
            .order_by(voices.desc(), first)
            .limit(QUOTES)
        ):
            quoted[int(objection_id or 0)] = theme
    if not quoted:
        return
    for objection in session.exec(
        select(Objection).where(col(Objection.id).in_(list(quoted))).order_by(col(Objection.id))
    ):
        quote = f"“{clip(objection.text, 160)}”"
        if quote_names and objection.reporter_id is not None:
            quote += f" — {directory.name_of(session, objection.reporter_id)}"
        quoted[objection.id or 0].quotes.append(quote)


def _gaps(
    session: Session, themes: list[ThemeLine], start: datetime, length: timedelta
) -> tuple[list[Gap], list[Gap]]:
    """Themes that no published asset answers, and themes still growing after one was published."""
    published = session.exec(select(Asset).where(Asset.status == "published")).all()
    answered_by: dict[int, Asset] = {}
    for asset in sorted(published, key=lambda a: a.published_at or a.created_at):
        for theme_id in asset.themes:
            answered_by[theme_id] = asset  # the latest asset for the theme
    unanswered = [Gap(t.id, t.name, t.objections) for t in themes if t.id not in answered_by][:GAPS]
    growing = []
    for t in themes:
        answer = answered_by.get(t.id)
        if answer is None or answer.published_at is None or answer.published_at >= start - length:
            continue  # no asset, or too recent to judge
        if t.objections > t.previous:
            growing.append(Gap(t.id, t.name, t.objections, answer.id, answer.title, t.previous))
    # Both kinds of gap share the room: growth despite an asset is the rarer, louder signal.
    growing = growing[:GAPS]
    return unanswered[: GAPS - len(growing)], growing


def _asset_feedback(
    session: Session, start: datetime, end: datetime
) -> tuple[list[AssetLine], list[AssetLine], int]:
    in_period = (col(AssetFeedback.at) >= start, col(AssetFeedback.at) < end)
    useful = session.exec(
        select(Asset.id, Asset.title, func.count())
        .join(AssetFeedback, col(AssetFeedback.asset_id) == col(Asset.id))
        .where(*in_period, AssetFeedback.kind == "useful")
        .group_by(col(Asset.id), col(Asset.title))
        .order_by(func.count().desc(), col(Asset.id))
        .limit(USEFUL)
    ).all()
    reasons = session.exec(
        select(Asset.id, Asset.title, AssetFeedback.reason)
        .join(AssetFeedback, col(AssetFeedback.asset_id) == col(Asset.id))
        .where(*in_period, AssetFeedback.kind == "doesnt-fit")
        .order_by(col(AssetFeedback.at))
        .limit(REASONS)
    ).all()
    all_reasons = session.exec(
        select(func.count()).select_from(AssetFeedback).where(*in_period, AssetFeedback.kind == "doesnt-fit")
    ).one()
    return (
        [AssetLine(int(i), t, useful=int(n)) for i, t, n in useful if i is not None],
        [AssetLine(int(i), t, reason=r or "(a 👎, no reason given)") for i, t, r in reasons if i is not None],
        int(all_reasons) - len(reasons),
    )


def _decisions(session: Session) -> list[DecisionLine]:
    from handlers.strategy import acknowledgement_count  # strategy's own measure of it

    decisions = session.exec(
        select(Decision).where(Decision.status == "active").order_by(col(Decision.id).desc()).limit(DECISIONS)
    ).all()
    found = []
    for decision in decisions:
        assert decision.id is not None
        acknowledged, members = acknowledgement_count(session, decision.id)
        questions = session.exec(
            select(func.count())
            .select_from(Question)
            .where(Question.decision_id == decision.id, col(Question.answer).is_(None))
        ).one()
        found.append(DecisionLine(decision.id, decision.title, acknowledged, members, int(questions)))
    return found


# --- what it looks like ------------------------------------------------------------------------------


def card(digest: Digest, timezone: str) -> Card:
    """The digest as a card, with its chart."""
    sections = [Section(text=_headline(digest))]
    for t in digest.themes:
        lines = [f"{count(t.objections, 'objection')} from {count(t.reps, 'rep')} · {_trend_line(t.trend)}"]
        involved = [f"{name} ({n})" for name, n in t.segments] + [
            f"vs {name} ({n})" for name, n in t.competitors
        ]
        if involved:
            lines.append(" · ".join(involved))
        lines += t.quotes
        sections.append(Section(heading=f"{t.name}{' (new)' if t.new else ''}", text="\n".join(lines)))
    watch = []
    if digest.new_themes:
        watch.append("New: " + ", ".join(f"{t.name} ({t.objections})" for t in digest.new_themes))
    if digest.rising:
        watch.append(
            "Rising: " + ", ".join(f"{t.name} ({t.previous} → {t.objections})" for t in digest.rising)
        )
    if watch:
        sections.append(Section(heading="To watch", text="\n".join(watch)))
    gaps = [f"No asset answers {g.theme} ({count(g.objections, 'objection')})" for g in digest.unanswered]
    gaps += [
        f"{g.theme} keeps growing ({g.previous} → {g.objections}) after “{g.asset}” (asset #{g.asset_id})"
        for g in digest.growing_after_asset
    ]
    if gaps:
        sections.append(Section(heading="Gaps", text="\n".join(gaps)))
    feedback = [f"Most useful: “{a.title}” ({a.useful} 👍)" for a in digest.useful_assets]
    feedback += [f"Doesn't fit: “{a.title}” — {clip(a.reason or '', 200)}" for a in digest.doesnt_fit]
    if digest.doesnt_fit_more:
        feedback.append(
            f"… and {count(digest.doesnt_fit_more, 'more reason')}: /asset list, then /asset show <id>"
        )
    if feedback:
        sections.append(Section(heading="Assets", text="\n".join(feedback)))
    strategy = [
        f"#{d.id} {d.title}: {_rate(d)} acknowledged"
        + (f" · {count(d.open_questions, 'open question')}" if d.open_questions else "")
        for d in digest.decisions
    ]
    if strategy:
        sections.append(Section(heading="Strategy", text="\n".join(strategy)))
    return Card(
        title=f"🗞 What the field heard, {_span(digest, timezone)}",
        sections=tuple(sections),
        footer="/objection list <theme> for the voices behind each theme",
        image=chart(digest, timezone) if digest.themes else None,
    )


def _headline(digest: Digest) -> str:
    line = f"{count(digest.objections, 'objection')} from {count(digest.reps, 'rep')}"
    if digest.change is not None:
        line += f", {'+' if digest.change >= 0 else '−'}{abs(digest.change):.0%} on the period before"
    elif digest.objections:
        line += " (none the period before)"
    return line + "."


def _trend_line(trend: list[int]) -> str:
    bars = "▁▂▃▄▅▆▇█"
    top = max(trend) or 1
    return "".join(bars[min(len(bars) - 1, round(v / top * (len(bars) - 1)))] for v in trend) + " (8 weeks)"


def _rate(d: DecisionLine) -> str:
    return f"{d.acknowledged} of {d.members}" + (f" ({d.acknowledged / d.members:.0%})" if d.members else "")


def _span(digest: Digest, timezone: str) -> str:
    zone = ZoneInfo(timezone)
    last = digest.end - timedelta(microseconds=1)
    return f"{digest.start.astimezone(zone):%a %d %b} – {last.astimezone(zone):%a %d %b}"


def text(digest: Digest, timezone: str, *, markdown: bool = False) -> str:
    """The digest for a terminal or an e-mail: plain text, or Markdown."""
    shown = card(digest, timezone)
    lines = [f"# {shown.title}" if markdown else shown.title, ""]
    for section in shown.sections:
        if section.heading:
            lines.append(f"## {section.heading}" if markdown else f"{section.heading}:")
        for entry in section.text.splitlines():
            lines.append(
                f"- {entry}" if markdown and section.heading else f"  {entry}" if section.heading else entry
            )
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def as_json(digest: Digest) -> dict[str, Any]:
    """The digest as data, in the shape `docs/digest.schema.json` describes."""
    data = asdict(digest)
    data["start"], data["end"] = digest.start.isoformat(), digest.end.isoformat()
    data["change"] = digest.change
    data["schema"] = "touchline-digest/1"
    for theme in data["themes"] + data["new_themes"] + data["rising"]:
        theme["segments"] = [{"name": n, "objections": c} for n, c in theme["segments"]]
        theme["competitors"] = [{"name": n, "objections": c} for n, c in theme["competitors"]]
    plain: dict[str, Any] = json.loads(json.dumps(data))
    return plain


def chart(digest: Digest, timezone: str) -> Image:
    """Objections per theme per week, for the themes shown: a PNG made with Pillow."""
    from PIL import Image as Picture
    from PIL import ImageDraw, ImageFont

    width, height, left, bottom, top = 720, 360, 56, 40, 34
    colours = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2"]
    picture = Picture.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(picture)
    font = ImageFont.load_default(size=12)
    themes = digest.themes[: len(colours)]
    periods = len(themes[0].trend) if themes else TREND_PERIODS
    tallest = max([sum(t.trend[i] for t in themes) for i in range(periods)] + [1])
    tick = -(-tallest // 4)  # four even steps of whole objections
    highest = tick * 4
    plot_width = width - left - 170
    plot_height = height - bottom - top
    draw.text((left, 8), "Objections per theme per week", fill="black", font=font)
    for step in range(5):
        value = tick * step
        y = top + plot_height - plot_height * step / 4
        draw.line([(left, y), (left + plot_width, y)], fill="#e5e7eb")
        draw.text((8, y - 7), str(value), fill="#374151", font=font)
    slot = plot_width / periods
    zone = ZoneInfo(timezone)
    length = digest.end - digest.start
    for i in range(periods):
        x0 = left + i * slot + slot * 0.15
        x1 = left + (i + 1) * slot - slot * 0.15
        y = top + plot_height
        for colour, theme in zip(colours, themes, strict=False):
            h = plot_height * theme.trend[i] / highest
            if h:
                draw.rectangle([x0, y - h, x1, y], fill=colour)
            y -= h
        week = digest.end - (periods - i) * length
        draw.text((x0, top + plot_height + 6), f"{week.astimezone(zone):%d %b}", fill="#374151", font=font)
    for n, (colour, theme) in enumerate(zip(colours, themes, strict=False)):
        y = top + n * 20
        draw.rectangle([width - 160, y, width - 148, y + 12], fill=colour)
        draw.text((width - 142, y - 1), clip(theme.name, 22), fill="black", font=font)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", optimize=True)
    return Image(
        buffer.getvalue(), alt="Objections per theme per week", name=f"digest-{digest.end:%Y-%m-%d}.png"
    )


# --- sending and asking --------------------------------------------------------------------------------


def send_weekly(ctx: Context) -> int:
    """Queue this period's digest for its recipients; returns how many. Nothing is sent when the
    period had nothing in it, or when this period's digest already went out (a retry, a takeover)."""
    settings = ctx.org.digest
    if settings is None:
        return 0
    now = ctx.now()
    local_today = now.astimezone(ZoneInfo(ctx.org.organisation.timezone)).date()
    with ctx.db.session() as session:
        digest = build(session, ctx.org, end=now)
        if digest.empty:
            return 0
        if not _first_for_period(session, digest.start.date(), local_today, now):
            return 0
        recipients = directory.person_ids(session, settings.recipients)
        shown = card(digest, ctx.org.organisation.timezone)
        return messages.send_to_each(session, recipients, shown, subject=f"digest:{local_today}", now=now)


def on_command(session: Session, ctx: Context, actor: Actor, text_: str) -> Reply:
    """`/digest`: the digest of the period so far, for marketers and leaders."""
    if not actor.has("marketer", "marketing-lead", "leader"):
        raise Refusal("The digest is for marketers and leaders. /objection mine shows what you logged.")
    digest = build(session, ctx.org, end=ctx.now())
    if digest.empty:
        return Reply(text="Nothing to report for the last period: no objections and no asset feedback.")
    return Reply(card=card(digest, actor.timezone))


def _first_for_period(session: Session, start: date, end: date, now: datetime) -> bool:
    try:
        with session.begin_nested():
            session.add(DigestIssue(period_start=start, period_end=end, created_at=now))
        return True
    except IntegrityError:
        return False
