"""The weekly objection digest to the recipients in app.yaml: how much the field heard, by theme.

This first version counts objections and reps per theme for the period; trends, gaps and
asset feedback come with the digest feature itself.
"""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from handlers import messages
from handlers.context import Context
from handlers.text import count
from handlers.ui import Card, Section
from storage.models import DigestIssue, Identity, Objection, Person

THEMES_SHOWN = 10


def send_weekly(ctx: Context) -> int:
    """Queue this period's digest for its recipients; returns how many. Nothing is sent when the
    period heard nothing, or when this period's digest already went out (a retry, a takeover)."""
    settings = ctx.org.digest
    if settings is None:
        return 0
    now = ctx.now()
    local_today = now.astimezone(ZoneInfo(ctx.org.organisation.timezone)).date()
    start = now - settings.period
    with ctx.db.session() as session:
        objections = session.exec(
            select(Objection).where(col(Objection.created_at) >= start, col(Objection.created_at) < now)
        ).all()
        if not objections:
            return 0
        if not _first_for_period(session, start.date(), local_today, now):
            return 0
        card = digest_card(list(objections), start, now, ctx.org.organisation.timezone)
        recipients = _recipients(session, settings.recipients)
        return messages.send_to_each(session, recipients, card, subject=f"digest:{local_today}", now=now)


def digest_card(objections: list[Objection], start: datetime, end: datetime, timezone: str) -> Card:
    zone = ZoneInfo(timezone)
    by_theme: dict[str, list[Objection]] = {}
    for o in objections:
        by_theme.setdefault(str(o.theme_id), []).append(o)
    reps = len({o.reporter_id for o in objections})
    lines = [
        f"{theme}: {count(len(items), 'objection')} from {count(len({o.reporter_id for o in items}), 'rep')}"
        for theme, items in sorted(by_theme.items(), key=lambda kv: (-len(kv[1]), kv[0]))[:THEMES_SHOWN]
    ]
    span = f"{start.astimezone(zone):%a %d %b} – {end.astimezone(zone):%a %d %b}"
    return Card(
        title=f"🗞 What the field heard, {span}",
        sections=(
            Section(text=f"{count(len(objections), 'objection')} from {count(reps, 'rep')}."),
            Section(heading="By theme", text="\n".join(lines)),
        ),
        footer="/objection list <theme> for the voices behind each line",
    )


def _first_for_period(session: Session, start: date, end: date, now: datetime) -> bool:
    try:
        with session.begin_nested():
            session.add(DigestIssue(period_start=start, period_end=end, created_at=now))
        return True
    except IntegrityError:
        return False


def _recipients(session: Session, refs: list[str]) -> list[int]:
    found: list[int] = []
    for ref in refs:
        kind, sep, rest = ref.partition(":")
        person_id: int | None
        if not sep:
            person_id = session.exec(select(Person.id).where(Person.key == ref)).first()
        elif kind == "email":
            person_id = session.exec(select(Person.id).where(Person.email == rest)).first()
        else:
            person_id = session.exec(
                select(Identity.person_id).where(Identity.platform == kind, Identity.external_id == rest)
            ).first()
        if person_id is not None and person_id not in found:
            found.append(person_id)
    return found
