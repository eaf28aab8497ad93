"""The outbox: messages owed to channels and people, written in the transaction that caused them."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, func, insert, literal, or_, update
from sqlalchemy import select as select_columns
from sqlmodel import Session, col, select

from storage.database import changing, nothing_changing, serialize
from storage.models import Outbox

POST, DIRECT, UPDATE = "post", "direct", "update"
PENDING, SENDING, SENT, FAILED = "pending", "sending", "sent", "failed"


def enqueue(
    session: Session,
    *,
    kind: str,
    platform: str,
    address: str,
    card: dict[str, Any],
    subject: str,
    now: datetime,
    updates_id: int | None = None,
    due_at: datetime | None = None,
    sender_id: int | None = None,
) -> Outbox:
    """Queue one message; it goes out at `due_at` (default: at once)."""
    row = Outbox(
        kind=kind,
        platform=platform,
        address=address,
        card=card,
        subject=subject,
        updates_id=updates_id,
        due_at=due_at or now,
        created_at=now,
        sender_id=sender_id,
    )
    session.add(row)
    return row


def mark_changed(
    session: Session, *, subject: str, card: Callable[[], dict[str, Any]], now: datetime
) -> None:
    """`subject`'s channel posts show something that changed, and the delivery worker draws their
    card afresh when it sends (handlers/live.py): each post already out gets one pending update
    unless it has one. Nothing else is written, so that many changes at once (a crowd pressing
    *Got it* on a decision in 200 channels) neither rewrite every post's card nor queue behind
    each other: a post has at most one update on its way and one pending, and the pending one
    carries the latest when it goes. One statement, however many channels; `card()` is only what
    the new rows hold until then, drawn only when a post needs a new update (in a crowd's burst,
    most changes find every post's update pending, and drawing the card was a third of a press
    in py-spy).

    A change that finds a post's update pending counts on it to carry the change; the claim of
    that update (`claim_due`) must then not slip in between this statement and the change's
    commit, or the update, drawn before the change is committed, would go out without it and
    no later one would follow. So the change is `changing` the subject, and the claim passes
    over updates of a subject while it is."""
    changing(session, subject)
    session.flush()
    if session.connection().execute(_ANY_WITHOUT_UPDATE, {"subject": subject}).first() is None:
        return  # the common case in a crowd, in a statement built once
    table = Outbox.__table__  # type: ignore[attr-defined]
    out = _without_update(subject).with_only_columns(
        literal(UPDATE),
        table.c.platform,
        table.c.address,
        literal(card(), table.c.card.type),
        literal(subject),
        table.c.id,
        literal(PENDING),
        literal(0),
        literal(now, table.c.due_at.type),
        literal(now, table.c.created_at.type),
    )
    session.execute(
        insert(Outbox).from_select(
            [
                "kind",
                "platform",
                "address",
                "card",
                "subject",
                "updates_id",
                "status",
                "attempts",
                "due_at",
                "created_at",
            ],
            out,
        )
    )


def _without_update(subject: Any) -> Any:
    """The ids of `subject`'s channel posts that are out and have no update pending."""
    waiting = select(Outbox.updates_id).where(
        col(Outbox.kind) == UPDATE,
        col(Outbox.status) == PENDING,
        col(Outbox.subject) == subject,
        col(Outbox.updates_id).is_not(None),
    )
    return select_columns(col(Outbox.id)).where(
        col(Outbox.subject) == subject,
        col(Outbox.kind) == POST,
        col(Outbox.status).in_([SENDING, SENT]),
        col(Outbox.id).not_in(waiting),
    )


_ANY_WITHOUT_UPDATE = _without_update(bindparam("subject")).limit(1)


