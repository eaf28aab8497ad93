"""Queuing what a change says to channels and people: outbox rows written in the change's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlmodel import Session, select

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


def report_failure(session: Session, row: Outbox, reason: str, *, now: datetime) -> bool:
    """Tell whoever caused a channel post that it could not be delivered, why, and how far the
    rest got ("posted to 11 of 12 channels"); True if someone was told."""
    if row.kind != outbox.POST or row.sender_id is None:
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
) -> int:
    """Queue (person, card, due at) direct messages, looking everyone's address up at once;
    returns how many people could be reached."""
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
        )
        reached += 1
    return reached
