"""The scheduler's lease: which one of several processes may run the scheduler right now."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import and_, or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from storage.models import SchedulerLease


def acquire(session: Session, *, name: str, holder: str, now: datetime, ttl: timedelta) -> bool:
    """Take or renew the lease for `ttl`; True when `holder` holds it afterwards.

    One conditional UPDATE decides between processes: it succeeds for the current holder
    (a renewal) or for anyone once the lease has expired (a takeover), never for two.
    """
    taken = session.execute(
        update(SchedulerLease)
        .where(
            and_(
                col(SchedulerLease.name) == name,
                or_(col(SchedulerLease.holder) == holder, col(SchedulerLease.expires_at) < now),
            )
        )
        .values(holder=holder, expires_at=now + ttl)
        .execution_options(synchronize_session=False)
    )
    if taken.rowcount:  # type: ignore[attr-defined]
        return True
    try:
        with session.begin_nested():
            session.add(SchedulerLease(name=name, holder=holder, expires_at=now + ttl))
        return True
    except IntegrityError:
        return False  # someone else holds it


def release(session: Session, *, name: str, holder: str, now: datetime) -> None:
    """Give the lease up at once, so that another process need not wait for it to expire."""
    session.execute(
        update(SchedulerLease)
        .where(and_(col(SchedulerLease.name) == name, col(SchedulerLease.holder) == holder))
        .values(expires_at=now)
        .execution_options(synchronize_session=False)
    )


def holder_of(session: Session, *, name: str, now: datetime) -> str | None:
    """Who holds the lease now, or None when nobody does."""
    lease = session.exec(select(SchedulerLease).where(SchedulerLease.name == name)).first()
    return lease.holder if lease is not None and lease.expires_at > now else None