def refresh_posts(
    session: Session, *, subject: str, card: dict[str, Any], now: datetime, kind: str = POST
) -> int:
    """Make every channel post (or direct message, with `kind`) about `subject` show `card`;
    returns how many updates were queued.

    A post not yet sent simply goes out with the new card; a post already sent gets one
    pending update, which later changes replace rather than pile up behind. A fixed
    number of statements, however many channels the subject was posted to.
    """
    session.flush()
    posts = select(Outbox.id).where(
        col(Outbox.subject) == subject, col(Outbox.kind) == kind, col(Outbox.status) != FAILED
    )
    session.execute(
        update(Outbox)
        .where(col(Outbox.subject) == subject, col(Outbox.kind) == kind, col(Outbox.status) == PENDING)
        .values(card=card)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(Outbox)
        .where(col(Outbox.kind) == UPDATE, col(Outbox.status) == PENDING, col(Outbox.updates_id).in_(posts))
        .values(card=card)
        .execution_options(synchronize_session=False)
    )
    waiting = select(Outbox.updates_id).where(
        col(Outbox.kind) == UPDATE, col(Outbox.status) == PENDING, col(Outbox.subject) == subject
    )
    needing = session.exec(
        select(Outbox).where(
            col(Outbox.subject) == subject,
            col(Outbox.kind) == kind,
            col(Outbox.status).in_([SENDING, SENT]),
            col(Outbox.id).not_in(waiting),
        )
    ).all()
    for post in needing:
        enqueue(
            session,
            kind=UPDATE,
            platform=post.platform,
            address=post.address,
            card=card,
            subject=subject,
            now=now,
            updates_id=post.id,
        )
    session.flush()
    session.expire_all()
    return len(needing)


def find_post(session: Session, *, platform: str, address: str, message_ref: str) -> Outbox | None:
    """The channel post or direct message Touchline sent as `message_ref`, if it is ours."""
    return session.exec(
        select(Outbox).where(
            Outbox.platform == platform,
            Outbox.message_ref == message_ref,
            col(Outbox.kind).in_([POST, DIRECT]),
            or_(col(Outbox.address) == address, col(Outbox.kind) == DIRECT),
        )
    ).first()


@dataclass(frozen=True)
class Claimed:
    """A row the delivery worker now owns, with what it needs to send it."""

    id: int
    kind: str
    platform: str
    address: str
    card: dict[str, Any]
    attempts: int
    message_ref: str | None  # for an update: the message to change
    subject: str = ""
    updates_id: int | None = None  # for an update: the post's row


