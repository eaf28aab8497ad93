"""What grouping a new objection reads: a bounded number of its theme's month, on both databases."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import Select, event
from sqlalchemy.orm import ORMExecuteState
from sqlmodel import Session, select

from handlers import inbound, objections
from handlers.context import Actor, Context
from storage.models import Objection, Theme
from tests.fakes import rows

HISTORY = 2000
BOUND = 450  # rows a new objection may read however full the month; the old scan read all 2,000


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
