"""What a channel or a person has received from Touchline, each message as it reads now (after updates)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_
from sqlmodel import Session, col, select

from handlers import live
from handlers.ui import Card
from storage import outbox
from storage.models import Audience, AudienceTarget, Outbox

SHOWN = 40


@dataclass(frozen=True)
class Message:
    id: int  # the outbox row that posted it: its number in the console and on the web page
    address: str
    card: Card
    at: datetime
    updated: bool
    delivered: bool


@dataclass(frozen=True)
class Channel:
    address: str
    audiences: tuple[str, ...]


def channels(session: Session, *, platform: str) -> list[Channel]:
    """The channels audiences post to on `platform`, with the audiences' labels."""
    found: dict[str, list[str]] = {}
    for target, audience in session.exec(
        select(AudienceTarget, Audience)
        .join(Audience, col(Audience.id) == col(AudienceTarget.audience_id))
        .where(AudienceTarget.platform == platform)
        .order_by(col(AudienceTarget.address))
    ):
        found.setdefault(target.address, []).append(audience.label or audience.key)
    return [Channel(address, tuple(labels)) for address, labels in found.items()]


def messages(
    session: Session, *, platform: str, address: str, direct: bool, now: datetime, limit: int = SHOWN
) -> list[Message]:
    """The latest messages to a channel (or, `direct`, to a person), oldest first: those sent, and
    those due by `now` (a pulse invitation waiting for the person's morning is not shown yet)."""
    rows = session.exec(
        select(Outbox)
        .where(
            Outbox.platform == platform,
            Outbox.address == address,
            Outbox.kind == (outbox.DIRECT if direct else outbox.POST),
            Outbox.status != outbox.FAILED,
            or_(col(Outbox.status) == outbox.SENT, col(Outbox.due_at) <= now),
        )
        .order_by(col(Outbox.id).desc())
        .limit(limit)
    ).all()
    latest = _latest_updates(session, [r.id for r in rows if r.id is not None])
    found = []
    for row in reversed(rows):
        assert row.id is not None
        update = latest.get(row.id)
        found.append(
            Message(
                row.id,
                row.address,
                _as_it_reads(session, row, update),
                row.created_at,
                update is not None,
                row.status == outbox.SENT,
            )
        )
    return found


def message(session: Session, *, platform: str, message_id: int) -> Message | None:
    """One message by its number, as it reads now."""
    row = session.get(Outbox, message_id)
    if row is None or row.platform != platform or row.kind not in (outbox.POST, outbox.DIRECT):
        return None
    update = _latest_updates(session, [message_id]).get(message_id)
    return Message(
        message_id,
        row.address,
        _as_it_reads(session, row, update),
        row.created_at,
        update is not None,
        row.status == outbox.SENT,
    )


def _as_it_reads(session: Session, row: Outbox, update: Outbox | None) -> Card:
    """A channel post of a live subject (a decision) as the delivery worker draws it now; any
    other message as it was last sent or queued."""
    if row.kind == outbox.POST and live.is_live(row.subject):
        drawn = live.current_card(session, row.subject)
        if drawn is not None:
            return drawn
    return Card.from_dict(update.card if update is not None else row.card)


def _latest_updates(session: Session, ids: list[int]) -> dict[int, Outbox]:
    if not ids:
        return {}
    newest = (
        select(Outbox.updates_id, func.max(Outbox.id).label("id"))
        .where(col(Outbox.updates_id).in_(ids), Outbox.kind == outbox.UPDATE, Outbox.status != outbox.FAILED)
        .group_by(col(Outbox.updates_id))
        .subquery()
    )
    rows = session.exec(select(Outbox).join(newest, col(Outbox.id) == newest.c.id)).all()
    return {r.updates_id: r for r in rows if r.updates_id is not None}
