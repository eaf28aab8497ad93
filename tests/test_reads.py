"""Reads without SQLite's write lock: `Database.read()`, `directory.identify` of someone known, `/healthz`."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import pytest
from sqlalchemy import event, func
from sqlalchemy.exc import InternalError, OperationalError
from sqlmodel import select

from bot.config import Environment
from bot.server import Touchline
from handlers import directory, setup
from handlers.context import Context
from handlers.organisation import Organisation
from storage import database
from storage.database import Database, DatabaseUnreachable
from storage.models import Person
from tests.fakes import Clock, rows

WRITES = ("INSERT", "UPDATE", "DELETE", "BEGIN IMMEDIATE", "COMMIT")


@contextmanager
def write_lock_held(sqlite_url: str) -> Iterator[sqlite3.Connection]:
    """Another connection (another process, as far as SQLite knows) holds the write lock until the
    block ends, so whatever returns inside it did not need the lock."""
    holder = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        yield holder
    finally:
        holder.execute("ROLLBACK")
        holder.close()


@contextmanager
def statements(db: Database) -> Iterator[list[str]]:
    """Every statement sent to the database inside the block (SQLAlchemy's, and our BEGINs on
    SQLite), and "COMMIT" for each commit: psycopg sends BEGIN and COMMIT itself, unseen by
    before_cursor_execute, and the ORM sends no UPDATE for values set to what they were, so
    on PostgreSQL only the commit tells a unit of work from a read."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    def committed(_conn: Any) -> None:
        seen.append("COMMIT")

    event.listen(db.engine, "before_cursor_execute", record)
    event.listen(db.engine, "commit", committed)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
        event.remove(db.engine, "commit", committed)


def writes(seen: list[str]) -> list[str]:
    return [s for s in seen if s.lstrip().upper().startswith(WRITES)]


@pytest.fixture
def locked_ctx(
    sqlite_url: str, org: Organisation, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Context]:
    """A context on SQLite whose writers give up at once when the lock is taken: a short busy
    timeout and a single attempt, so a write under the lock fails quickly instead of waiting."""
    monkeypatch.setattr(database, "SQLITE_BUSY_TIMEOUT_MS", 100)
    monkeypatch.setattr(database, "LOCKED_RETRIES", 1)
    ctx = Context(db=Database.from_url(sqlite_url), org=org, clock=clock)
    setup.apply(ctx)
    yield ctx
    ctx.db.dispose()


def test_a_read_goes_on_while_another_connection_holds_the_write_lock(
    locked_ctx: Context, sqlite_url: str
) -> None:
    with write_lock_held(sqlite_url) as holder:
        with locked_ctx.db.read() as session:
            people = session.exec(select(func.count()).select_from(Person)).one()
        assert people == len(locked_ctx.org.people) and holder.in_transaction
        with pytest.raises(OperationalError, match="database is locked"), locked_ctx.db.session() as session:
            session.exec(select(Person)).all()  # a unit of work waits for the lock, here in vain


def test_identify_of_someone_known_and_unchanged_needs_no_write_lock(
    locked_ctx: Context, sqlite_url: str
) -> None:
    first = directory.identify(locked_ctx, "slack", "U0000000001", name="Rita")
    stranger = directory.identify(locked_ctx, "slack", "U0STRANGER1", name="Sam", email="sam@test.example")
    with write_lock_held(sqlite_url) as holder:
        again = directory.identify(locked_ctx, "slack", "U0000000001", name="Rita")
        seen_again = directory.identify(locked_ctx, "slack", "U0STRANGER1", name="Sam")
        assert holder.in_transaction  # they returned while the lock was still taken
        with pytest.raises(DatabaseUnreachable):  # a change has to be written, so it waits
            directory.identify(locked_ctx, "slack", "U0STRANGER1", name="Samuel")
    assert again == first and seen_again == stranger


def test_health_reads_while_another_connection_holds_the_write_lock(
    locked_ctx: Context, sqlite_url: str
) -> None:
    touchline = Touchline(locked_ctx, Environment(database_url=sqlite_url))
    with write_lock_held(sqlite_url):
        health = touchline._health()
    assert health["database"] == "ok" and health["outbox_oldest_seconds"] == 0


