"""Inbound event ids already handled, so that a platform's retry of the same event is handled once."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from storage.models import InboundEvent


def first_time(session: Session, *, platform: str, event_id: str, now: datetime) -> bool:
    """Record `event_id`; False when it was recorded before (the platform is retrying it).

    The unique constraint decides, so two processes receiving the same retry at once
    cannot both handle it.
    """
    try:
        with session.begin_nested():
            session.add(InboundEvent(platform=platform, event_id=event_id[:200], received_at=now))
        return True
    except IntegrityError:
        return False


def forget_before(session: Session, cutoff: datetime) -> int:
    """Drop ids older than any retry a platform would still send."""
    result = session.execute(delete(InboundEvent).where(col(InboundEvent.received_at) < cutoff))
    return int(result.rowcount)  # type: ignore[attr-defined]
