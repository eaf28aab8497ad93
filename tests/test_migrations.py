"""The schema: Alembic builds exactly the models on SQLite and PostgreSQL; unmigrated ones are refused."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from storage.database import DatabaseNotReady, ensure_migrated, head_revision, make_engine, migrate
from storage.models import metadata
from tests.cli import run_cli
from tests.conftest import PG_ADMIN_URL


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    request.getfixturevalue("postgres_server")  # skips, with the reason, when there is no server
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"touchline_empty_{uuid.uuid4().hex[:8]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_migrations_build_exactly_the_models_and_can_be_undone(empty_database: str) -> None:
    migrate(empty_database)
    engine = make_engine(empty_database)
    try:
        with engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), metadata)
            assert differences == []
            assert MigrationContext.configure(connection).get_current_revision() == head_revision()
        ensure_migrated(engine)

        migrate(empty_database, "base", down=True)
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        migrate(empty_database)
        assert {t.name for t in metadata.sorted_tables} <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_an_unmigrated_database_is_refused_with_the_command_that_fixes_it(empty_database: str) -> None:
    engine = make_engine(empty_database)
    try:
        with pytest.raises(DatabaseNotReady, match=r"no Touchline schema yet\. Run: touchline migrate"):
            ensure_migrated(engine)
    finally:
        engine.dispose()


def test_an_unreachable_database_is_named_without_its_password() -> None:
    engine = make_engine("postgresql://touchline:s3cret-pw@127.0.0.1:1/touchline")
    try:
        with pytest.raises(DatabaseNotReady) as caught:
            ensure_migrated(engine)
    finally:
        engine.dispose()
    assert "Cannot reach the database" in str(caught.value) and "s3cret-pw" not in str(caught.value)


def test_the_console_on_an_unmigrated_file_says_to_migrate_then_migrate_makes_it_work(tmp_path: Path) -> None:
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'new.db'}"}
    refused = run_cli("console", "--as", "jonas", env=env)
    assert refused.returncode == 2
    assert "Run: touchline migrate" in refused.stderr and "Traceback" not in refused.stderr

    migrated = run_cli("migrate", env=env)
    assert migrated.returncode == 0 and f"schema {head_revision()} (the latest)" in migrated.stdout
    again = run_cli("migrate", env=env)  # running it twice is harmless
    assert again.returncode == 0
    works = run_cli("console", "--as", "jonas", env=env)
    assert works.returncode == 0 and "You are Jonas Weber (rep)" in works.stdout


def test_migrate_against_an_unreachable_server_exits_with_a_message(tmp_path: Path) -> None:
    done = run_cli("migrate", env={"DATABASE_URL": "postgresql://u:pw-not-shown@127.0.0.1:1/x"})
    assert done.returncode == 2
    assert "127.0.0.1:1" in done.stderr and "pw-not-shown" not in done.stderr + done.stdout
    assert "Traceback" not in done.stderr
