"""What logging an objection costs with 1k, 10k and 100k objections in the last 30 days.

    .venv/bin/python -m benchmarks.objections_at_scale [--history 1000,10000,100000] [--samples 200]
                                                      [--reps 400] [--postgres]

For each size of history a fresh database gets that many objections spread over the last 30
days (five themes, grouped as Touchline groups them, written in bulk: logging 100,000 one by
one would take the old code hours), and then `--samples` more are logged through `/objection`
and timed. Beside the time it prints the objection rows each `/objection` reads (counted on a
few more, untimed): a new objection is compared with a bounded number of its theme's recent
objections and groups, so both should stay flat as the month fills up. It times the "You
are the Nth rep" count on its own too, for the largest group (an eighth of the month: it grows
with the history), again and again in one connection at one moment, so that psycopg prepares it
the fifth time, as a server's pooled connection prepares a statement it repeats; and, once all
else is timed, for a group heard for a year: as many objections as the history in the eleven
months before the month, and 50 in it, of which the count should read only the 50. It also times
marketing's `/objection list` (which reads the whole month by design) and, on the largest
history, theming against many themes heard lately. Prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Select, bindparam, event, func, update
from sqlalchemy.engine import Connection, Engine
from sqlmodel import col, select

from benchmarks import common
from handlers import directory, inbound, matching, objections, setup
from handlers.context import Actor, Context
from handlers.organisation import parse_organisation
from storage.database import Database
from storage.models import Objection, Theme

SAYINGS = {
    "price": [
        "too expensive vs {c}",
        "over budget this year",
        "{c} quoted {n}% less",
        "the price went up again",
    ],
    "competitor": [
        "{c} already runs their reporting",
        "switching from {c} is too much work",
        "{c} already has it",
    ],
    "security": ["no SOC2 report yet", "data residency in the EU is a must", "their security review failed"],
    "integration": ["no connector for SAP", "the Salesforce sync is one-way", "API rate limits too low"],
    "timing": ["budget freeze until next quarter", "not now, maybe next year", "they wait for the reorg"],
}
COMPETITORS = ["Acme", "Globex", "Initech"]
MONTH = timedelta(days=30)
YEAR = timedelta(days=365)
OF_THE_MONTH = 50  # objections of the month in the group heard for a year
COUNTED = 20  # untimed /objection commands whose reads are counted
LISTS = 3
COUNTS = 200  # Nth-rep counts timed on the largest group
CHUNK = 5000


@dataclass
class Figures:
    history: int
    timings: list[float]
    rows_read: list[int]
    lists: list[float]
    group: int  # objections in the largest group
    counts: list[float]
    old_counts: list[float]  # of a group with `history` objections before the month


def organisation(reps: int) -> dict[str, Any]:
    people = {f"rep{i}": {"name": f"Rep {i}"} for i in range(reps)}
    return {
        "organisation": {"name": "Benchmark Co"},
        "people": {"mia": {"name": "Mia Marketer"}, **people},
        "roles": {"marketer": ["mia"], "rep": list(people)},
        "audiences": {"field": {"targets": ["console:#field"]}},
        "objections": {
            "competitors": COMPETITORS,
            "themes": {
                "price": ["price", "expensive", "budget", "less", "cheaper"],
                "competitor": ["competitor", "switching", "already"],
                "security": ["security", "soc2", "residency"],
                "integration": ["connector", "sync", "api", "integration"],
                "timing": ["freeze", "next quarter", "next year", "wait"],
            },
        },
    }


def saying(rng: random.Random) -> str:
    return detailed(rng, plain(rng))


def plain(rng: random.Random) -> str:
    template = rng.choice(rng.choice(list(SAYINGS.values())))
    return template.format(c=rng.choice(COMPETITORS), n=rng.randint(10, 40)) + rng.choice(["", "!", " (CFO)"])


def detailed(rng: random.Random, said: str) -> str:
    """Half of what reps write carries a detail of its own, as free text does: a month holds tens
    of thousands of different texts, not the few hundred the plain sayings make."""
    return f"{said}, deal {rng.randint(1000, 999_999)}" if rng.random() < 0.5 else said


def main() -> None:
    arguments = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    arguments.add_argument("--history", default="1000,10000,100000", help="sizes, comma-separated")
    arguments.add_argument("--samples", type=int, default=200)
    arguments.add_argument("--reps", type=int, default=400)
    arguments.add_argument("--postgres", action="store_true", help="the local PostgreSQL, not SQLite")
    args = arguments.parse_args()
    sizes = [int(size) for size in args.history.split(",")]
    print(f"{args.samples} × /objection <text> from {args.reps} reps, five themes, after each history")
    figures = []
    for size in sizes:
        with fresh(args.postgres, f"objections_{size}") as db:
            figures.append(measure(db, args, size, last=size == sizes[-1]))
    table(figures)


@contextmanager
def fresh(postgres: bool, name: str) -> Iterator[Database]:
    with common.empty_database_url(postgres, name) as url:
        db = Database.from_url(url)
        try:
            yield db
        finally:
            db.dispose()


def measure(db: Database, args: argparse.Namespace, size: int, *, last: bool) -> Figures:
    now = [datetime(2026, 12, 1, 8, 0, tzinfo=UTC)]
    ctx = Context(db=db, org=parse_organisation(organisation(args.reps)), clock=lambda: now[0])
    setup.apply(ctx)
    reps = [directory.console_actor(ctx, f"rep{i}") for i in range(args.reps)]
    rng = random.Random(7)
    began = time.perf_counter()
    seed(ctx, reps, rng, size, now[0])
    print(f"{size:,} objections written in {time.perf_counter() - began:.1f} s")

    def log() -> str:
        now[0] += timedelta(seconds=1)
        return inbound.command(ctx, rng.choice(reps), "objection", saying(rng)).text

    timings = []
    for _ in range(args.samples):
        began = time.perf_counter()
        assert "Recorded" in (said := log()), said
        timings.append((time.perf_counter() - began) * 1000)
    rows_read = []
    for _ in range(COUNTED):
        with counting_objection_rows() as read:
            log()
        rows_read.append(read())
    marketer = directory.console_actor(ctx, "mia")
    lists = []
    for _ in range(LISTS):
        began = time.perf_counter()
        inbound.command(ctx, marketer, "objection", "list")
        lists.append((time.perf_counter() - began) * 1000)
    print(f"  /objection <text>: {common.percentiles(timings)}; list: {common.percentiles(lists)}")
    group_id, group = largest_group(ctx)
    counts = reps_counted(ctx, group_id, now[0])
    print(f"  Nth-rep count of a group of {group:,}: {common.percentiles(counts)}")
    if last:
        many_themes(ctx, reps, rng)
    old_counts = reps_counted(ctx, year_old_group(ctx, reps, rng, size, now[0]), now[0])
    before = f"{size:,} before the month and {OF_THE_MONTH} in it"
    print(f"  Nth-rep count of a group with {before}: {common.percentiles(old_counts)}")
    return Figures(size, timings, rows_read, lists, group, counts, old_counts)


def largest_group(ctx: Context) -> tuple[int, int]:
    """The group with the most objections, and how many it has."""
    with ctx.db.session() as session:
        size = func.count().label("size")
        group_id, group = session.exec(
            select(Objection.group_id, size).group_by(col(Objection.group_id)).order_by(size.desc()).limit(1)
        ).one()
    assert group_id is not None
    return group_id, group


def year_old_group(ctx: Context, reps: list[Actor], rng: random.Random, size: int, now: datetime) -> int:
    """A group heard for a year: `size` objections in the eleven months before the month (written
    after everything else was timed), and OF_THE_MONTH in it."""
    ages = [MONTH + (YEAR - MONTH) * (size - i) / size for i in range(size)]
    ages += [MONTH * (OF_THE_MONTH - i) / (OF_THE_MONTH + 1) for i in range(OF_THE_MONTH)]
    with ctx.db.session() as session:
        theme_id = session.exec(select(Objection.theme_id)).first() or 0
        said = [
            Objection(
                text="no single sign-on",
                theme_id=theme_id,
                reporter_id=rng.choice(reps).person_id,
                created_at=now - age,
            )
            for age in ages
        ]
        for start in range(0, len(said), CHUNK):
            session.add_all(said[start : start + CHUNK])
            session.flush()
        group_id = said[0].id
        assert group_id is not None
        # The rows just written, named after the first.
        session.execute(update(Objection).where(col(Objection.id) >= group_id).values(group_id=group_id))
    vacuumed(ctx)
    return group_id


def reps_counted(ctx: Context, group_id: int, now: datetime) -> list[float]:
    """The times the Nth-rep count of the group's newest objection takes."""
    with ctx.db.session() as session:
        newest = session.exec(
            select(Objection).where(Objection.group_id == group_id).order_by(col(Objection.id).desc())
        ).first()
        assert newest is not None
        timings = []
        for _ in range(COUNTS):
            began = time.perf_counter()
            objections.reporters(session, newest, now)
            timings.append((time.perf_counter() - began) * 1000)
    return timings


