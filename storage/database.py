"""The database: an engine for SQLite or PostgreSQL, units of work, and the migration check."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, TextClause, bindparam, create_engine, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlmodel import Session, SQLModel

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"
DEFAULT_URL = "sqlite:///touchline.db"
SQLITE_BUSY_TIMEOUT_MS = 10_000
LOCKED_RETRIES = 4  # SQLite: a unit of work that waited out the busy timeout starts again
# The execution option that marks the connections of Database.read() (see _tune_sqlite).
READ_ONLY_OPTION = "touchline_read"
T = TypeVar("T")


class DatabaseNotReady(Exception):
    """The database is unreachable or not migrated; the message says what fixes it."""


def normalise_url(url: str) -> str:
    """Accept the common spellings of a PostgreSQL URL and use psycopg 3 for all of them."""
    for prefix in ("postgres://", "postgresql://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def safe_url(url: str) -> str:
    """The URL with any password hidden, fit for messages and logs."""
    try:
        return make_url(normalise_url(url)).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable DATABASE_URL>"


def make_engine(url: str = DEFAULT_URL, **kwargs: Any) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False}, **kwargs)
        _tune_sqlite(engine)
        return engine
    # As many connections as the threads that use them (delivery.concurrency sends and the inbox's
    # work, 40 by default): SQLAlchemy's default of 15 has the rest queue for a connection.
    kwargs.setdefault("pool_size", 20)
    kwargs.setdefault("max_overflow", 30)
    return create_engine(url, pool_pre_ping=True, **kwargs)


def _tune_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let us issue BEGIN ourselves (see on_begin); pysqlite's own handling defers it.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
        if engine.url.database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection: Any) -> None:
        if connection.get_execution_options().get(READ_ONLY_OPTION):
            # Database.read(): it never writes, so it needs no write lock and, with WAL, reads
            # its snapshot while a writer holds the lock instead of queueing behind it.
            connection.exec_driver_sql("BEGIN")
            return
        # A deferred transaction that reads and then writes fails at once with "database is
        # locked" when another writer got in between; taking the write lock up front makes
        # concurrent writers wait their turn (busy_timeout) instead.
        connection.exec_driver_sql("BEGIN IMMEDIATE")


class Database:
    """Hands out units of work: `with db.session() as s: ...` commits on success, else rolls back."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._reader = _read_only_engine(engine)
        # SQLite has one writer. Its busy handler wakes waiters on a timer, not in turn: with many
        # threads writing, one can wait seconds while others get in. Writers of this process
        # take turns here first, the urgent (what a platform waits for) ahead of the rest; other
        # processes still meet SQLite's own lock.
        self._turns = WriteTurns() if engine.dialect.name == "sqlite" else None

    @classmethod
    def from_url(cls, url: str) -> Database:
        return cls(make_engine(url))

    @contextmanager
    def session(self, *, urgent: bool = False) -> Iterator[Session]:
        with self._turn(urgent), Session(self.engine, expire_on_commit=False) as session:
            try:
                yield session
                session.commit()
            except (OperationalError, InterfaceError) as error:
                with contextlib.suppress(Exception):  # the connection may be gone with the server
                    session.rollback()
                if _unreachable(error) and not _contended(error):
                    raise DatabaseUnreachable(type(error.orig or error).__name__) from error
                raise
            except BaseException:
                session.rollback()
                raise

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reads only: `with db.read() as s: ...` never commits. On SQLite it begins
        a deferred transaction, so it does not wait for (or hold up) writers; on PostgreSQL the
        transaction is READ ONLY. It is always rolled back: a write in it is never stored (on
        PostgreSQL it fails at once), so use `session()` or `run()` for anything that writes.
        What it read stays loaded on the objects after the block."""
        with Session(self._reader, expire_on_commit=False) as session:
            try:
                yield session
            except (OperationalError, InterfaceError) as error:
                if _unreachable(error) and not _contended(error):
                    raise DatabaseUnreachable(type(error.orig or error).__name__) from error
                raise
            finally:
                _end_read(session)

    @contextmanager
    def _turn(self, urgent: bool) -> Iterator[None]:
        if self._turns is None:
            yield
            return
        self._turns.acquire(urgent=urgent)
        try:
            yield
        finally:
            self._turns.release()

    def run(self, body: Callable[[Session], T], *, urgent: bool = False) -> T:
        """`body` as one unit of work; started again when SQLite's write lock stayed taken past the
        busy timeout (under a flood of writers SQLite's busy handler serves no queue, so one can
        wait that long), or when PostgreSQL chose it as a deadlock's or a serialisation's loser.
        Nothing of a failed attempt was stored: `body` may only touch the database, never send.
        A lock held past every attempt is `DatabaseUnreachable`, as an outage is."""
        for attempt in range(LOCKED_RETRIES):
            try:
                with self.session(urgent=urgent) as session:
                    return body(session)
            except OperationalError as error:
                if not _contended(error):
                    raise
                if attempt == LOCKED_RETRIES - 1:
                    if "database is locked" in str(error):
                        raise DatabaseUnreachable("the database stayed locked") from error
                    raise
                log.warning("the database was contended; trying again (attempt %d)", attempt + 2)
                time.sleep(random.uniform(0.05, 0.2) * 2**attempt)
        raise AssertionError("unreachable")

    def dispose(self) -> None:
        self.engine.dispose()


def _read_only_engine(engine: Engine) -> Engine:
    """The same engine and pool, its connections marked for Database.read()."""
    options: dict[str, Any] = {READ_ONLY_OPTION: True}
    if engine.dialect.name == "postgresql":
        # psycopg then begins with BEGIN READ ONLY: no extra round trip, and a write fails loudly.
        # The pool resets the setting when the connection is handed back.
        options["postgresql_readonly"] = True
    return engine.execution_options(**options)


def _end_read(session: Session) -> None:
    # Closing rolls the transaction back without expiring what was loaded (rollback() would, and
    # the objects, detached by then, could no longer be read). A failure here, the connection
    # gone with the server, cannot undo reads already made, and must not hide the body's error.
    with contextlib.suppress(Exception):
        session.close()


class WriteTurns:
    """One writer at a time within this process, urgent ones first, each kind in the order it
    came; a thread already holding its turn may open another session (re-entrant)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holder: int | None = None
        self._depth = 0
        # Each waiter sleeps on a gate of its own, and a release opens exactly one: waking every
        # waiter (a condition's notify_all) to let one through had dozens of threads take the
        # GIL only to sleep again, on every write, when a burst queued them.
        self._urgent: deque[tuple[int, threading.Lock]] = deque()
        self._rest: deque[tuple[int, threading.Lock]] = deque()

    def acquire(self, *, urgent: bool) -> None:
        me = threading.get_ident()
        with self._lock:
            if self._holder == me:
                self._depth += 1
                return
            if self._holder is None:  # nobody holds it, so nobody waits: a release hands it on
                self._holder, self._depth = me, 1
                return
            gate = threading.Lock()
            gate.acquire()
            (self._urgent if urgent else self._rest).append((me, gate))
        gate.acquire()  # opened by the release that made this thread the holder

    def release(self) -> None:
        with self._lock:
            self._depth -= 1
            if self._depth:
                return
            waiting = self._urgent or self._rest
            if not waiting:
                self._holder = None
                return
            self._holder, gate = waiting.popleft()
            self._depth = 1
            gate.release()


