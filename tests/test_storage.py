"""Storage pieces the features build on: inbound event ids, units of work on SQLite and PostgreSQL."""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

import pytest

from storage import inbound_events, inbox
from storage.database import Database, WriteTurns
from storage.models import InboundEvent, InboxItem, Person
from tests.fakes import Clock, rows


def test_an_event_is_handled_the_first_time_only(db: Database, clock: Clock) -> None:
    with db.session() as session:
        assert inbound_events.first_time(session, platform="slack", event_id="Ev1", now=clock.now)
        assert not inbound_events.first_time(session, platform="slack", event_id="Ev1", now=clock.now)
        assert inbound_events.first_time(session, platform="teams", event_id="Ev1", now=clock.now)
        session.add(Person(key="kept", name="Kept"))  # the failed insert did not spoil the transaction
    assert len(rows(db, InboundEvent)) == 2 and len(rows(db, Person)) == 1


def test_two_processes_receiving_the_same_retry_handle_it_once(db: Database, clock: Clock) -> None:
    results: list[bool] = []
    barrier = threading.Barrier(4)

    def receive() -> None:
        barrier.wait()
        with db.session() as session:
            results.append(
                inbound_events.first_time(session, platform="slack", event_id="Ev9", now=clock.now)
            )

    threads = [threading.Thread(target=receive) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False, False, False, True]


def test_old_event_ids_are_forgotten(db: Database, clock: Clock) -> None:
    with db.session() as session:
        inbound_events.first_time(
            session, platform="slack", event_id="old", now=clock.now - timedelta(days=2)
        )
        inbound_events.first_time(session, platform="slack", event_id="new", now=clock.now)
    with db.session() as session:
        assert inbound_events.forget_before(session, clock.now - timedelta(days=1)) == 1
    assert [e.event_id for e in rows(db, InboundEvent)] == ["new"]


def test_a_unit_of_work_that_fails_stores_nothing(db: Database) -> None:
    try:
        with db.session() as session:
            session.add(Person(key="half", name="Half written"))
            session.flush()
            raise RuntimeError("crash mid-way")
    except RuntimeError:
        pass
    assert rows(db, Person) == []


def test_writers_of_one_process_take_turns_urgent_first_then_in_order_of_arrival() -> None:
    turns = WriteTurns()
    order: list[str] = []
    turns.acquire(urgent=False)  # held by this thread while the others queue

    def writer(name: str, urgent: bool) -> None:
        turns.acquire(urgent=urgent)
        turns.acquire(urgent=urgent)  # re-entrant: a session inside the holder's own
        order.append(name)
        turns.release()
        turns.release()

    threads = []
    for name, urgent in (("first", False), ("second", False), ("platform", True), ("third", False)):
        thread = threading.Thread(target=writer, args=(name, urgent))
        thread.start()
        threads.append(thread)
        for _ in range(5000):  # queued before the next comes
            if len(turns._urgent) + len(turns._rest) == len(threads):
                break
            time.sleep(0.001)
    assert order == []  # nobody writes while the turn is held
    turns.release()
    for thread in threads:
        thread.join(timeout=5)
    assert order == ["platform", "first", "second", "third"]
    turns.acquire(urgent=False)  # free again: taken at once
    turns.release()


def test_many_writers_of_one_process_never_write_at_once_and_all_get_their_turn() -> None:
    turns = WriteTurns()
    inside, most, done = [0], [0], [0]
    guard = threading.Lock()

    def writer(n: int) -> None:
        for i in range(200):
            turns.acquire(urgent=(n + i) % 5 == 0)
            with guard:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
            time.sleep(0.0005 if i % 7 == 0 else 0)  # let the others queue up
            with guard:
                inside[0] -= 1
            turns.release()
        with guard:
            done[0] += 1

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert done[0] == 16 and most[0] == 1
    turns.acquire(urgent=True)  # nobody left holding it
    turns.release()


def test_an_inbox_item_is_stored_once_with_what_it_was_given_by_a_statement_compiled_once(
    db: Database, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """The insert a platform waits on: a retry of the same key stores nothing, and the statement
    is compiled the first time only (SQLAlchemy compiles a dialect's INSERT … ON CONFLICT afresh
    on every call, which under a burst was a quarter of the server's CPU on PostgreSQL)."""
    caplog.set_level(logging.INFO, logger="sqlalchemy.engine.Engine")
    stored = []
    for claimant in ("serve-1", "serve-2", None):
        with db.session() as session:
            stored.append(
                inbox.receive(
                    session,
                    platform="slack",
                    key="Ev0001" if claimant else "Ev0002",
                    kind="command",
                    fields={"text": "too expensive"},
                    now=clock.now,
                    claimant=claimant,
                )
            )
    assert stored[0] is not None and stored[1] is None and stored[2] is not None
    first, second = sorted(rows(db, InboxItem), key=lambda item: item.id or 0)
    assert (first.key, first.claimed_by, first.attempts, first.done) == ("Ev0001", "serve-1", 1, False)
    assert first.received_at == clock.now and first.claimed_until == clock.now + inbox.LEASE
    assert (second.claimed_by, second.claimed_until, second.attempts) == (None, None, 0)
    said = [record.getMessage() for record in caplog.records]
    inserts = [m for m in said if m.startswith(("[generated", "[cached", "[no key")) and "'Ev000" in m]
    assert len(inserts) == 3 and inserts[0].startswith("[generated")
    assert all(m.startswith("[cached since") for m in inserts[1:]), inserts