def seed(ctx: Context, reps: list[Actor], rng: random.Random, size: int, now: datetime) -> None:
    """`size` objections over the month before `now`, oldest first, themed by the taxonomy's cue
    words and grouped as `objections.group_for` groups them one by one, but by their plain
    saying (the details left out): comparing each with every text before it is quadratic."""
    with ctx.db.session() as session:
        themes = {t.key: t.id for t in session.exec(select(Theme)) if t.key and t.id is not None}
        cues = {key: ctx.org.objections.themes[key] for key in ctx.org.objections.themes}
        founders: dict[tuple[int, str], str] = {}  # (theme, text) -> the text that started its group
        known: dict[int, list[matching.Candidate]] = {}
        rows, keys = [], []
        for i in range(size):
            said = plain(rng)
            text = detailed(rng, said)
            theme_id = themes[matching.theme_of(said, cues)]
            if (theme_id, said) not in founders:
                match = matching.best_match(said, known.setdefault(theme_id, []))
                founders[theme_id, said] = founders[theme_id, match.text] if match else said
                known[theme_id].append(matching.Candidate(len(known[theme_id]), 0, said))
            at = now - MONTH + MONTH * (i + 0.5) / size
            reporter = rng.choice(reps).person_id
            rows.append(Objection(text=text, theme_id=theme_id, reporter_id=reporter, created_at=at))
            keys.append((theme_id, founders[theme_id, said]))
        group_ids: dict[tuple[int, str], int] = {}
        for start in range(0, size, CHUNK):
            session.add_all(rows[start : start + CHUNK])
            session.flush()  # their ids: a group is named after its first objection
        for row, key in zip(rows, keys, strict=True):
            assert row.id is not None
            group_ids.setdefault(key, row.id)
        change = (
            update(Objection).where(col(Objection.id) == bindparam("row")).values(group_id=bindparam("group"))
        )
        session.connection().execute(
            change, [{"row": row.id, "group": group_ids[key]} for row, key in zip(rows, keys, strict=True)]
        )
        session.commit()
    vacuumed(ctx)


