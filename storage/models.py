"""Touchline's tables: people and audiences, decisions and what the field said, the outbox, the audit log."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    Float,
    Index,
    LargeBinary,
    MetaData,
    Table,
    Text,
    Unicode,
    UniqueConstraint,
    false,
)
from sqlmodel import Field, SQLModel

# Named constraints keep Alembic's batch migrations on SQLite deterministic.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata: MetaData = SQLModel.metadata


class Person(SQLModel, table=True):
    """Someone Touchline knows: from `app.yaml`, or first seen on a platform.

    No timestamps on purpose: when a person was first or last seen could re-link them to
    an anonymous concern sent at the same moment.
    """

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(unique=True, max_length=200)
    name: str = Field(max_length=200)
    email: str | None = Field(default=None, max_length=320, index=True)
    timezone: str | None = Field(default=None, max_length=64)
    # The platform the person last used, where direct messages go first.
    home_platform: str | None = Field(default=None, max_length=16)
    from_config: bool = False


class Identity(SQLModel, table=True):
    """A person's user id on one platform (Slack `U…`, Teams AAD id, console name)."""

    __table_args__ = (UniqueConstraint("platform", "external_id"),)

    id: int | None = Field(default=None, primary_key=True)
    person_id: int = Field(foreign_key="person.id", index=True, ondelete="CASCADE")
    platform: str = Field(max_length=16)
    external_id: str = Field(max_length=200)


