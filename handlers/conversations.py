"""The places a platform lets Touchline post to unasked, and the team members it may open a chat with."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import case
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from handlers import directory
from handlers.context import Context
from handlers.forms import visible_name
from storage.database import insert_of
from storage.models import Conversation, Identity, RosterMember

CHANNEL, GROUP, PERSONAL = "channel", "group", "personal"


@dataclass(frozen=True)
class Place:
    platform: str
    address: str
    kind: str
    name: str
    team: str
    reference: dict[str, Any]


def remember(
    ctx: Context,
    platform: str,
    address: str,
    *,
    kind: str,
    reference: dict[str, Any],
    name: str = "",
    team: str = "",
    person_external_id: str | None = None,
) -> None:
    """Record (or refresh) a conversation; a 1:1 chat is tied to the person it is with. Called
    for every activity, so it writes only when something changed."""

    def unit(session: Session) -> None:
        row = _conversation(session, platform, address)
        person_id = row.person_id if row else None
        if person_external_id is not None:
            person_id = directory.meet(session, platform, person_external_id).id
        if row is None:
            row = Conversation(
                platform=platform, address=address, kind=kind, reference={}, updated_at=ctx.now()
            )
            try:
                with session.begin_nested():  # a new person's first activities arrive together
                    _update(row, (kind, reference, name[:200], team[:200], person_id), ctx.now())
                    session.add(row)
                return
            except IntegrityError:
                # Another activity stored it first (PostgreSQL refused this one once that one
                # committed, so its row can be read now): refresh that row instead.
                row = _conversation(session, platform, address)
                if row is None:
                    raise
        wanted = (kind, reference, name[:200] or row.name, team[:200] or row.team, person_id)
        if (row.kind, row.reference, row.name, row.team, row.person_id) != wanted:
            _update(row, wanted, ctx.now())
            session.add(row)

    # On PostgreSQL, again if it lost a deadlock to another activity's unit of work.
    ctx.db.run(unit)


def _conversation(session: Session, platform: str, address: str) -> Conversation | None:
    return session.exec(
        select(Conversation).where(Conversation.platform == platform, Conversation.address == address)
    ).first()


def _update(
    row: Conversation, wanted: tuple[str, dict[str, Any], str, str, int | None], now: datetime
) -> None:
    row.kind, row.reference, row.name, row.team, row.person_id = wanted
    row.updated_at = now


def find(ctx: Context, platform: str, address: str) -> Place | None:
    with ctx.db.session() as session:
        row = session.exec(
            select(Conversation).where(Conversation.platform == platform, Conversation.address == address)
        ).first()
        return _place(row) if row else None


def personal(ctx: Context, platform: str, external_id: str) -> Place | None:
    """The 1:1 chat with the person known by this platform id, if the bot has one."""
    # Columns, in a statement built once: every direct message on Teams starts here.
    with ctx.db.read() as session:
        found = session.connection().execute(_PERSONAL, {"platform": platform, "user": external_id}).first()
        if found is None:
            return None
        platform_, address, kind, name, team, reference = found
        return Place(platform_, address, kind, name, team, dict(reference))


_PERSONAL = (
    sa.select(
        col(Conversation.platform),
        col(Conversation.address),
        col(Conversation.kind),
        col(Conversation.name),
        col(Conversation.team),
        col(Conversation.reference),
    )
    .join(Identity, col(Identity.person_id) == col(Conversation.person_id))
    .where(
        col(Conversation.platform) == sa.bindparam("platform"),
        col(Conversation.kind) == PERSONAL,
        col(Identity.platform) == sa.bindparam("platform"),
        col(Identity.external_id) == sa.bindparam("user"),
    )
    .order_by(col(Conversation.updated_at).desc())
    .limit(1)
)


def remember_members(ctx: Context, platform: str, address: str, members: list[tuple[str, str, str]]) -> int:
    """Record the members a platform listed for the team of conversation `address`, as
    (external id, member id, name); returns how many."""
    with ctx.db.session() as session:
        conversation = _conversation(session, platform, address)
        if conversation is None or conversation.id is None:
            return 0
        listed = {m[0]: m for m in members}  # the last one listed, as when stored one by one
        if not listed:
            return 0
        rows = [
            {
                "platform": platform,
                "external_id": external_id,
                "member_id": member_id,
                "conversation_id": conversation.id,
                "name": visible_name(name) or "",
                "updated_at": ctx.now(),
            }
            for external_id, member_id, name in (listed[e] for e in sorted(listed))
        ]
        # One statement, in one order: two listings of the same team at once neither collide nor
        # deadlock. A name the platform left out keeps the one stored.
        insert = insert_of(session, RosterMember).values(rows)
        new = insert.excluded
        session.execute(
            insert.on_conflict_do_update(
                index_elements=["platform", "external_id"],
                set_={
                    "member_id": new.member_id,
                    "conversation_id": new.conversation_id,
                    "updated_at": new.updated_at,
                    "name": case((new.name == "", col(RosterMember.name)), else_=new.name),
                },
            )
        )
    return len(members)


def roster_entry(ctx: Context, platform: str, external_id: str) -> tuple[str, Place] | None:
    """The member id of someone the bot has no chat with yet, and the team conversation it saw
    them in (which says where and in which tenant to open one)."""
    with ctx.db.session() as session:
        member = session.exec(
            select(RosterMember).where(
                RosterMember.platform == platform, RosterMember.external_id == external_id
            )
        ).first()
        if member is None:
            return None
        conversation = session.get(Conversation, member.conversation_id)
        return (member.member_id, _place(conversation)) if conversation else None


def known(ctx: Context, platform: str | None = None) -> list[Place]:
    """Every conversation the bot knows, channels first."""
    with ctx.db.session() as session:
        query = select(Conversation)
        if platform:
            query = query.where(Conversation.platform == platform)
        rows = session.exec(
            query.order_by(col(Conversation.kind), col(Conversation.team), col(Conversation.name))
        )
        return [_place(r) for r in rows]


def _place(row: Conversation) -> Place:
    return Place(row.platform, row.address, row.kind, row.name, row.team, dict(row.reference))
