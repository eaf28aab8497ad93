"""A crowd pressing *Got it* (issue 17): presses on one decision do not wait for each other, and each
post gets one update on its way and at most one pending, showing the count when it is sent."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
from sqlmodel import Session, col, select

from bot.config import parse_organisation_text
from bot.delivery import DeliveryWorker
from bot.pacing import Pacer
from handlers import directory, inbound, setup, strategy
from handlers.context import Context
from storage import outbox
from storage.database import Database
from storage.models import Decision, Outbox
from tests.fakes import Clock, RecordingPlatform, rows

CHANNELS = [f"console:#sales-{n:02d}" for n in range(20)]
REPS = 60
MEMBERS = ", ".join(f"rep{i}" for i in range(REPS))
ORG = (
    "organisation: {name: Crowd Co}\n"
    "people:\n  lead: {name: Lena Leader}\n"
    + "".join(f"  rep{i}: {{name: Rep {i}}}\n" for i in range(REPS))
    + "roles: {leader: [lead]}\n"
    + f"audiences: {{field: {{targets: [{', '.join(CHANNELS)}], members: [{MEMBERS}]}}}}\n"
)


@pytest.fixture
def crowd(db: Database, clock: Clock) -> Context:
    ctx = Context(db=db, org=parse_organisation_text(ORG), clock=clock)
    setup.apply(ctx)
    return ctx


def announced(ctx: Context) -> Decision:
    lead = directory.console_actor(ctx, "lead")
    form = inbound.command(ctx, lead, "strategy", "").form
    assert form is not None
    values = {
        "title": "Mid-market first",
        "decision": "Lead with the mid-market tier.",
        "why": "Twice the win rate.",
        "reps_may": "15% on 3-year deals",
        "reps_may_not": "discount the platform fee",
        "effective_on": "2026-12-01",
        "audiences": ["field"],
        **form.state,
    }
    assert not inbound.submit(ctx, lead, form.form_id, values).errors
    return rows(ctx.db, Decision)[-1]


def deliver(ctx: Context, platform: RecordingPlatform) -> None:
    asyncio.run(DeliveryWorker(ctx.db, {"console": platform}, clock=ctx.clock).drain())


def test_a_press_does_not_wait_for_another_press_on_the_same_decision(
    postgres_url: str, clock: Clock
) -> None:
    """On PostgreSQL, where a row lock would make it wait: one press's transaction is held open
    while another person's press on the same decision goes through."""
    db = Database.from_url(postgres_url)
    ctx = Context(db=db, org=parse_organisation_text(ORG), clock=clock)
    setup.apply(ctx)
    decision = announced(ctx)
    deliver(ctx, RecordingPlatform())
    first, second = directory.console_actor(ctx, "rep1"), directory.console_actor(ctx, "rep2")
    with Session(db.engine) as held:
        strategy.acknowledge(held, ctx, first, str(decision.id))
        held.flush()
        done = threading.Event()

        def press() -> None:
            inbound.action(ctx, second, strategy.ACK, str(decision.id))
            done.set()

        threading.Thread(target=press, daemon=True).start()
        went_through = done.wait(timeout=10)
        held.commit()
    assert went_through, "the second press waited for the first one's transaction"
    done.wait(timeout=10)
    with db.session() as session:
        assert strategy.acknowledgement_count(session, decision.id or 0)[0] == 2
    db.dispose()


