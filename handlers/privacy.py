"""Forgetting a person on request, and keeping objections no longer than app.yaml allows."""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete, func, update
from sqlmodel import Session, col, select

from handlers import themes
from handlers.context import Context, Refusal
from storage import inbound_events, inbox
from storage.database import serialize
from storage.models import (
    Acknowledgement,
    AssetFeedback,
    AudienceMember,
    AuditEntry,
    Conversation,
    GroupMember,
    Identity,
    Objection,
    Outbox,
    Person,
    PulseInvitation,
    Question,
    RosterMember,
    SignInLink,
    Suggestion,
    Theme,
    WebSession,
)

FORGOTTEN = "A former colleague"


@dataclass
class Forgotten:
    """What `forget` changed, table by table, for the admin who asked."""

    name: str
    changes: dict[str, int] = field(default_factory=dict)
    still_configured: bool = False

    def lines(self) -> list[str]:
        said = [f"Forgot {self.name}:"]
        said += [f"  {what}: {n}" for what, n in self.changes.items() if n]
        if self.still_configured:
            said.append(
                "  They are still in app.yaml: remove them there too, or Touchline will know them "
                "again (with none of this history) at its next start."
            )
        return said


def find_person(session: Session, who: str) -> Person:
    """A person by their key in app.yaml, `slack:U…` / `teams:…`, or e-mail address."""
    platform, _, external_id = who.partition(":")
    person = session.exec(select(Person).where(Person.key == who)).first()
    if person is None and external_id:
        identity = session.exec(
            select(Identity).where(Identity.platform == platform, Identity.external_id == external_id)
        ).first()
        person = session.get(Person, identity.person_id) if identity else None
    if person is None and "@" in who:
        person = session.exec(select(Person).where(func.lower(Person.email) == who.lower())).first()
    if person is None:
        raise Refusal(
            f"Touchline knows nobody as {who[:80]!r} (give their key, slack:U…, teams:… or e-mail)."
        )
    return person


def forget(ctx: Context, who: str) -> Forgotten:
    """Erase what Touchline holds about one person, in one transaction.

    What they said stays, without them: objections keep their text and lose their reporter;
    questions and suggestions lose their author. What exists only because of them goes:
    acknowledgements, asset feedback, pulse invitations (their answers never named them),
    memberships, platform identities, direct messages to them, sign-in links and sessions.
    The person row itself stays as an empty, nameless row, so that decisions and assets they
    authored still have an author: "A former colleague".
    """
    with ctx.db.session() as session:
        serialize(session, "privacy.forget")
        person = find_person(session, who)
        person_id = person.id
        assert person_id is not None
        found = Forgotten(person.name, still_configured=person.from_config and person.key in ctx.org.people)
        identities = session.exec(select(Identity).where(col(Identity.person_id) == person_id)).all()
        addresses = [i.external_id for i in identities]
        changes = found.changes

        def count(what: str, result: object) -> None:
            changes[what] = changes.get(what, 0) + int(result.rowcount)  # type: ignore[attr-defined]

        count(
            "objections kept, reporter removed",
            session.execute(
                update(Objection).where(col(Objection.reporter_id) == person_id).values(reporter_id=None)
            ),
        )
        count(
            "questions kept, asker removed",
            session.execute(
                update(Question).where(col(Question.asker_id) == person_id).values(asker_id=None)
            ),
        )
        session.execute(
            update(Question).where(col(Question.answered_by_id) == person_id).values(answered_by_id=None)
        )
        count(
            "suggestions kept, author removed",
            session.execute(
                update(Suggestion).where(col(Suggestion.person_id) == person_id).values(person_id=None)
            ),
        )
        count(
            "acknowledgements deleted",
            session.execute(delete(Acknowledgement).where(col(Acknowledgement.person_id) == person_id)),
        )
        count(
            "asset feedback deleted",
            session.execute(delete(AssetFeedback).where(col(AssetFeedback.person_id) == person_id)),
        )
        count(
            "pulse invitations deleted",
            session.execute(delete(PulseInvitation).where(col(PulseInvitation.person_id) == person_id)),
        )
        # Direct messages to them, with the updates of those messages first (they point at them).
        direct = select(Outbox.id).where(Outbox.kind == "direct", col(Outbox.address).in_(addresses))
        session.execute(delete(Outbox).where(col(Outbox.updates_id).in_(direct)))
        count("direct messages deleted", session.execute(delete(Outbox).where(col(Outbox.id).in_(direct))))
        session.execute(update(Outbox).where(col(Outbox.sender_id) == person_id).values(sender_id=None))
        session.execute(update(AuditEntry).where(col(AuditEntry.actor_id) == person_id).values(actor_id=None))
        for model in (AudienceMember, GroupMember):
            count(
                "memberships deleted", session.execute(delete(model).where(col(model.person_id) == person_id))
            )
        for access in (SignInLink, WebSession):
            count(
                "sign-in links and sessions deleted",
                session.execute(delete(access).where(col(access.person_id) == person_id)),
            )
        count(
            "chats and team rosters deleted",
            session.execute(delete(Conversation).where(col(Conversation.person_id) == person_id)),
        )
        if addresses:
            count(
                "chats and team rosters deleted",
                session.execute(delete(RosterMember).where(col(RosterMember.external_id).in_(addresses))),
            )
        count(
            "platform identities deleted",
            session.execute(delete(Identity).where(col(Identity.person_id) == person_id)),
        )
        person.key = f"forgotten:{person_id}"
        person.name, person.email, person.timezone, person.home_platform = FORGOTTEN, None, None, None
        person.from_config = False
        session.add(person)
    return found


def apply_retention(ctx: Context) -> int:
    """Delete the objections older than `objections.keep_for_months`; returns how many went."""
    months = ctx.org.objections.keep_for_months
    if months is None:
        return 0
    cutoff = months_before(ctx.now(), months)
    with ctx.db.read() as session:
        losing = session.exec(
            select(Objection.theme_id).where(col(Objection.created_at) < cutoff).distinct()
        ).all()
    themes.prepare_rebuild(ctx, list(losing), since=cutoff)
    with ctx.db.session() as session:
        serialize(session, "privacy.retention")
        touched = set(
            session.exec(
                select(Objection.theme_id).where(col(Objection.created_at) < cutoff).distinct()
            ).all()
        )
        gone = session.execute(delete(Objection).where(col(Objection.created_at) < cutoff))
        for theme in session.exec(select(Theme).where(col(Theme.id).in_(touched))):
            themes.rebuild(session, ctx, theme)
    return int(gone.rowcount)  # type: ignore[attr-defined]


RECEIVED_KEPT = timedelta(days=1)  # past any retry a platform sends of an event


def forget_received(ctx: Context) -> int:
    """What was received and done (the inbox's ids, the events heard) goes after a day: kept only
    so that a platform's retry of it is recognised. Returns how many went."""
    cutoff = ctx.now() - RECEIVED_KEPT
    with ctx.db.session() as session:
        return inbox.forget_done_before(session, cutoff) + inbound_events.forget_before(session, cutoff)


def months_before(moment: datetime, months: int) -> datetime:
    """The same day and time `months` calendar months earlier (the month's last day if it is shorter)."""
    year, month = divmod(moment.year * 12 + moment.month - 1 - months, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return moment.replace(year=year, month=month + 1, day=min(moment.day, last))
