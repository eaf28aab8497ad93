"""The inbox: what people did in chat, kept from the moment it arrives until it is done, exactly once.

A platform is told "received" only once the item is stored (`receive`). The transaction that does
the work also marks the item done (`finish`), so that the work and "it is done" commit together:
an item is done once, whoever tries it, however often. A process claims what it works on for a
short lease and renews it while working (`renew`); when it dies, another takes the item over once
the lease has run out (`claim`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, func, or_, update
from sqlmodel import Session, col, select

from storage.database import insert_new
from storage.models import InboxItem

LEASE = timedelta(seconds=15)
TRIES = 5  # an item that failed this often is given up on (logged): it would fail again


_STORED = (
    "platform",
    "key",
    "kind",
    "fields",
    "received_at",
    "done",
    "attempts",
    "claimed_by",
    "claimed_until",
)
RECEIVE = insert_new(InboxItem, _STORED, ("platform", "key"))


@dataclass(frozen=True)
class Item:
    id: int
    kind: str
    fields: dict[str, Any]


def receive(
    session: Session,
    *,
    platform: str,
    key: str,
    kind: str,
    fields: dict[str, Any],
    now: datetime,
    claimant: str | None,
) -> int | None:
    """Store it, claimed by `claimant` (None: for whoever takes it first); None if it was
    received before (the platform's retry)."""
    # ON CONFLICT, not a savepoint caught on its IntegrityError: one statement where that took
    # three, on the path a platform waits on.
    stored = (
        session.connection()
        .execute(
            RECEIVE,
            {
                "platform": platform,
                "key": key[:200],
                "kind": kind,
                "fields": json.dumps(fields, ensure_ascii=False),
                "received_at": now,
                "done": False,
                "attempts": 0 if claimant is None else 1,
                "claimed_by": claimant,
                "claimed_until": None if claimant is None else now + LEASE,
            },
        )
        .first()
    )
    return None if stored is None else int(stored[0])


def finish(session: Session, item_id: int) -> bool:
    """Mark it done, in the transaction that does its work; False if it was done already (then
    that transaction must do nothing: another attempt did it). What it held is erased."""
    # On the connection, built once: through the session, an UPDATE is the ORM's bulk update,
    # which first looks for the rows it changes among the objects the session holds.
    return int(session.connection().execute(FINISH, {"item": item_id}).rowcount) == 1


FINISH = (
    update(InboxItem)
    .where(col(InboxItem.id) == bindparam("item"), col(InboxItem.done).is_(False))
    .values(done=True, fields=None, claimed_by=None, claimed_until=None)
)


def done(session: Session, item_id: int) -> bool:
    """Whether it is done (or gone: done and forgotten)."""
    found = session.exec(select(InboxItem.done).where(col(InboxItem.id) == item_id)).first()
    return found is None or bool(found)


def waiting(session: Session, *, now: datetime) -> bool:
    """Whether any item waits to be claimed (what `claim` would take)."""
    return (
        session.exec(
            select(InboxItem.id)
            .where(
                col(InboxItem.done).is_(False),
                or_(col(InboxItem.claimed_until).is_(None), col(InboxItem.claimed_until) < now),
            )
            .limit(1)
        ).first()
        is not None
    )


def claim(session: Session, *, now: datetime, claimant: str, limit: int = 50) -> list[Item]:
    """Take over items nobody is working on (never claimed, or their lease ran out), oldest first.
    Items tried `TRIES` times are returned with no fields, for the caller to give up on."""
    query = (
        select(InboxItem)
        .where(
            col(InboxItem.done).is_(False),
            or_(col(InboxItem.claimed_until).is_(None), col(InboxItem.claimed_until) < now),
        )
        .order_by(col(InboxItem.id))
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    taken: list[Item] = []
    for row in session.exec(query).all():
        assert row.id is not None
        row.attempts += 1
        row.claimed_by, row.claimed_until = claimant, now + LEASE
        session.add(row)
        exhausted = row.attempts > TRIES or row.fields is None
        taken.append(Item(row.id, row.kind, {} if exhausted else json.loads(row.fields or "{}")))
    return taken


def renew(session: Session, *, ids: list[int], claimant: str, now: datetime) -> None:
    """Keep the items this process is still working on."""
    if ids:
        session.execute(
            update(InboxItem)
            .where(col(InboxItem.id).in_(ids), col(InboxItem.claimed_by) == claimant)
            .values(claimed_until=now + LEASE)
        )


def release(session: Session, *, ids: list[int], claimant: str) -> None:
    """Let go of items not finished (a shutdown): the next process takes them at once."""
    if ids:
        session.execute(
            update(InboxItem)
            .where(col(InboxItem.id).in_(ids), col(InboxItem.claimed_by) == claimant)
            .values(claimed_by=None, claimed_until=None)
        )


def pending(session: Session) -> int:
    return int(session.exec(select(func.count()).where(col(InboxItem.done).is_(False))).one())


def forget_done_before(session: Session, cutoff: datetime) -> int:
    """Drop done items older than any retry a platform would still send of them."""
    result = session.execute(
        delete(InboxItem).where(col(InboxItem.done).is_(True), col(InboxItem.received_at) < cutoff)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
