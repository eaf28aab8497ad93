"""Queuing what a change says to channels and people: outbox rows written in the change's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func
from sqlmodel import Session, col, select

from handlers import directory
from handlers.ui import Card, Section
from storage import outbox
from storage.models import Outbox


def post(
    session: Session,
    channels: Sequence[tuple[str, str]],
    card: Card,
    *,
    subject: str,
    now: datetime,
    sender_id: int | None = None,
) -> int:
    """Queue `card` for each (platform, address) channel; returns how many. The sender, if
    given, is told about any channel the post cannot reach."""
    body = card.to_dict()
    for platform, address in channels:
        outbox.enqueue(
            session,
            kind=outbox.POST,
            platform=platform,
            address=address,
            card=body,
            subject=subject,
            now=now,
            sender_id=sender_id,
        )
    return len(channels)


PROGRESS_FROM = 10  # a broadcast this large shows its sender how it goes, in one updated message
FAILURES_SHOWN = 10


def progress(session: Session, subject: str, *, now: datetime) -> bool:
    """Show whoever sent a broadcast how far it got: "delivered to 1,240 of 5,000 · 3 failed",
    in one direct message kept up to date, ending with each failure and its fix. True if shown."""
    counts = dict(
        session.exec(
            select(Outbox.status, func.count())
            .where(col(Outbox.subject) == subject, col(Outbox.kind).in_([outbox.POST, outbox.DIRECT]))
            .group_by(col(Outbox.status))
        ).all()
    )
    total = sum(counts.values())
    # One row, by the primary key: without the limit the database hands over every row of the
    # broadcast (20,000 of them, once a second) for `.first()` to keep one.
    first = session.exec(
        select(Outbox)
        .where(col(Outbox.subject) == subject, col(Outbox.kind).in_([outbox.POST, outbox.DIRECT]))
        .order_by(col(Outbox.id))
        .limit(1)
    ).first()
    if total < PROGRESS_FROM or first is None or first.sender_id is None:
        return False
    sent, failed = counts.get(outbox.SENT, 0), counts.get(outbox.FAILED, 0)
    done = sent + failed == total
    failures = session.exec(
        select(Outbox.platform, Outbox.address, Outbox.error)
        .where(col(Outbox.subject) == subject, col(Outbox.status) == outbox.FAILED)
        .order_by(col(Outbox.id))
        .limit(FAILURES_SHOWN)
    ).all()
    lines = [f"{platform} · {error or address}" for platform, address, error in failures]
    if failed > len(failures):
        lines.append(f"… and {failed - len(failures):,} more.")
    card = Card(
        title=f"📬 {Card.from_dict(first.card).title}",
        sections=(
            Section(text=f"Delivered to {sent:,} of {total:,}" + (f" · {failed:,} failed" if failed else "")),
            *([Section(heading="Not delivered", text="\n".join(lines))] if lines else []),
        ),
        footer="All sent." if done and not failed else "Finished." if done else "Still sending…",
    )
    key = f"progress:{subject}"
    if session.exec(select(Outbox.id).where(col(Outbox.subject) == key)).first() is None:
        return direct(session, first.sender_id, card, subject=key, now=now)
    outbox.refresh_posts(session, subject=key, card=card.to_dict(), now=now, kind=outbox.DIRECT)
    return True


def report_failure(session: Session, row: Outbox, reason: str, *, now: datetime) -> bool:
    """Tell whoever caused a channel post that it could not be delivered, why, and how far the
    rest got ("posted to 11 of 12 channels"); True if someone was told. A large broadcast says
    so in its progress message instead."""
    if row.kind != outbox.POST or row.sender_id is None:
        return False
    if session.exec(select(func.count()).where(col(Outbox.subject) == row.subject)).one() >= PROGRESS_FROM:
        return False
    siblings = session.exec(
        select(Outbox.status).where(Outbox.subject == row.subject, Outbox.kind == outbox.POST)
    ).all()
    title = Card.from_dict(row.card).title
    delivered = sum(1 for status in siblings if status != outbox.FAILED)
    card = Card(
        title=f"Not delivered to one channel: {title}",
        sections=(
            Section(text=reason),
            Section(text=f"It is going to {delivered} of {len(siblings)} channels."),
        ),
        footer=f"{row.platform} · {row.address}",
    )
    return direct(session, row.sender_id, card, subject=f"failure:{row.id}", now=now)


def direct(
    session: Session,
    person_id: int,
    card: Card,
    *,
    subject: str,
    now: datetime,
    due_at: datetime | None = None,
) -> bool:
    """Queue `card` for one person, where they use Touchline, to arrive at `due_at` (default: now);
    False if they cannot be reached."""
    return direct_each(session, [(person_id, card, due_at)], subject=subject, now=now) == 1


def send_to_each(
    session: Session, person_ids: Sequence[int], card: Card, *, subject: str, now: datetime
) -> int:
    """Queue the same `card` for each person who can be reached; returns how many were."""
    return direct_each(session, [(p, card, None) for p in person_ids], subject=subject, now=now)


def direct_each(
    session: Session,
    messages: Sequence[tuple[int, Card, datetime | None]],
    *,
    subject: str,
    now: datetime,
    sender_id: int | None = None,
) -> int:
    """Queue (person, card, due at) direct messages, looking everyone's address up at once;
    returns how many people could be reached. The sender, if given, sees the progress."""
    addresses = directory.direct_addresses(session, [person_id for person_id, _, _ in messages])
    bodies: dict[int, dict[str, object]] = {}
    reached = 0
    for person_id, card, due_at in messages:
        if person_id not in addresses:
            continue
        platform, address = addresses[person_id]
        body = bodies.setdefault(id(card), card.to_dict())
        outbox.enqueue(
            session,
            kind=outbox.DIRECT,
            platform=platform,
            address=address,
            card=body,
            subject=subject,
            now=now,
            due_at=due_at,
            sender_id=sender_id,
        )
        reached += 1
    return reached
