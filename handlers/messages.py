"""Queuing what a change says to channels and people: outbox rows written in the change's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlmodel import Session

from handlers import directory
from handlers.ui import Card
from storage import outbox


def post(
    session: Session, channels: Sequence[tuple[str, str]], card: Card, *, subject: str, now: datetime
) -> int:
    """Queue `card` for each (platform, address) channel; returns how many."""
    body = card.to_dict()
    for platform, address in channels:
        outbox.enqueue(
            session, kind=outbox.POST, platform=platform, address=address, card=body, subject=subject, now=now
        )
    return len(channels)


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
    address = directory.direct_addresses(session, [person_id]).get(person_id)
    if address is None:
        return False
    outbox.enqueue(
        session,
        kind=outbox.DIRECT,
        platform=address[0],
        address=address[1],
        card=card.to_dict(),
        subject=subject,
        now=now,
        due_at=due_at,
    )
    return True


def send_to_each(
    session: Session, person_ids: Sequence[int], card: Card, *, subject: str, now: datetime
) -> int:
    """Queue `card` for each person who can be reached; returns how many were."""
    addresses = directory.direct_addresses(session, person_ids)
    body = card.to_dict()
    for person_id in person_ids:
        if person_id in addresses:
            platform, address = addresses[person_id]
            outbox.enqueue(
                session,
                kind=outbox.DIRECT,
                platform=platform,
                address=address,
                card=body,
                subject=subject,
                now=now,
            )
    return sum(1 for p in person_ids if p in addresses)