class Audience(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(unique=True, max_length=64)
    label: str = Field(default="", max_length=200)


class AudienceTarget(SQLModel, table=True):
    """Where an audience is reached: a Slack channel, a Teams conversation, a console channel."""

    __table_args__ = (UniqueConstraint("audience_id", "platform", "address"),)

    id: int | None = Field(default=None, primary_key=True)
    audience_id: int = Field(foreign_key="audience.id", index=True, ondelete="CASCADE")
    platform: str = Field(max_length=16)
    address: str = Field(max_length=300)


class AudienceMember(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("audience_id", "person_id"),)

    id: int | None = Field(default=None, primary_key=True)
    audience_id: int = Field(foreign_key="audience.id", index=True, ondelete="CASCADE")
    person_id: int = Field(foreign_key="person.id", index=True, ondelete="CASCADE")
    source: str = Field(default="config", max_length=16)


class GroupMember(SQLModel, table=True):
    """Who is in a platform's user group that app.yaml names (`slack-group:S…`), as last read."""

    __table_args__ = (UniqueConstraint("group_ref", "person_id"),)

    id: int | None = Field(default=None, primary_key=True)
    group_ref: str = Field(max_length=64, index=True)
    person_id: int = Field(foreign_key="person.id", index=True, ondelete="CASCADE")


class Decision(SQLModel, table=True):
    """A strategy decision: what, why, and the guardrails reps work within."""

    id: int | None = Field(default=None, primary_key=True)
    title: str = Field(max_length=200)
    decision: str = Field(sa_column=Column(Text, nullable=False))
    why: str = Field(sa_column=Column(Text, nullable=False))
    reps_may: str = Field(default="", sa_column=Column(Text, nullable=False))
    reps_may_not: str = Field(default="", sa_column=Column(Text, nullable=False))
    effective_on: date
    review_on: date | None = None
    author_id: int = Field(foreign_key="person.id", index=True)
    created_at: datetime
    status: str = Field(default="active", max_length=16, index=True)
    supersedes_id: int | None = Field(default=None, foreign_key="decision.id")
    reminded_at: datetime | None = None


class DecisionAudience(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("decision_id", "audience_id"),)

    id: int | None = Field(default=None, primary_key=True)
    decision_id: int = Field(foreign_key="decision.id", index=True, ondelete="CASCADE")
    audience_id: int = Field(foreign_key="audience.id", index=True)


class Acknowledgement(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("decision_id", "person_id"),)

    id: int | None = Field(default=None, primary_key=True)
    decision_id: int = Field(foreign_key="decision.id", index=True, ondelete="CASCADE")
    person_id: int = Field(foreign_key="person.id", index=True, ondelete="CASCADE")
    at: datetime


class Question(SQLModel, table=True):
    """A question or a concern from the field about a decision.

    An anonymous concern has no `asker_id` and only the day it was asked, so nothing in
    the row leads back to its sender.
    """

    id: int | None = Field(default=None, primary_key=True)
    decision_id: int = Field(foreign_key="decision.id", index=True, ondelete="CASCADE")
    kind: str = Field(max_length=16)  # "question" | "concern"
    asker_id: int | None = Field(default=None, foreign_key="person.id", ondelete="SET NULL")
    text: str = Field(sa_column=Column(Text, nullable=False))
    asked_at: datetime
    answer: str | None = Field(default=None, sa_column=Column(Text))
    answered_by_id: int | None = Field(default=None, foreign_key="person.id", ondelete="SET NULL")
    answered_at: datetime | None = None


class Conversation(SQLModel, table=True):
    """A place on a platform where the bot may post later, unasked: a channel, a group chat, or
    a 1:1 chat with one person (`person_id`). `reference` is the platform's own JSON for
    reaching it again (Teams' ConversationReference); Touchline never looks inside."""

    __table_args__ = (UniqueConstraint("platform", "address"),)

    id: int | None = Field(default=None, primary_key=True)
    platform: str = Field(max_length=16)
    address: str = Field(max_length=300)
    kind: str = Field(max_length=16)  # channel, group, personal
    name: str = Field(default="", max_length=200)
    team: str = Field(default="", max_length=200)
    person_id: int | None = Field(default=None, foreign_key="person.id", index=True, ondelete="CASCADE")
    reference: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    updated_at: datetime


class RosterMember(SQLModel, table=True):
    """Someone a platform listed as a member of a team the bot is in: enough to open a 1:1 chat
    with them before they ever write to the bot."""

    __table_args__ = (UniqueConstraint("platform", "external_id"),)

    id: int | None = Field(default=None, primary_key=True)
    platform: str = Field(max_length=16)
    external_id: str = Field(max_length=200)  # Teams: the AAD object id, as app.yaml names people
    member_id: str = Field(max_length=300)  # Teams: the `29:…` id a conversation is opened with
    conversation_id: int = Field(foreign_key="conversation.id", index=True, ondelete="CASCADE")
    name: str = Field(default="", max_length=200)
    updated_at: datetime


class SignInLink(SQLModel, table=True):
    """A one-time link to the dashboard that `/touchline dashboard` sent someone. Only a hash of
    the token is kept, so the table alone opens nothing."""

    token_hash: str = Field(primary_key=True, max_length=64)
    person_id: int = Field(foreign_key="person.id", index=True, ondelete="CASCADE")
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None = None


class WebSession(SQLModel, table=True):
    """A signed-in browser: started by a sign-in link, ended by its expiry or by signing out."""

    token_hash: str = Field(primary_key=True, max_length=64)
    person_id: int = Field(foreign_key="person.id", index=True, ondelete="CASCADE")
    created_at: datetime
    expires_at: datetime = Field(index=True)


class Outbox(SQLModel, table=True):
    """A message Touchline owes a channel or a person, written with the change that caused it.

    `kind` is `post` (to a channel), `direct` (to a person) or `update` (of the message
    that `updates_id` posted). `message_ref` is the platform's id of what was sent
    (Slack `ts`, Teams activity id), kept so that the card can be updated later.
    """

    __table_args__ = (
        # A conversation's messages still owed, and which of them wait: read at every claim, so
        # that none is claimed ahead of an earlier one (`outbox.claim_due`). It serves every lookup
        # by platform too, which therefore has no index of its own.
        Index("ix_outbox_platform_address_status_due_at", "platform", "address", "status", "due_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=16)
    platform: str = Field(max_length=16)
    address: str = Field(max_length=300)
    card: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    subject: str = Field(default="", max_length=64, index=True)  # e.g. "decision:12"
    updates_id: int | None = Field(default=None, foreign_key="outbox.id", index=True)
    status: str = Field(default="pending", max_length=16, index=True)
    attempts: int = 0
    due_at: datetime
    claimed_at: datetime | None = None
    created_at: datetime
    sent_at: datetime | None = None
    message_ref: str | None = Field(default=None, max_length=200)
    error: str | None = Field(default=None, max_length=1000)
    # Who caused a channel post, to be told if it cannot be delivered.
    sender_id: int | None = Field(default=None, foreign_key="person.id", ondelete="SET NULL")


class InboundEvent(SQLModel, table=True):
    """Platform event ids already handled, so a platform's retry is not handled twice."""

    __table_args__ = (UniqueConstraint("platform", "event_id"),)

    id: int | None = Field(default=None, primary_key=True)
    platform: str = Field(max_length=16)
    event_id: str = Field(max_length=200)
    received_at: datetime = Field(index=True)


class InboxItem(SQLModel, table=True):
    """Something a person did in chat, stored before the platform was told it arrived, until it is done.

    `fields` holds only what doing it needs (who, which button or command, where to answer), and is
    erased in the transaction that does it; `claimed_by` and `claimed_until` say which process is
    doing it, so that another takes it over when that one dies."""

    __table_args__ = (UniqueConstraint("platform", "key"),)

    id: int | None = Field(default=None, primary_key=True)
    platform: str = Field(max_length=16)
    key: str = Field(max_length=200)  # the platform's event id, or the request's own
    kind: str = Field(max_length=16)
    fields: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    received_at: datetime = Field(index=True)
    done: bool = Field(default=False, index=True)
    attempts: int = 0
    claimed_by: str | None = Field(default=None, max_length=64)
    claimed_until: datetime | None = None


class AuditEntry(SQLModel, table=True):
    """Who changed what, for admins; never written for anonymous acts."""

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(index=True)
    actor_id: int | None = Field(default=None, foreign_key="person.id", ondelete="SET NULL")
    action: str = Field(max_length=64)
    subject: str = Field(default="", max_length=64)
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class Theme(SQLModel, table=True):
    """What objections are about. It keeps its id and name as objections join it; marketers
    rename, merge and split themes. `key` ties it to a theme of app.yaml's taxonomy (with its
    cue words); themes found in what reps write have none. `profile` is the grouping's
    summary of its objections (word weights, or a sentence embedding's running sum)."""

    id: int | None = Field(default=None, primary_key=True)
    key: str | None = Field(default=None, unique=True, max_length=64)
    name: str = Field(unique=True, max_length=64)
    cues: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    origin: str = Field(default="found", max_length=16)  # taxonomy, found, unnamed, named, split
    merged_into_id: int | None = Field(default=None, foreign_key="theme.id")
    size: int = 0
    profile: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime
    last_heard_at: datetime | None = Field(default=None, index=True)


class Objection(SQLModel, table=True):
    """What a customer said, as a rep heard it, with its theme and the group of like objections.

    `group_id` is the first objection of its group: objections that say the same thing
    share it, so that one theme shows many voices instead of many lines. A confidential
    objection is shown only to marketing leads, and never with its reporter's name.
    """

    __table_args__ = (
        Index("ix_objection_theme_id_created_at", "theme_id", "created_at"),
        # The Nth-rep count reads a group's month and its reps from this index alone; it also
        # serves every lookup by group_id, which therefore has no index of its own.
        Index("ix_objection_group_id_created_at_reporter_id", "group_id", "created_at", "reporter_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    text: str = Field(sa_column=Column(Text, nullable=False))
    theme_id: int = Field(foreign_key="theme.id")
    group_id: int | None = None
    competitor: str | None = Field(default=None, max_length=100)
    segment: str | None = Field(default=None, max_length=100)
    product: str | None = Field(default=None, max_length=100)
    deal_stage: str | None = Field(default=None, max_length=100)
    deal_size: str | None = Field(default=None, max_length=100)
    deal_link: str | None = Field(default=None, max_length=500)
    severity: str = Field(default="medium", max_length=16)
    confidential: bool = False
    # A marketer put it in its theme (moved it, split it off, merged or renamed its theme): a
    # regrouping leaves it there, and it teaches its theme what belongs in it.
    placed: bool = Field(default=False, sa_column_kwargs={"server_default": false()})
    reporter_id: int | None = Field(default=None, foreign_key="person.id", index=True, ondelete="SET NULL")
    created_at: datetime = Field(index=True)
    updated_at: datetime | None = None


class Asset(SQLModel, table=True):
    """Something marketing gives the field (a deck, a battlecard, ...), or a draft of it out for input."""

    id: int | None = Field(default=None, primary_key=True)
    title: str = Field(max_length=200)
    link: str = Field(max_length=500)
    kind: str = Field(max_length=32)
    key_message: str = Field(sa_column=Column(Text, nullable=False))
    decision_id: int | None = Field(default=None, foreign_key="decision.id", ondelete="SET NULL")
    themes: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))  # Theme ids
    owner_id: int = Field(foreign_key="person.id", index=True)
    status: str = Field(default="published", max_length=16, index=True)  # "draft" | "published"
    input_until: datetime | None = None  # a draft's deadline for the field's input
    input_closed_at: datetime | None = None
    created_at: datetime
    published_at: datetime | None = None


class AssetAudience(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("asset_id", "audience_id"),)

    id: int | None = Field(default=None, primary_key=True)
    asset_id: int = Field(foreign_key="asset.id", index=True, ondelete="CASCADE")
    audience_id: int = Field(foreign_key="audience.id", index=True)


class AssetFeedback(SQLModel, table=True):
    """*Useful*, *Used with a customer* or *Doesn't fit the field* (with why), once each per person."""

    __table_args__ = (UniqueConstraint("asset_id", "person_id", "kind"),)

    id: int | None = Field(default=None, primary_key=True)
    asset_id: int = Field(foreign_key="asset.id", index=True, ondelete="CASCADE")
    person_id: int = Field(foreign_key="person.id", index=True, ondelete="CASCADE")
    kind: str = Field(max_length=16)  # "useful" | "used" | "doesnt-fit"
    reason: str | None = Field(default=None, sa_column=Column(Text))
    at: datetime


class Suggestion(SQLModel, table=True):
    """A change the field suggests to a draft asset, delivered to its owner at the deadline."""

    id: int | None = Field(default=None, primary_key=True)
    asset_id: int = Field(foreign_key="asset.id", index=True, ondelete="CASCADE")
    person_id: int | None = Field(default=None, foreign_key="person.id", ondelete="SET NULL")
    text: str = Field(sa_column=Column(Text, nullable=False))
    at: datetime


class PulseRun(SQLModel, table=True):
    """One sending of a pulse survey: its questions and minimum group sizes as they were when it opened.

    `slot` is the local wall-clock time the survey was scheduled for ("2026-12-01T10:00"): each
    person is invited at that time where they are, and the slot names the run for all of them.
    """

    __table_args__ = (UniqueConstraint("survey", "slot"),)

    id: int | None = Field(default=None, primary_key=True)
    survey: str = Field(max_length=64, index=True)
    slot: str = Field(max_length=32)
    title: str = Field(max_length=200)
    questions: list[dict[str, Any]] = Field(sa_column=Column(JSON, nullable=False))
    min_group_size: int
    min_group_size_comments: int
    status: str = Field(default="open", max_length=16, index=True)  # "open" | "closed"
    opened_at: datetime
    closes_at: datetime
    closed_at: datetime | None = None


class PulseInvitation(SQLModel, table=True):
    """Who was invited to a run, and whether they have answered: never what they answered."""

    __table_args__ = (UniqueConstraint("run_id", "person_id"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="pulserun.id", index=True, ondelete="CASCADE")
    person_id: int = Field(foreign_key="person.id", index=True, ondelete="CASCADE")
    due_at: datetime
    reminded: bool = False
    answered: bool = False


class PulseBallot(SQLModel, table=True):
    """One person's answers to a run, sealed, until the run closes and they are mixed.

    Written in the same transaction that marks the invitation answered (so nothing is lost and
    nobody answers twice), and so tied to it by anyone reading the files (PostgreSQL's `xmin`,
    SQLite's `-wal`): which is why it is sealed with a key that never enters the database, and
    padded to one length per run. It holds no person and no time; closing the run opens every
    ballot, writes the answers as new rows in a shuffled order and deletes the ballots.
    """

    __table_args__ = {"sqlite_with_rowid": False}

    id: str = Field(primary_key=True, max_length=32)
    run_id: int = Field(foreign_key="pulserun.id", index=True, ondelete="CASCADE")
    key_id: str = Field(max_length=16)
    sealed: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class PulseAnswer(SQLModel, table=True):
    """One answer to one question, with nothing that leads back to who gave it.

    Written only when the run closes, all of a run's at once, in a shuffled order: no person,
    no invitation, no time at all, a random id and, on SQLite, no hidden rowid, so neither
    ids, storage order nor the transaction that wrote it follow who answered or when. `side`
    (sales, marketing) and `audience` are kept only when every such group of the question
    holds enough answers to be shown; a question with fewer answers than the minimum keeps none.
    """

    __table_args__ = {"sqlite_with_rowid": False}

    id: str = Field(primary_key=True, max_length=32)
    run_id: int = Field(foreign_key="pulserun.id", index=True, ondelete="CASCADE")
    question: str = Field(max_length=64)
    side: str = Field(max_length=16)
    audience: str = Field(default="", max_length=64)
    number: int | None = None
    choice: str | None = Field(default=None, max_length=100)
    text: str | None = Field(default=None, sa_column=Column(Text))


class SealedConcern(SQLModel, table=True):
    """An anonymous concern on its way to the decision's author, sealed until the day's delivery.

    It is written when it is sent, and the moment of a write can be read off the database
    files; so it waits here unreadable, holding no person and no time, until the daily round
    opens every waiting concern and gives each its number, its day and its message at once.
    """

    __table_args__ = {"sqlite_with_rowid": False}

    id: str = Field(primary_key=True, max_length=32)
    key_id: str = Field(max_length=16)
    sealed: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class SchedulerLease(SQLModel, table=True):
    """Which process runs the scheduler: the holder renews `expires_at` while it lives."""

    name: str = Field(primary_key=True, max_length=64)
    holder: str = Field(max_length=200)
    expires_at: datetime


class SchedulerRun(SQLModel, table=True):
    """Each time a scheduled job ran (or was missed), by which process, for operators and tests."""

    id: int | None = Field(default=None, primary_key=True)
    job_id: str = Field(max_length=200, index=True)
    scheduled_for: datetime
    holder: str = Field(max_length=200)
    outcome: str = Field(max_length=16)  # "ran" | "failed" | "missed"
    at: datetime = Field(index=True)


class DigestIssue(SQLModel, table=True):
    """A weekly digest that went out: one per period, however often the scheduler asks."""

    id: int | None = Field(default=None, primary_key=True)
    period_start: date
    period_end: date = Field(unique=True)
    created_at: datetime


# APScheduler's own job table, declared here so that our migrations create it and Alembic
# knows it is ours (APScheduler's SQLAlchemyJobStore would otherwise create it on its own).
apscheduler_jobs = Table(
    "apscheduler_jobs",
    metadata,
    Column("id", Unicode(191), primary_key=True),
    Column("next_run_time", Float(25), index=True),
    Column("job_state", LargeBinary, nullable=False),
)