class DatabaseUnreachable(Exception):
    """The database cannot be reached (its server gone, the session killed, a file that cannot be
    opened, SQLite's lock held past every retry): what failed may be tried again once it is back.
    Not a bug, so no stack trace; a missing table or a broken query is not this."""


UNREACHABLE = DatabaseUnreachable


def _unreachable(error: OperationalError | InterfaceError) -> bool:
    if isinstance(error, InterfaceError):
        return True
    state = getattr(error.orig, "sqlstate", None)
    if state:  # PostgreSQL: a connection exception, or the server shutting the session down
        return str(state).startswith("08") or state in ("57P01", "57P02", "57P03")
    if type(error.orig).__module__.startswith("psycopg"):
        return True  # the client's own: the connection failed or was lost, before any answer
    message = str(error.orig).lower()
    return any(m in message for m in ("unable to open database", "disk i/o error", "database is locked"))


def _contended(error: OperationalError | InterfaceError) -> bool:
    """SQLite's write lock held past the busy timeout, or PostgreSQL's deadlock or serialisation
    failure: the transaction lost a race, and starting it again is the cure."""
    if "database is locked" in str(error):
        return True
    return getattr(error.orig, "sqlstate", None) in ("40P01", "40001")


def insert_of(session: Session, model: type[SQLModel]) -> postgresql.Insert | sqlite.Insert:
    """An INSERT into `model`'s table that can say ON CONFLICT, in the session's SQL dialect:
    where two units of work may add the same row at once, the database decides, not a read."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(model)
    return sqlite.insert(model)


def insert_new(model: type[SQLModel], columns: Sequence[str], unique: Sequence[str]) -> TextClause:
    """`INSERT … ON CONFLICT (unique) DO NOTHING RETURNING id` into `model`'s table, for the
    `columns` bound by name with their types: no row comes back when one with the same `unique`
    columns is there (or, on PostgreSQL, is being added by a transaction it then waits for). As
    text, built once: SQLAlchemy never caches a dialect's INSERT … ON CONFLICT, and compiling it
    afresh for every request was a quarter of `serve`'s CPU under a burst (py-spy)."""
    table = model.__table__  # type: ignore[attr-defined]
    return text(
        f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({', '.join(':' + c for c in columns)}) "
        f"ON CONFLICT ({', '.join(unique)}) DO NOTHING RETURNING id"
    ).bindparams(*(bindparam(name, type_=table.c[name].type) for name in columns))