def vacuumed(ctx: Context) -> None:
    """A table filled over a month has statistics and a visibility map (autovacuum keeps them);
    one filled in a second has neither until autovacuum comes by, and plans made without them
    are not the ones a month sees."""
    if ctx.db.engine.dialect.name == "postgresql":
        with ctx.db.engine.connect() as connection:
            connection.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
                "VACUUM ANALYZE objection"
            )


@contextmanager
def counting_objection_rows() -> Iterator[Callable[[], int]]:
    """Count the rows that statements reading the objection table return, in any connection
    (the hot paths read through the connection, not the session): each such read is run once
    more, after it, to count what it returned."""
    counted, recounting = [0], [False]

    def on_execute(conn: Connection, statement: Any, multiparams: Any, params: Any, *_: Any) -> None:
        if recounting[0] or not isinstance(statement, Select):
            return
        if "objection" not in {getattr(table, "name", "") for table in statement.get_final_froms()}:
            return
        recounting[0] = True
        try:
            counted[0] += len(conn.execute(statement, multiparams[0] if multiparams else params).all())
        finally:
            recounting[0] = False

    event.listen(Engine, "after_execute", on_execute)
    try:
        yield lambda: counted[0]
    finally:
        event.remove(Engine, "after_execute", on_execute)


def many_themes(ctx: Context, reps: list[Actor], rng: random.Random) -> None:
    """Text that shares nothing starts a theme of its own: with many such themes heard lately,
    every new objection is compared with each of them (at most 500)."""
    vocabulary = [f"{a}{b}" for a in ("zor", "qua", "vex", "lum", "dri", "pol") for b in range(80)]
    for _ in range(600):
        inbound.command(ctx, rng.choice(reps), "objection", " ".join(rng.sample(vocabulary, 4)))
    with ctx.db.session() as session:
        found = session.exec(select(func.count()).select_from(Theme)).one()
    timings = []
    for _ in range(200):
        began = time.perf_counter()
        inbound.command(ctx, rng.choice(reps), "objection", saying(rng))
        timings.append((time.perf_counter() - began) * 1000)
    print(f"  /objection <text> with {found} themes heard lately: {common.percentiles(timings)}")


def table(figures: list[Figures]) -> None:
    print(
        "\n history | /objection p50 |      p95 | mean ms | objection rows read | /objection list p50"
        " | largest group | Nth-rep count p50 |    p95 | year-old group's count p50 |    p95"
    )
    for f in figures:
        mean = sum(f.timings) / len(f.timings)
        rows = f"{min(f.rows_read)}–{max(f.rows_read)}"
        print(
            f"{f.history:>8,} | {median(f.timings):>11.1f} ms | {percentile(f.timings, 0.95):>5.1f} ms "
            f"| {mean:>7.1f} | {rows:>19} | {median(f.lists):>16.0f} ms | {f.group:>13,} "
            f"| {median(f.counts):>14.2f} ms | {percentile(f.counts, 0.95):>3.2f} ms "
            f"| {median(f.old_counts):>23.2f} ms | {percentile(f.old_counts, 0.95):>3.2f} ms"
        )


def median(samples: list[float]) -> float:
    return percentile(samples, 0.5)


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1)))]


if __name__ == "__main__":
    main()