def test_a_crowd_of_presses_leaves_each_post_one_update_showing_the_last_count(crowd: Context) -> None:
    decision = announced(crowd)
    platform = RecordingPlatform()
    deliver(crowd, platform)
    assert len([s for s in platform.transcript if s.address.startswith("#")]) == len(CHANNELS)
    reps = [directory.console_actor(crowd, f"rep{i}") for i in range(REPS)]
    with ThreadPoolExecutor(max_workers=6) as pool:  # presses at once, as from a crowd
        replies = list(pool.map(lambda rep: inbound.action(crowd, rep, strategy.ACK, str(decision.id)), reps))
    assert all("Thanks" in reply.text for reply in replies), [
        r.text for r in replies if "Thanks" not in r.text
    ]
    with crowd.db.session() as session:
        pending = session.exec(
            select(Outbox.updates_id).where(
                col(Outbox.subject) == f"decision:{decision.id}",
                col(Outbox.kind) == outbox.UPDATE,
                col(Outbox.status) == outbox.PENDING,
            )
        ).all()
    # Presses at once may each queue one (no lock is taken); never one per press and post.
    assert len(pending) < REPS * len(CHANNELS) // 4, len(pending)
    assert set(pending) == {
        p.id for p in rows(crowd.db, Outbox, subject=f"decision:{decision.id}", kind="post")
    }
    before = len(platform.transcript)
    deliver(crowd, platform)
    updates = [s for s in platform.transcript[before:] if s.address.startswith("#")]
    assert sorted(u.address for u in updates) == sorted(c.removeprefix("console:") for c in CHANNELS)
    assert all(f"acknowledged by {REPS} of {REPS}" in json.dumps(u.card.to_dict()) for u in updates)
    with crowd.db.session() as session:
        assert strategy.acknowledgement_count(session, decision.id or 0)[0] == REPS


def test_the_same_person_pressing_twice_at_once_is_counted_once(crowd: Context) -> None:
    decision = announced(crowd)
    deliver(crowd, RecordingPlatform())
    rep = directory.console_actor(crowd, "rep7")
    with ThreadPoolExecutor(max_workers=4) as pool:
        replies = list(
            pool.map(lambda _: inbound.action(crowd, rep, strategy.ACK, str(decision.id)), range(8))
        )
    assert sum("Thanks" in r.text for r in replies) == 1
    assert sum("already acknowledged" in r.text for r in replies) == 7
    with crowd.db.session() as session:
        assert strategy.acknowledgement_count(session, decision.id or 0)[0] == 1


def test_an_update_waiting_its_turn_behind_which_another_of_its_post_came_is_not_sent(crowd: Context) -> None:
    """In a channel paced at one message a second, presses keep coming: of the updates queued
    in the channel's lane, only the last goes, drawn with the count of that moment."""
    decision = announced(crowd)
    platform = RecordingPlatform()
    deliver(crowd, platform)
    sent_before = len(platform.transcript)
    press_while_paced(crowd, platform, decision, 6)
    updates = [s for s in platform.transcript[sent_before:] if s.op == "update" and s.address.startswith("#")]
    per_channel = len(updates) / len(CHANNELS)
    assert per_channel < 6, per_channel  # fewer updates than presses in each channel
    last = {}
    for u in updates:
        last[u.address] = json.dumps(u.card.to_dict())
    assert len(last) == len(CHANNELS) and all("acknowledged by 6 of" in card for card in last.values())
    carried = rows(crowd.db, Outbox, kind="update", error=outbox.CARRIED)
    assert carried, "no update was carried by a later one"


class _WallClock:
    def __call__(self) -> datetime:
        return datetime.now(UTC)


def press_while_paced(crowd: Context, platform: RecordingPlatform, decision: Decision, presses: int) -> None:
    """A worker paced at one message a second in each channel runs while `presses` reps press
    *Got it*, one every 0.3 s (faster than a channel's updates may go), until nothing is owed."""
    crowd.clock = _WallClock()  # the pacer and the worker's claims run on real time

    async def main() -> None:
        stop = asyncio.Event()
        pacer = Pacer({"console": ([(1, 1.0)], [(100, 1.0)])})
        worker = DeliveryWorker(crowd.db, {"console": platform}, clock=crowd.clock, pacer=pacer)
        running = asyncio.create_task(worker.run_forever(stop, interval=0.05))
        for n in range(presses):
            rep = directory.console_actor(crowd, f"rep{n}")
            await asyncio.to_thread(inbound.action, crowd, rep, strategy.ACK, str(decision.id))
            await asyncio.sleep(0.3)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if not rows(crowd.db, Outbox, status=outbox.PENDING) + rows(
                crowd.db, Outbox, status=outbox.SENDING
            ):
                break
            await asyncio.sleep(0.1)
        stop.set()
        await running

    asyncio.run(main())