def serialize(session: Session, name: str) -> None:
    """Hold a database-wide lock named `name` until this transaction ends, so that processes
    doing the same whole-table work (syncing app.yaml at start) take turns. SQLite already
    runs one writer at a time."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _lock_key(name, 8)})


# The two-number keys of PostgreSQL's advisory locks are apart from the one-number keys above.
CHANGES = 0x746C6368  # the namespace of `changing` and `nothing_changing`


def _lock_key(name: str, size: int) -> int:
    """An advisory lock's key for `name`: the same in every process, `size` bytes (8: one bigint
    key; 4: the second of two integer keys)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:size], "big", signed=True)


def changing(session: Session, subject: str) -> None:
    """This transaction changes what `subject`'s messages show, and says so until it ends: changes
    of one subject do not wait for each other, and `nothing_changing` waits for none of them.
    SQLite needs nothing: it has one writer at a time."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            text("SELECT pg_advisory_xact_lock_shared(:space, :key)"),
            {"space": CHANGES, "key": _lock_key(subject, 4)},
        )


def nothing_changing(session: Session, subject: str) -> bool:
    """True when no transaction is `changing` `subject` now; then none can begin until this one
    ends, so that what it reads after it ends holds every change that counted on it."""
    if session.get_bind().dialect.name != "postgresql":
        return True
    return bool(
        session.execute(
            text("SELECT pg_try_advisory_xact_lock(:space, :key)"),
            {"space": CHANGES, "key": _lock_key(subject, 4)},
        ).scalar()
    )


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    return config


def migrate(url: str, revision: str = "head", *, down: bool = False) -> None:
    """Bring the schema up (or, with `down`, back) to `revision`."""
    from alembic import command

    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            config = alembic_config(url)
            config.attributes["connection"] = connection
            (command.downgrade if down else command.upgrade)(config, revision)
    finally:
        engine.dispose()


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config(DEFAULT_URL)).get_current_head()
    assert head is not None
    return head


def ensure_migrated(engine: Engine) -> None:
    """Refuse to run on a database that is unreachable or not at the latest schema."""
    where = safe_url(engine.url.render_as_string(hide_password=False))
    try:
        with engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else "connection failed"
        raise DatabaseNotReady(
            f"Cannot reach the database at {where}: {reason}. "
            "Check DATABASE_URL and that the server is running."
        ) from None
    head = head_revision()
    if current is None:
        raise DatabaseNotReady(f"The database at {where} has no Touchline schema yet. Run: touchline migrate")
    if current != head:
        raise DatabaseNotReady(
            f"The database at {where} is at schema {current}, this Touchline needs {head}. "
            "Run: touchline migrate"
        )