def test_a_read_on_sqlite_begins_deferred_and_a_unit_of_work_immediate(locked_ctx: Context) -> None:
    with statements(locked_ctx.db) as seen, locked_ctx.db.read() as session:
        session.exec(select(Person)).all()
    assert seen[0] == "BEGIN" and writes(seen) == []
    with statements(locked_ctx.db) as seen, locked_ctx.db.session() as session:
        session.exec(select(Person)).all()
    assert seen[0] == "BEGIN IMMEDIATE" and seen[-1] == "COMMIT"


@pytest.mark.parametrize(
    ("platform", "user_id", "given"),
    [
        ("console", "rep3", {}),  # configured, with a timezone of their own
        ("slack", "U0000000001", {"name": "rita.r", "timezone": "Asia/Tokyo"}),  # configured: ignored
        ("slack", "U0STRANGER1", {"name": "Sam", "email": "sam@test.example", "timezone": "Europe/Paris"}),
        ("teams", "29:hedda", {"name": "Hedda", "email": "head.marketing@test.example"}),  # a role by email
    ],
)
def test_identify_of_someone_known_and_unchanged_writes_nothing_and_gives_the_same_actor(
    ctx: Context, platform: str, user_id: str, given: dict[str, str]
) -> None:
    written = directory.identify(ctx, platform, user_id, **given)
    with statements(ctx.db) as seen:
        read = directory.identify(ctx, platform, user_id, **given)
        # What a platform leaves out (a Teams reaction carries no e-mail) changes nothing either.
        bare = directory.identify(ctx, platform, user_id)
    assert read == written and bare.person_id == written.person_id and bare.roles == written.roles
    assert seen and writes(seen) == []


def test_a_configured_person_gets_the_platform_timezone_when_app_yaml_gives_none(ctx: Context) -> None:
    directory.identify(ctx, "slack", "U0000000001")
    actor = directory.identify(ctx, "slack", "U0000000001", timezone="Asia/Tokyo")  # the read path
    assert actor.timezone == "Asia/Tokyo" and rows(ctx.db, Person, key="rep1")[0].timezone is None


def test_identify_of_a_changed_name_stores_it(ctx: Context) -> None:
    first = directory.identify(ctx, "slack", "U0STRANGER1", name="Sam", email="sam@test.example")
    with statements(ctx.db) as seen:
        renamed = directory.identify(ctx, "slack", "U0STRANGER1", name="Samuel", email="sam@test.example")
    assert renamed.name == "Samuel" and renamed.person_id == first.person_id
    assert any(s.startswith("UPDATE person") for s in seen)
    assert rows(ctx.db, Person, id=first.person_id)[0].name == "Samuel"


def test_identify_on_another_platform_stores_it_as_the_person_s_home(ctx: Context) -> None:
    slack = directory.identify(ctx, "slack", "U0STRANGER1", name="Sam", email="sam@test.example")
    teams = directory.identify(ctx, "teams", "29:sam", name="Sam", email="sam@test.example")
    assert teams.person_id == slack.person_id
    assert rows(ctx.db, Person, id=slack.person_id)[0].home_platform == "teams"
    directory.identify(ctx, "slack", "U0STRANGER1", name="Sam")  # back on Slack: known, yet home moves
    assert rows(ctx.db, Person, id=slack.person_id)[0].home_platform == "slack"


def test_a_write_inside_a_read_is_not_kept(db: Database) -> None:
    on_postgres = db.engine.dialect.name == "postgresql"
    with db.read() as session:
        session.add(Person(key="ghost", name="Never stored"))
        # SQLite takes it, and the rollback at the end drops it; PostgreSQL refuses it at once.
        with pytest.raises(InternalError, match="read-only") if on_postgres else nullcontext():
            session.flush()
    assert rows(db, Person, key="ghost") == []
    with db.session() as session:  # and nothing of it is left holding a lock or a transaction
        session.add(Person(key="kept", name="Kept"))
    assert [p.key for p in rows(db, Person)] == ["kept"]


def test_what_a_read_loaded_stays_readable_after_it(db: Database) -> None:
    with db.session() as session:
        session.add(Person(key="kept", name="Kept"))
    with db.read() as session:
        person = session.exec(select(Person)).one()
    assert person.name == "Kept" and person.key == "kept"


def test_a_read_of_a_database_that_cannot_be_opened_is_unreachable(tmp_path: Any) -> None:
    db = Database.from_url(f"sqlite:///{tmp_path}/missing/touchline.db")
    with pytest.raises(DatabaseUnreachable), db.read() as session:
        session.exec(select(Person)).all()
    db.dispose()