def test_an_update_is_not_sent_again_when_its_post_already_shows_the_last_count(crowd: Context) -> None:
    """Presses keep coming while a channel's update waits for its turn: the update on its way is
    drawn with the last count when it goes, and the one queued behind it, drawn the same, goes
    nowhere (it would only spend a request of the channel's pace)."""
    decision = announced(crowd)
    platform = RecordingPlatform()
    deliver(crowd, platform)
    sent_before = len(platform.transcript)
    press_while_paced(crowd, platform, decision, 4)
    shown: dict[str, list[str]] = {}
    for sent in platform.transcript[sent_before:]:
        if sent.op == "update" and sent.address.startswith("#"):
            shown.setdefault(sent.address, []).append(json.dumps(sent.card.to_dict()))
    assert len(shown) == len(CHANNELS)
    for channel, cards in shown.items():
        assert "acknowledged by 4 of" in cards[-1], channel
        assert all(a != b for a, b in itertools.pairwise(cards)), f"{channel} got the same card twice"
    assert rows(crowd.db, Outbox, kind="update", error=outbox.SHOWN), "no update found its post showing it"
    # What each post shows is kept on its row, for the next update to be compared with.
    for post in rows(crowd.db, Outbox, subject=f"decision:{decision.id}", kind="post"):
        assert "acknowledged by 4 of" in json.dumps(post.card)


def test_an_update_is_not_claimed_while_a_change_that_counts_on_it_is_uncommitted(
    postgres_url: str, clock: Clock
) -> None:
    """On PostgreSQL: a press that finds its posts' updates pending queues none, counting on them.
    Claimed (and drawn) before that press commits, they would go out without it, and nothing
    would follow; so the claim passes them over until it has."""
    db = Database.from_url(postgres_url)
    ctx = Context(db=db, org=parse_organisation_text(ORG), clock=clock)
    setup.apply(ctx)
    decision = announced(ctx)
    deliver(ctx, RecordingPlatform())
    inbound.action(ctx, directory.console_actor(ctx, "rep1"), strategy.ACK, str(decision.id))

    def claimed() -> list[outbox.Claimed]:
        with db.session() as session:
            taken = outbox.claim_due(session, platforms=["console"], now=clock(), limit=100)
            outbox.release(session, [row.id for row in taken])
        return [row for row in taken if row.kind == outbox.UPDATE]

    with Session(db.engine) as held:
        strategy.acknowledge(held, ctx, directory.console_actor(ctx, "rep2"), str(decision.id))
        held.flush()
        while_held = claimed()
        held.commit()
    assert while_held == [], "an update was claimed while a press that counts on it was uncommitted"
    after = claimed()
    assert len(after) == len(CHANNELS)
    db.dispose()


def test_while_the_app_s_window_is_short_the_posts_wait_for_the_crowd_and_show_the_last_count(
    crowd: Context,
) -> None:
    """The app may send two more messages in its window once the posts are out, and twenty posts
    will need an update: none is spent on a count the crowd is still changing. Each post gets one
    update, with the last count, once the presses have paused."""
    crowd.clock = _WallClock()
    decision = announced(crowd)
    platform = RecordingPlatform()
    presses = 12

    async def main() -> None:
        stop = asyncio.Event()
        pacer = Pacer({"console": ([(50, 1.0)], [(len(CHANNELS) + 2, 4.0)])})
        worker = DeliveryWorker(crowd.db, {"console": platform}, clock=crowd.clock, pacer=pacer)
        running = asyncio.create_task(worker.run_forever(stop, interval=0.05))
        deadline = time.monotonic() + 10
        while len(platform.transcript) < len(CHANNELS) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for n in range(presses):  # a press every 0.1 s: the card never holds still for a second
            rep = directory.console_actor(crowd, f"rep{n}")
            await asyncio.to_thread(inbound.action, crowd, rep, strategy.ACK, str(decision.id))
            await asyncio.sleep(0.1)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            owed = rows(crowd.db, Outbox, status=outbox.PENDING) + rows(
                crowd.db, Outbox, status=outbox.SENDING
            )
            if not owed:
                break
            await asyncio.sleep(0.1)
        stop.set()
        await running

    asyncio.run(main())
    updates = [s for s in platform.transcript if s.op == "update" and s.address.startswith("#")]
    shown = [json.dumps(u.card.to_dict()) for u in updates]
    assert all(f"acknowledged by {presses} of" in card for card in shown), [
        card for card in shown if f"by {presses} of" not in card
    ]
    assert sorted(u.address for u in updates) == sorted(c.removeprefix("console:") for c in CHANNELS)
