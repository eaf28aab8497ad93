"""What grouping a new objection reads: a bounded number of its theme's month, on both databases."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from psycopg import sql
from sqlalchemy import Select, event
from sqlalchemy.orm import ORMExecuteState
from sqlmodel import Session, select

from handlers import inbound, objections
from handlers.context import Actor, Context
from storage.database import Database
from storage.models import Objection, Theme
from tests.fakes import rows

HISTORY = 2000
BOUND = 450  # rows a new objection may read however full the month; the old scan read all 2,000
OF_THE_MONTH = 10  # of the group whose reps are counted, the objections of the last 30 days


@contextmanager
def objection_rows_read() -> Iterator[Callable[[], int]]:
    """Count the rows that statements selecting from the objection table return, in any session."""
    counted = [0]

    def on_execute(state: ORMExecuteState) -> Any:
        statement = state.statement
        froms = statement.get_final_froms() if isinstance(statement, Select) else []
        if "objection" not in {getattr(table, "name", "") for table in froms}:
            return None
        frozen = state.invoke_statement().freeze()
        counted[0] += len(frozen.data)
        return frozen()

    event.listen(Session, "do_orm_execute", on_execute)
    try:
        yield lambda: counted[0]
    finally:
        event.remove(Session, "do_orm_execute", on_execute)


def price_theme(ctx: Context) -> int:
    with ctx.db.session() as session:
        theme_id = session.exec(select(Theme.id).where(Theme.key == "price")).one()
        assert theme_id is not None
        return theme_id


def write(ctx: Context, said: list[tuple[str, int, timedelta]], *, group_size: int = 1) -> list[Objection]:
    """Objections written straight to the table: (text, reporter, how long ago), oldest first,
    every `group_size` of them a group named after its first."""
    theme_id = price_theme(ctx)
    with ctx.db.session() as session:
        written = [
            Objection(text=text, theme_id=theme_id, reporter_id=reporter, created_at=ctx.now() - ago)
            for text, reporter, ago in said
        ]
        session.add_all(written)
        session.flush()
        for i, objection in enumerate(written):
            objection.group_id = written[i - i % group_size].id
        return written


def test_a_new_objection_reads_a_bounded_part_of_a_full_month(ctx: Context, people: dict[str, Actor]) -> None:
    reps = [people[key].person_id for key in ("rep2", "rep3")]
    month = timedelta(days=29)
    write(
        ctx,
        [
            (f"too expensive vs Acme for deal {i}", reps[i % 2], month * (HISTORY - i) / HISTORY)
            for i in range(HISTORY)
        ],
        group_size=10,
    )
    for _ in range(3):
        with objection_rows_read() as read:
            reply = inbound.command(ctx, people["rep1"], "objection", "too expensive vs Acme for the deal")
        assert read() < BOUND, read()
        assert "You are the 3rd rep to hear this in the last 30 days." in reply.text
    newest = rows(ctx.db, Objection)[-3:]
    assert {o.theme_id for o in newest} == {price_theme(ctx)}
    assert all(o.group_id != o.id for o in newest)  # each joined a group of the like ones


def test_a_group_heard_lately_is_found_by_its_first_objection_from_weeks_ago(
    ctx: Context, people: dict[str, Actor]
) -> None:
    rep2, rep3 = people["rep2"].person_id, people["rep3"].person_id
    [first] = write(ctx, [("the discount they want is more than we can give", rep2, timedelta(days=20))])
    # More of the theme since than a new one is compared with, none of them alike...
    write(ctx, [(f"over budget for project {i}", rep3, timedelta(days=19) / (i + 1)) for i in range(300)])
    # ...but the group was heard lately, in other words.
    with ctx.db.session() as session:
        session.add(
            Objection(
                text="a rival is cheaper per seat",
                theme_id=first.theme_id,
                group_id=first.id,
                reporter_id=rep3,
                created_at=ctx.now() - timedelta(minutes=5),
            )
        )
    reply = inbound.command(
        ctx, people["rep1"], "objection", "the discount they want is more than we can give!"
    )
    newest = rows(ctx.db, Objection)[-1]
    assert (newest.theme_id, newest.group_id) == (first.theme_id, first.id)
    assert "You are the 3rd rep to hear this in the last 30 days." in reply.text


def test_a_group_s_first_objection_from_before_the_month_is_not_compared(
    ctx: Context, people: dict[str, Actor]
) -> None:
    rep2 = people["rep2"].person_id
    [first] = write(ctx, [("the discount they want is more than we can give", rep2, timedelta(days=40))])
    with ctx.db.session() as session:
        session.add(
            Objection(
                text="a rival is cheaper per seat",
                theme_id=first.theme_id,
                group_id=first.id,
                reporter_id=rep2,
                created_at=ctx.now() - timedelta(days=1),
            )
        )
    reply = inbound.command(
        ctx, people["rep1"], "objection", "the discount they want is more than we can give"
    )
    newest = rows(ctx.db, Objection)[-1]
    assert newest.theme_id == first.theme_id and newest.group_id == newest.id
    assert "You are the first rep to log this in the last 30 days." in reply.text


def test_two_like_objections_at_once_share_one_group(ctx: Context, people: dict[str, Actor]) -> None:
    """The theme row stays locked from theming to commit, grouping included: the second waits
    for the first and joins its group instead of starting one of its own."""
    logged, release, failures = threading.Event(), threading.Event(), []

    def first() -> None:
        try:
            with ctx.db.session() as session:
                objections.log(session, ctx, people["rep1"], {"text": "too expensive vs Globex"})
                logged.set()
                release.wait(10)
        except Exception as error:  # reported by the test below, not lost in the thread
            failures.append(error)
            logged.set()

    def second() -> None:
        try:
            with ctx.db.session() as session:
                objections.log(session, ctx, people["rep2"], {"text": "too expensive vs Globex"})
        except Exception as error:
            failures.append(error)

    threads = [threading.Thread(target=first, daemon=True), threading.Thread(target=second, daemon=True)]
    threads[0].start()
    assert logged.wait(10)
    threads[1].start()
    threads[1].join(0.5)
    assert threads[1].is_alive()  # it waits for the first to commit...
    release.set()
    for thread in threads:
        thread.join(20)
    assert not failures, failures
    one, two = rows(ctx.db, Objection)
    assert one.theme_id == two.theme_id == price_theme(ctx)
    assert one.group_id == two.group_id == one.id  # ...and then sees it


@contextmanager
def statements_sent(db: Database) -> Iterator[list[tuple[str, Any]]]:
    """The SQL statements, with their parameters, that the database is sent."""
    sent: list[tuple[str, Any]] = []

    def on_execute(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        sent.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", on_execute)
    try:
        yield sent
    finally:
        event.remove(db.engine, "before_cursor_execute", on_execute)


def sqlite_steps(session: Session, statement: str, parameters: Any) -> int:
    """The virtual machine instructions SQLite runs for a statement: at least one per row read."""
    raw = session.connection().connection.dbapi_connection
    assert raw is not None
    steps = [0]

    def step() -> int:
        steps[0] += 1
        return 0  # go on

    raw.set_progress_handler(step, 1)
    try:
        raw.execute(statement, parameters).fetchall()
    finally:
        raw.set_progress_handler(None, 1)
    return steps[0]


def postgres_scans(session: Session, statement: str, parameters: dict[str, Any], mode: str) -> list[Any]:
    """The scans of the objection table in the plan PostgreSQL runs the statement by, prepared
    as psycopg prepares it, with `plan_cache_mode` set to `mode`."""
    connection = session.connection()
    raw = connection.connection.dbapi_connection
    names = re.findall(r"%\((\w+)\)s", statement)
    prepared = re.sub(r"%\((\w+)\)s", lambda name: f"${names.index(name[1]) + 1}", statement)
    values = ", ".join(sql.Literal(parameters[name]).as_string(raw) for name in names)
    connection.exec_driver_sql(f"PREPARE counted AS {prepared}")
    try:
        connection.exec_driver_sql(f"SET LOCAL plan_cache_mode = {mode}")
        [[explained]] = connection.exec_driver_sql(
            f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE counted({values})"
        )
    finally:
        connection.exec_driver_sql("DEALLOCATE counted")
    nodes, scans = [explained[0]["Plan"]], []
    while nodes:
        node = nodes.pop()
        nodes.extend(node.get("Plans", []))
        if node.get("Relation Name") == "objection":
            scans.append(node)
    return scans


def test_the_reps_of_a_group_are_counted_from_its_month_alone(ctx: Context, people: dict[str, Actor]) -> None:
    """The Nth-rep count reads the group's objections of the last 30 days from one index, and
    nothing else: not the group's older ones, nor the month's of other groups. On PostgreSQL in
    a generic plan too, the one it may settle on for a statement psycopg prepared."""
    reps = [people[key].person_id for key in ("rep1", "rep2", "rep3")]
    said = "too expensive vs Acme"
    older = [(said, reps[i % 3], timedelta(days=400) - timedelta(days=369) * i / 1000) for i in range(1000)]
    month = [
        (said, reps[i % 3], timedelta(days=29) * (OF_THE_MONTH - i) / OF_THE_MONTH)
        for i in range(OF_THE_MONTH)
    ]
    *_, newest = write(ctx, older + month, group_size=len(older) + OF_THE_MONTH)
    others = [("over budget", reps[0], timedelta(days=29) * (2000 - i) / 2000) for i in range(2000)]
    write(ctx, others, group_size=100)  # 20 groups heard this month
    postgres = ctx.db.engine.dialect.name == "postgresql"
    if postgres:
        # A table filled over months has statistics and a visibility map (autovacuum keeps
        # them); one filled a moment ago has neither until autovacuum comes by.
        with ctx.db.engine.connect() as connection:
            connection.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
                "VACUUM ANALYZE objection"
            )
    with ctx.db.session() as session:
        with statements_sent(ctx.db) as sent:
            assert objections.reporters(session, newest, ctx.now()) == 3
        [(statement, parameters)] = [(query, values) for query, values in sent if query.startswith("SELECT")]
        if postgres:
            for mode in ("force_generic_plan", "force_custom_plan"):
                scans = postgres_scans(session, statement, parameters, mode)
                assert [scan["Node Type"] for scan in scans] == ["Index Only Scan"], (mode, scans)
                read = [scan["Actual Rows"] + scan.get("Rows Removed by Filter", 0) for scan in scans]
                assert read == [OF_THE_MONTH], (mode, scans)
        else:
            explained = session.connection().exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
            plan = [row[3] for row in explained]
            covering = r"USING COVERING INDEX \w+ \(group_id=\? AND created_at>\?\)"
            assert any(re.search(covering, step) for step in plan), plan
            # Reading the group's 1,000 older objections, or the month's 2,000 of the other
            # groups, would take at least one step each.
            assert sqlite_steps(session, statement, parameters) < len(older)
