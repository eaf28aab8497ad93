"""Shared fixtures: migrated SQLite and PostgreSQL databases, a small organisation, a clock."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bot.config import parse_organisation_text
from handlers import directory, setup
from handlers.context import Actor, Context
from handlers.organisation import Organisation
from storage.database import Database, migrate, normalise_url
from storage.models import metadata
from tests import generated  # noqa: F401  (loads the examples' profile before any test module)
from tests.fakes import Clock

ROOT = Path(__file__).resolve().parent.parent
# No test reaches Microsoft: a bot with an app id fetches its token from a closed local port unless
# the test gives it a login host of its own (tests/teams_fake.py's KeyHost).
os.environ.setdefault("MICROSOFT_LOGIN_URL", "http://127.0.0.1:9/")
PG_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")

ORG_YAML = """\
organisation:
  name: Test Co
  timezone: Europe/Berlin
people:
  lead:
    name: Lena Leader
    email: lena@test.example
  lead2:
    name: Luis Leader
  market:
    name: Mia Marketer
  rep1:
    name: Rita Rep
    slack: U0000000001
  rep2:
    name: Ravi Rep
  rep3:
    name: Rosa Rep
    timezone: America/New_York
roles:
  leader: [lead, lead2]
  marketer: [market]
  marketing-lead: ["email:head.marketing@test.example"]
  rep: [rep1, rep2, rep3, "slack:U0000000009"]
audiences:
  emea:
    label: Sales EMEA
    targets: [console:#emea, slack:C0000000001]
    members: [rep1, rep2]
  na:
    label: Sales NA
    targets: [console:#na, console:#emea]
    members: [rep3]
  marketing:
    targets: [console:#marketing]
    members: [market]
strategy:
  remind_after: 2d
objections:
  competitors: [Acme, Globex]
  themes:
    price: [price, expensive, budget, discount, cheaper, cost]
    competitor: [competitor, acme, globex]
    security: [security, soc2, gdpr]
    integration: [integration, connector, sap, api]
"""


@pytest.fixture(scope="session")
def org() -> Organisation:
    return parse_organisation_text(ORG_YAML)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file, copied for each test (running Alembic per test is slow)."""
    path = tmp_path_factory.mktemp("template") / "touchline.db"
    migrate(f"sqlite:///{path}")
    return path


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    path = tmp_path / "touchline.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A throwaway database on the local PostgreSQL, migrated once; skipped, with the reason, if none."""
    admin_url = normalise_url(PG_ADMIN_URL)
    try:
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
        with admin.connect() as connection:
            connection.execute(text("select 1"))
    except Exception as exc:
        pytest.skip(f"no PostgreSQL at {make_url(admin_url).render_as_string()}: {type(exc).__name__}")
    name = f"touchline_test_{uuid.uuid4().hex[:10]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        migrate(url)
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def postgres_url(postgres_server: str) -> str:
    engine = create_engine(postgres_server)
    with engine.begin() as connection:
        tables = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()
    return postgres_server


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each test using this runs twice: on SQLite and on PostgreSQL."""
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return str(request.getfixturevalue(fixture))


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database.from_url(database_url)
    yield database
    database.dispose()


@pytest.fixture
def ctx(db: Database, org: Organisation, clock: Clock) -> Context:
    context = Context(db=db, org=org, clock=clock)
    setup.apply(context)
    return context


@pytest.fixture
def people(ctx: Context) -> dict[str, Actor]:
    """Everyone of the test organisation, signed in through the console."""
    return {key: directory.console_actor(ctx, key) for key in ctx.org.people}
