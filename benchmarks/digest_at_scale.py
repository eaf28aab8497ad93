"""What the weekly digest and the dashboard cost with a big history: 2,000,000 objections, 100,000 this week.

    .venv/bin/python -m benchmarks.digest_at_scale [--total 2000000] [--period 100000] [--postgres]

Seeds a fresh database (SQLite, or a throwaway database on the local PostgreSQL with
--postgres) with the history, then builds the whole digest — totals, themes, eight weeks of
trends, segments, competitors, quotes from the groups of like objections, gaps, asset
feedback, decisions — and its chart, in a fresh process, and prints the time and that
process's peak memory. Themes and groups are given to each objection when it is recorded
(see objections_at_scale for that cost); the digest reads them. Prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import random
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, insert, text
from sqlalchemy.engine import make_url

from bot.config import parse_organisation_text
from bot.web.dashboard_page import dashboard_html
from handlers import dashboard, digest, setup
from handlers.context import Context
from handlers.signin import Viewer
from storage.database import Database, migrate, normalise_url
from storage.models import Objection, Person, Theme

NOW = datetime(2026, 12, 7, 7, 0, tzinfo=UTC)
THEMES = 40
LEADER = Viewer(0, "The Leader", frozenset({"leader"}))
PEOPLE = 2000
POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
CONFIG = """\
organisation: {name: Benchmark Co, timezone: Europe/Berlin}
people: {boss: {name: The Leader}, mia: {name: Mia Marketer}}
roles: {leader: [boss], marketer: [mia]}
audiences: {field: {targets: ["console:#field"]}}
digest: {recipients: [mia]}
objections:
  themes:
    price: [price, expensive, budget]
    competitor: [competitor, acme]
    security: [security, gdpr]
    integration: [integration, api]
    timing: [next quarter, freeze]
"""


def seed(url: str, total: int, period: int) -> None:
    """The history, written straight into the tables: recording 2,000,000 objections one by one
    through /objection would take hours and measure something else."""
    db = Database.from_url(url)
    ctx = Context(db=db, org=parse_organisation_text(CONFIG), clock=lambda: NOW)
    setup.apply(ctx)
    rng = random.Random(11)
    with db.engine.begin() as connection:
        connection.execute(
            insert(Person.__table__),  # type: ignore[attr-defined]
            [{"key": f"rep{i}", "name": f"Rep {i}", "from_config": False} for i in range(PEOPLE)],
        )
        connection.execute(
            insert(Theme.__table__),  # type: ignore[attr-defined]
            [
                {
                    "name": f"found theme {i}",
                    "cues": [],
                    "origin": "found",
                    "size": 0,
                    "profile": {},
                    "created_at": NOW - timedelta(days=700),
                }
                for i in range(THEMES - 5)
            ],
        )
        theme_ids = [row[0] for row in connection.execute(text("SELECT id FROM theme"))]
        people = [row[0] for row in connection.execute(text("SELECT id FROM person"))]
    segments = ["SMB", "Mid-market", "Enterprise", "Public sector", None]
    competitors = ["Acme", "Globex", "Initech", None, None]
    older = total - period
    started = time.perf_counter()
    next_id = 1
    batch: list[dict[str, Any]] = []
    with db.engine.begin() as connection:
        for n in range(total):
            recent = n >= older
            age = rng.uniform(0, 7) if recent else rng.uniform(7, 730)
            theme = theme_ids[min(int(rng.paretovariate(1.2)) - 1, len(theme_ids) - 1)]
            batch.append(
                {
                    "id": next_id,
                    "text": f"objection {next_id} about theme {theme}: {rng.choice(['too', 'no', 'why'])}",
                    "theme_id": theme,
                    "group_id": next_id - next_id % rng.choice([1, 3, 10]) or next_id,
                    "competitor": rng.choice(competitors),
                    "segment": rng.choice(segments),
                    "severity": "medium",
                    "confidential": rng.random() < 0.02,
                    "reporter_id": rng.choice(people),
                    "created_at": NOW - timedelta(days=age),
                }
            )
            next_id += 1
            if len(batch) == 20_000:
                connection.execute(insert(Objection.__table__), batch)  # type: ignore[attr-defined]
                batch = []
        if batch:
            connection.execute(insert(Objection.__table__), batch)  # type: ignore[attr-defined]
    if db.engine.dialect.name == "postgresql":
        with db.engine.begin() as connection:
            connection.execute(text("SELECT setval('objection_id_seq', (SELECT max(id) FROM objection))"))
            connection.execute(text("ANALYZE"))
    else:
        with db.engine.begin() as connection:
            connection.execute(text("ANALYZE"))
    took = time.perf_counter() - started
    print(f"seeded {total:,} objections ({period:,} in the last 7 days) in {took:.0f} s")
    db.dispose()


def measure(url: str) -> None:
    """Build and draw the digest in this (fresh) process, and report time and peak memory."""
    db = Database.from_url(url)
    org = parse_organisation_text(CONFIG)
    began = time.perf_counter()
    with db.session() as session:
        result = digest.build(session, org, end=NOW)
    built = time.perf_counter() - began
    card = digest.card(result, "Europe/Berlin")
    total = time.perf_counter() - began
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    quotes = sum(len(t.quotes) for t in result.themes)
    chart = len(card.image.png) if card.image else 0
    print(
        f"digest of {result.objections:,} objections ({len(result.themes)} themes shown, {quotes} quotes, "
        f"chart {chart:,} bytes): {built:.2f} s to build, {total:.2f} s with the card and chart; "
        f"peak memory of the process {peak:.0f} MB"
    )
    began = time.perf_counter()
    with db.session() as session:
        board = dashboard.build(session, org, LEADER, now=NOW, audience=None)
    page = dashboard_html(board, as_person=None)
    took = time.perf_counter() - began
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"the dashboard as a leader sees it ({len(page):,} bytes of HTML, its eight-week theme chart "
        f"included): {took:.2f} s; peak memory of the process {peak:.0f} MB"
    )
    db.dispose()


def main() -> None:
    arguments = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    arguments.add_argument("--total", type=int, default=2_000_000)
    arguments.add_argument("--period", type=int, default=100_000)
    arguments.add_argument(
        "--postgres", action="store_true", help="use a throwaway database on the local PostgreSQL"
    )
    arguments.add_argument("--measure", help=argparse.SUPPRESS)  # the fresh process's part
    args = arguments.parse_args()
    if args.measure:
        measure(args.measure)
        return
    with tempfile.TemporaryDirectory() as folder:
        if args.postgres:
            admin = create_engine(normalise_url(POSTGRES), isolation_level="AUTOCOMMIT")
            name = f"touchline_bench_{uuid.uuid4().hex[:8]}"
            with admin.connect() as connection:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
            url = make_url(normalise_url(POSTGRES)).set(database=name).render_as_string(hide_password=False)
        else:
            url = f"sqlite:///{Path(folder) / 'bench.db'}"
        try:
            migrate(url)
            print(f"database: {make_url(normalise_url(url)).render_as_string(hide_password=True)}")
            seed(url, args.total, args.period)
            for _ in range(2):  # the second run shows the cost once the database has the pages cached
                subprocess.run(
                    [sys.executable, "-m", "benchmarks.digest_at_scale", "--measure", url], check=True
                )
        finally:
            if args.postgres:
                with admin.connect() as connection:
                    connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                admin.dispose()


if __name__ == "__main__":
    main()
