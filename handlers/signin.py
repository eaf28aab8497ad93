"""Signing in to the dashboard: `/touchline dashboard` sends a one-time link that starts a browser session."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, update
from sqlmodel import Session, col, select

from handlers import directory
from handlers.context import Actor, Context
from handlers.ui import Reply
from storage.models import GroupMember, Identity, Person, SignInLink, WebSession

LINK_VALID = timedelta(minutes=10)
LINK_KEPT = timedelta(days=1)
SESSION_VALID = timedelta(hours=8)  # a working day; after that, /touchline dashboard again


@dataclass(frozen=True)
class Viewer:
    """Who is looking at the dashboard, with the roles app.yaml gives them now."""

    person_id: int
    name: str
    roles: frozenset[str]

    def has(self, *roles: str) -> bool:
        return bool(self.roles.intersection(roles))

    @property
    def sees_everything(self) -> bool:
        """Leaders, marketers and admins see every section; everyone else the decisions and
        their own objections."""
        return self.has("leader", "marketer", "marketing-lead", "admin")


class NotSignedIn(Exception):
    """The link or session does not open the dashboard; the message says why and what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _hash(token: str) -> str:
    # Only the hash is stored: someone who reads the database still cannot sign in.
    return hashlib.sha256(token.encode()).hexdigest()


def dashboard_link(session: Session, ctx: Context, actor: Actor) -> Reply:
    """`/touchline dashboard`: a link, for the actor alone, that signs them in once within 10 minutes."""
    if not ctx.public_url:
        return Reply(
            text="The dashboard's address is not set up: an admin sets PUBLIC_URL to where browsers "
            "reach Touchline (for example https://touchline.example.com)."
        )
    # Hex: no character that Slack's or Teams' markdown would escape inside the link.
    token = secrets.token_hex(32)
    now = ctx.now()
    session.add(
        SignInLink(
            token_hash=_hash(token), person_id=actor.person_id, created_at=now, expires_at=now + LINK_VALID
        )
    )
    minutes = int(LINK_VALID.total_seconds() // 60)
    return Reply(
        text=f"Your dashboard: {ctx.public_url}/sign-in/{token}\n"
        f"The link works once, for the next {minutes} minutes, and only for you: please don't forward it."
    )


def redeem(ctx: Context, token: str) -> str:
    """Use a sign-in link: returns a new session's token, or raises `NotSignedIn` saying why."""
    now = ctx.now()
    with ctx.db.session() as session:
        # One conditional UPDATE: two clicks racing on the same link cannot both win.
        used = session.execute(
            update(SignInLink)
            .where(
                col(SignInLink.token_hash) == _hash(token),
                col(SignInLink.used_at).is_(None),
                col(SignInLink.expires_at) > now,
            )
            .values(used_at=now)
            .execution_options(synchronize_session=False)
        )
        if used.rowcount != 1:  # type: ignore[attr-defined]
            link = session.get(SignInLink, _hash(token))
            if link is None:
                raise NotSignedIn(
                    "This sign-in link is not one Touchline made. Type /touchline dashboard in chat."
                )
            if link.used_at is not None:
                raise NotSignedIn(
                    "This sign-in link has been used already; each works once. "
                    "Type /touchline dashboard in chat for a new one."
                )
            raise NotSignedIn(
                "This sign-in link has expired (they last 10 minutes). Type /touchline dashboard."
            )
        link = session.get(SignInLink, _hash(token))
        assert link is not None
        session_token = secrets.token_urlsafe(32)
        session.add(
            WebSession(
                token_hash=_hash(session_token),
                person_id=link.person_id,
                created_at=now,
                expires_at=now + SESSION_VALID,
            )
        )
        # Expired links and sessions are of no use to anyone: tidy them as people sign in (a link is
        # kept a day, so that opening it again still says it was used or has expired).
        session.execute(delete(SignInLink).where(col(SignInLink.expires_at) < now - LINK_KEPT))
        session.execute(delete(WebSession).where(col(WebSession.expires_at) < now))
    return session_token


def viewer(ctx: Context, session_token: str) -> Viewer:
    """Who a session belongs to, or `NotSignedIn` when it is unknown or has expired."""
    with ctx.db.session() as session:
        found = session.get(WebSession, _hash(session_token))
        if found is None or _aware(found.expires_at) <= ctx.now():
            raise NotSignedIn("Your session has ended. Type /touchline dashboard in chat for a new link.")
        return viewer_of(session, ctx, found.person_id)


def viewer_of(session: Session, ctx: Context, person_id: int) -> Viewer:
    person = session.get(Person, person_id)
    if person is None:
        raise NotSignedIn("Touchline no longer knows who this session was for. Type /touchline dashboard.")
    identities = session.exec(select(Identity).where(Identity.person_id == person_id)).all()
    groups = [
        g.group_ref for g in session.exec(select(GroupMember).where(GroupMember.person_id == person_id))
    ]
    return Viewer(person_id, person.name, directory.roles_of(ctx.org, person, identities, groups))


def sign_out(ctx: Context, session_token: str) -> None:
    with ctx.db.session() as session:
        session.execute(delete(WebSession).where(col(WebSession.token_hash) == _hash(session_token)))


def _aware(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; Touchline stores UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
