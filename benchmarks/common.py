"""What every benchmark needs: a fresh migrated database (or the one named) and percentiles."""

from __future__ import annotations

import argparse
import statistics
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text

from storage.database import Database, migrate

POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def parser(doc: str | None) -> argparse.ArgumentParser:
    described = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    described.add_argument("--database-url", help="an empty database to use (default: a new SQLite file)")
    return described


@contextmanager
def database(url: str | None, *, quiet: bool = False) -> Iterator[Database]:
    """A migrated database: a new SQLite file unless `url` names one."""
    with tempfile.TemporaryDirectory() as folder:
        url = url or f"sqlite:///{Path(folder) / 'bench.db'}"
        migrate(url)
        db = Database.from_url(url)
        if not quiet:
            print(f"database: {db.engine.url.render_as_string(hide_password=True)}")
        try:
            yield db
        finally:
            db.dispose()


def percentiles(samples: list[float]) -> str:
    """ "p50 … · p95 … · p99 … · max …" of timings in milliseconds."""
    ordered = sorted(samples)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1)))]

    return (
        f"p50 {statistics.median(ordered):.1f} ms · p95 {at(0.95):.1f} ms · "
        f"p99 {at(0.99):.1f} ms · max {ordered[-1]:.1f} ms"
    )


@contextmanager
def empty_database_url(postgres: bool, name: str) -> Iterator[str]:
    """The URL of a new, migrated database: a SQLite file, or a throwaway database on the local
    PostgreSQL (dropped afterwards)."""
    with tempfile.TemporaryDirectory() as folder:
        if not postgres:
            url = f"sqlite:///{Path(folder) / f'{name}.db'}"
            migrate(url)
            yield url
            return
        database = f"{name}_{uuid.uuid4().hex[:8]}"
        admin = create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{database}"'))
        try:
            url = POSTGRES.rsplit("/", 1)[0] + f"/{database}"
            migrate(url)
            yield url
        finally:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
            admin.dispose()