def release_stale(session: Session, *, now: datetime, lease: timedelta) -> int:
    """Hand back rows whose worker died mid-send, so that they are sent after all."""
    result = session.execute(
        update(Outbox)
        .where(and_(col(Outbox.status) == SENDING, col(Outbox.claimed_at) < now - lease))
        .values(status=PENDING, claimed_at=None)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


CARRIED = "carried by a later update of the post"


def mark_carried(session: Session, row_id: int, *, now: datetime) -> None:
    """An update not sent because a later one of the same post goes after it (and is drawn then)."""
    _finish(session, row_id, status=SENT, now=now, error=CARRIED)


SHOWN = "its post already showed it"


def mark_shown(session: Session, row_id: int, *, now: datetime) -> None:
    """An update not sent because its post already shows what it would (one sent since drew
    the same change)."""
    _finish(session, row_id, status=SENT, now=now, error=SHOWN)


def release(session: Session, ids: Sequence[int]) -> None:
    """Hand back rows a stopping worker claimed and never began to send: the next one sends them
    at once, instead of after the lease."""
    for start in range(0, len(ids), 500):
        session.execute(
            update(Outbox)
            .where(col(Outbox.id).in_(ids[start : start + 500]), col(Outbox.status) == SENDING)
            .values(status=PENDING, claimed_at=None)
            .execution_options(synchronize_session=False)
        )


def renew(session: Session, ids: Sequence[int], *, now: datetime) -> int:
    """Keep the claim on rows a live worker still holds, so that no one takes them as stale."""
    renewed = 0
    for start in range(0, len(ids), 500):
        result = session.execute(
            update(Outbox)
            .where(col(Outbox.id).in_(ids[start : start + 500]), col(Outbox.status) == SENDING)
            .values(claimed_at=now)
            .execution_options(synchronize_session=False)
        )
        renewed += int(result.rowcount)  # type: ignore[attr-defined]
    return renewed


CLAIMS = "outbox claims"


def claim_due(
    session: Session,
    *,
    platforms: Sequence[str],
    now: datetime,
    limit: int,
    mine: Collection[int] = frozenset(),
) -> list[Claimed]:
    """Take up to `limit` due rows for the given platforms, oldest first; `mine` are the rows
    the claiming worker holds already.

    A new message (a post or a direct message) is not taken while an earlier one of its
    conversation is owed and not the worker's: one another worker is sending (or one that died
    was, until its lease runs out) or one waiting for its retry. Taken, it would overtake that
    one. Updates change a message already out, and neither wait nor hold anything up.

    The conditional UPDATE makes the claim safe when several workers share the database:
    only one of them moves a row from pending to sending. On PostgreSQL claims take turns
    (SQLite's writers do anyway), so that each sees what the one before it took.
    """
    serialize(session, CLAIMS)
    # Only what choosing needs: the cards (JSON, parsed on load) come back with the claim below.
    # Loading whole rows made a claim of 200 hold the write lock 12 to 65 ms on SQLite, while
    # the inbox's inserts, which Slack waits for, queued behind it.
    table = Outbox.__table__  # type: ignore[attr-defined]
    rows: list[Any] = list(
        session.execute(
            select_columns(
                table.c.id,
                table.c.kind,
                table.c.platform,
                table.c.address,
                table.c.attempts,
                table.c.updates_id,
                table.c.subject,
            )
            .where(
                table.c.status == PENDING,
                table.c.platform.in_(list(platforms)),
                table.c.due_at <= now,
            )
            .order_by(table.c.id)
            .limit(limit * 4)
        )
    )
    # Two changes at once may each have queued an update of one post (mark_changed takes no
    # lock): the newest is claimed, the others are settled as carried by it.
    newest: dict[int, int] = {}
    for row in rows:
        if row.kind == UPDATE and row.updates_id is not None and row.id is not None:
            newest[row.updates_id] = max(newest.get(row.updates_id, 0), row.id)
    owed = _first_owed(session, rows, now=now, mine=mine)
    behind: set[tuple[str, str]] = set()  # conversations whose next new message waits
    chosen: list[tuple[Any, str | None]] = []
    for row in rows:
        if len(chosen) >= limit:
            break
        assert row.id is not None
        conversation = (row.platform, row.address)
        if row.kind != UPDATE and (conversation in behind or owed.get(conversation, row.id) < row.id):
            behind.add(conversation)
            continue
        if row.kind == UPDATE and row.updates_id is not None and newest[row.updates_id] != row.id:
            mark_carried(session, row.id, now=now)
            continue
        message_ref = None
        if row.kind == UPDATE:
            original = session.get(Outbox, row.updates_id)
            if original is None or original.status == FAILED:
                _finish(
                    session,
                    row.id,
                    status=FAILED,
                    now=now,
                    error="the message to update was never delivered",
                )
                continue
            if original.message_ref is None:
                continue  # its post is not out yet; the update waits for it
            message_ref = original.message_ref
        chosen.append((row, message_ref))
    # An update whose subject is being changed right now waits for the next claim (mark_changed).
    busy = {
        subject
        for subject in {row.subject for row, _ in chosen if row.kind == UPDATE and row.subject}
        if not nothing_changing(session, subject)
    }
    if busy:
        chosen = [(row, ref) for row, ref in chosen if row.kind != UPDATE or row.subject not in busy]
    if not chosen:
        return []
    # One conditional UPDATE for the batch: only the rows still pending become ours, and the
    # card comes back with each (a change may have replaced it since the SELECT above, and
    # the newest card is the one to send).
    taken = {
        id_: card
        for id_, card in session.execute(
            update(Outbox)
            .where(col(Outbox.id).in_([row.id for row, _ in chosen]), col(Outbox.status) == PENDING)
            .values(status=SENDING, claimed_at=now)
            .returning(col(Outbox.id), col(Outbox.card))
            .execution_options(synchronize_session=False)
        )
    }
    return [
        Claimed(
            row_id,
            row.kind,
            row.platform,
            row.address,
            taken[row_id],
            row.attempts,
            ref,
            row.subject,
            row.updates_id,
        )
        for row, ref in chosen
        if (row_id := row.id) is not None and row_id in taken
    ]


def _first_owed(
    session: Session, rows: list[Any], *, now: datetime, mine: Collection[int]
) -> dict[tuple[str, str], int]:
    """For each conversation of the new messages among `rows`, its earliest new message that is
    owed and cannot be taken now (being sent by another worker, or waiting for its retry)."""
    table = Outbox.__table__  # type: ignore[attr-defined]
    addresses: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        if row.kind != UPDATE:
            addresses[row.platform].add(row.address)
    first: dict[tuple[str, str], int] = {}
    for platform, some in addresses.items():
        listed = sorted(some)
        for start in range(0, len(listed), 500):
            waiting = session.execute(
                select_columns(table.c.id, table.c.address, table.c.status).where(
                    table.c.platform == platform,
                    table.c.address.in_(listed[start : start + 500]),
                    or_(table.c.status == SENDING, and_(table.c.status == PENDING, table.c.due_at > now)),
                    table.c.kind != UPDATE,
                )
            )
            for id_, address, status in waiting:
                # One of the worker's own that is waiting for its retry (it failed since the
                # worker said what it holds) is owed as much as anyone's.
                if id_ not in mine or status == PENDING:
                    first[(platform, address)] = min(first.get((platform, address), id_), id_)
    return first


def mark_sent(
    session: Session,
    claimed: Claimed,
    *,
    message_ref: str | None,
    now: datetime,
    card: dict[str, Any] | None = None,
) -> None:
    """`claimed` went out; `card` is what it showed when drawn at sending, if not as queued."""
    # On the connection, in statements built once: every message sent ends here, and through the
    # ORM (a get, a flush) this was a quarter of the delivery worker's time.
    connection = session.connection()
    # Only the names the statement binds: a column's name among the parameters of an UPDATE
    # would set that column too.
    values: dict[str, Any] = {"row": claimed.id, "now": now}
    if card is not None:
        values["card"] = card
    if claimed.kind == UPDATE and claimed.updates_id is not None:
        connection.execute(_UPDATE_SENT if card is None else _UPDATE_SENT_DRAWN, values)
        # The original post now shows this card; keep it as the post's current content.
        connection.execute(_POST_SHOWS, {"row": claimed.id, "post": claimed.updates_id})
    else:
        connection.execute(_SENT if card is None else _SENT_DRAWN, {**values, "ref": message_ref})


def _sent(*, ref: bool, drawn: bool) -> Any:
    values: dict[str, Any] = {
        "status": SENT,
        "sent_at": bindparam("now"),
        "error": None,
        "claimed_at": None,
        "attempts": col(Outbox.attempts) + 1,
    }
    if ref:
        values["message_ref"] = bindparam("ref")
    if drawn:
        values["card"] = bindparam("card", type_=Outbox.__table__.c.card.type)  # type: ignore[attr-defined]
    return update(Outbox).where(col(Outbox.id) == bindparam("row")).values(**values)


_SENT, _SENT_DRAWN = _sent(ref=True, drawn=False), _sent(ref=True, drawn=True)
_UPDATE_SENT, _UPDATE_SENT_DRAWN = _sent(ref=False, drawn=False), _sent(ref=False, drawn=True)
_SHOWN = Outbox.__table__.alias("shown")  # type: ignore[attr-defined]
_POST_SHOWS = (
    update(Outbox)
    .where(col(Outbox.id) == bindparam("post"))
    .values(card=select_columns(_SHOWN.c.card).where(_SHOWN.c.id == bindparam("row")).scalar_subquery())
)


def mark_retry(session: Session, claimed: Claimed, *, error: str, due_at: datetime) -> None:
    row = session.get(Outbox, claimed.id)
    assert row is not None
    row.status, row.due_at, row.error, row.claimed_at = PENDING, due_at, error[:1000], None
    row.attempts += 1
    session.add(row)


def hold_back(
    session: Session,
    *,
    platform: str,
    address: str,
    after_id: int,
    held: Sequence[int],
    until: datetime,
    reason: str,
) -> None:
    """The messages to a conversation behind the one numbered `after_id`, which is tried again at
    `until`, wait until then: those claimed (`held`, handed back) and those still pending (handed
    back at an earlier failure, or never claimed), so that none overtakes it however often it
    fails. One statement; their attempts are not counted, since none of them failed."""
    session.execute(
        update(Outbox)
        .where(
            col(Outbox.platform) == platform,
            col(Outbox.address) == address,
            or_(
                and_(col(Outbox.status) == SENDING, col(Outbox.id).in_(held)),
                and_(col(Outbox.status) == PENDING, col(Outbox.id) > after_id, col(Outbox.due_at) < until),
            ),
        )
        .values(status=PENDING, claimed_at=None, due_at=until, error=f"waiting: {reason}"[:1000])
        .execution_options(synchronize_session=False)
    )


def mark_failed(session: Session, claimed: Claimed, *, error: str, now: datetime) -> None:
    _finish(session, claimed.id, status=FAILED, now=now, error=error)


def _finish(session: Session, row_id: int, *, status: str, now: datetime, error: str) -> None:
    row = session.get(Outbox, row_id)
    assert row is not None
    row.status, row.error, row.claimed_at = status, error[:1000], None
    row.attempts += 1
    session.add(row)


def pending_count(session: Session, *, platforms: Sequence[str] | None = None) -> int:
    query = select(func.count()).select_from(Outbox).where(col(Outbox.status).in_([PENDING, SENDING]))
    if platforms is not None:
        query = query.where(col(Outbox.platform).in_(list(platforms)))
    return int(session.exec(query).one())
