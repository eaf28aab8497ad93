"""The delivery worker: every outbox row is sent once, retried when the platform asks, never lost."""

from __future__ import annotations

import asyncio
import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from bot.delivery import DeliveryWorker
from bot.platform import DeliveryError
from handlers import directory
from handlers.context import Context
from handlers.ui import Card, Section
from storage import outbox
from storage.database import Database
from storage.models import Outbox
from tests.fakes import Clock, RecordingPlatform, rows


def card(title: str) -> dict[str, object]:
    return Card(title=title, sections=(Section(text="body"),)).to_dict()


def queue(ctx: Context, *addresses: str, kind: str = outbox.POST, platform: str = "console") -> list[int]:
    with ctx.db.session() as session:
        queued = [
            outbox.enqueue(
                session,
                kind=kind,
                platform=platform,
                address=a,
                card=card(f"to {a}"),
                subject="test:1",
                now=ctx.now(),
            )
            for a in addresses
        ]
        session.flush()
        return [row.id for row in queued if row.id is not None]


def worker(ctx: Context, platform: RecordingPlatform, **options: object) -> DeliveryWorker:
    return DeliveryWorker(ctx.db, {platform.name: platform}, clock=ctx.clock, **options)  # type: ignore[arg-type]


def test_each_row_is_sent_once_and_its_message_reference_kept(ctx: Context) -> None:
    ids = queue(ctx, "#a", "#b")
    queue(ctx, "rep1", kind=outbox.DIRECT)
    platform = RecordingPlatform()
    assert asyncio.run(worker(ctx, platform).drain()) == 3
    assert asyncio.run(worker(ctx, platform).drain()) == 0
    assert platform.ops() == [("send", "#a"), ("send", "#b"), ("direct", "rep1")]
    sent = rows(ctx.db, Outbox)
    assert [r.status for r in sent] == ["sent"] * 3
    assert [r.message_ref for r in sent] == [s.ref for s in platform.transcript]
    assert sent[0].id == ids[0] and sent[0].sent_at == ctx.now()
    # What each shows is kept, for the updates that change it later.
    assert [r.card["title"] for r in sent] == ["to #a", "to #b", "to rep1"]
    assert [r.attempts for r in sent] == [1, 1, 1]


def test_an_update_waits_for_its_post_and_then_changes_that_message(ctx: Context, clock: Clock) -> None:
    [post_id] = queue(ctx, "#a")
    platform = RecordingPlatform(fail_next=[DeliveryError("timeout")])
    asyncio.run(worker(ctx, platform).drain())  # the post fails once and waits for its retry
    with ctx.db.session() as session:
        outbox.refresh_posts(session, subject="test:1", card=card("changed"), now=ctx.now())
    assert rows(ctx.db, Outbox, kind="update") == []  # a post still pending just takes the new card
    clock.advance(minutes=5)
    asyncio.run(worker(ctx, platform).drain())
    assert platform.transcript[-1].card.title == "changed"

    with ctx.db.session() as session:
        outbox.refresh_posts(session, subject="test:1", card=card("again"), now=ctx.now())
        outbox.refresh_posts(session, subject="test:1", card=card("and again"), now=ctx.now())
    [update] = rows(ctx.db, Outbox, kind="update")
    assert update.updates_id == post_id
    asyncio.run(worker(ctx, platform).drain())
    last = platform.transcript[-1]
    assert (last.op, last.ref, last.card.title) == ("update", platform.transcript[0].ref, "and again")
    assert rows(ctx.db, Outbox, id=post_id)[0].card["title"] == "and again"


def test_a_transient_failure_is_retried_later_with_backoff(ctx: Context, clock: Clock) -> None:
    queue(ctx, "#a")
    platform = RecordingPlatform(fail_next=[DeliveryError("502 bad gateway"), DeliveryError("timeout")])
    w = worker(ctx, platform)
    asyncio.run(w.drain())
    row = rows(ctx.db, Outbox)[0]
    assert (row.status, row.attempts, row.error) == ("pending", 1, "502 bad gateway")
    assert row.due_at > clock.now
    asyncio.run(w.drain())
    assert platform.transcript == []  # not due yet
    clock.advance(hours=1)
    asyncio.run(w.drain())
    clock.advance(hours=1)
    asyncio.run(w.drain())
    row = rows(ctx.db, Outbox)[0]
    assert (row.status, row.attempts) == ("sent", 3)
    assert len(platform.transcript) == 1


def test_a_rate_limited_row_waits_exactly_as_long_as_the_platform_asks(ctx: Context, clock: Clock) -> None:
    queue(ctx, "#a")
    platform = RecordingPlatform(fail_next=[DeliveryError("429", retry_after=30)] * 20)
    w = worker(ctx, platform, max_attempts=3)
    for _ in range(20):
        asyncio.run(w.drain())
        row = rows(ctx.db, Outbox)[0]
        assert row.status == "pending" and row.due_at == clock.now + timedelta(seconds=30)
        clock.advance(seconds=30)
    asyncio.run(w.drain())
    assert rows(ctx.db, Outbox)[0].status == "sent"  # 429s never exhaust the attempts


def test_a_permanent_failure_fails_that_delivery_only_with_its_reason(ctx: Context) -> None:
    queue(ctx, "#gone", "#fine")
    platform = RecordingPlatform(fail_next=[DeliveryError("channel_not_found", permanent=True)])
    asyncio.run(worker(ctx, platform).drain())
    gone, fine = rows(ctx.db, Outbox)
    assert (gone.status, gone.error) == ("failed", "channel_not_found")
    assert fine.status == "sent"
    with ctx.db.session() as session:
        outbox.refresh_posts(session, subject="test:1", card=card("new"), now=ctx.now())
    asyncio.run(worker(ctx, platform).drain())
    assert [s.address for s in platform.transcript if s.op == "update"] == ["#fine"]


def test_repeated_transient_failures_end_in_a_failure_that_says_so(ctx: Context, clock: Clock) -> None:
    queue(ctx, "#a")
    platform = RecordingPlatform(fail_next=[DeliveryError("503")] * 3)
    w = worker(ctx, platform, max_attempts=3)
    for _ in range(3):
        asyncio.run(w.drain())
        clock.advance(hours=2)
    row = rows(ctx.db, Outbox)[0]
    assert row.status == "failed" and "gave up after 3 attempts: 503" in (row.error or "")


def test_a_row_whose_worker_died_mid_send_is_sent_after_the_lease(ctx: Context, clock: Clock) -> None:
    queue(ctx, "#a", "#b")
    with ctx.db.session() as session:  # a worker claims both, sends nothing, and dies
        claimed = outbox.claim_due(session, platforms=["console"], now=clock.now, limit=10)
    assert len(claimed) == 2
    platform = RecordingPlatform()
    w = worker(ctx, platform, lease=timedelta(minutes=2))
    asyncio.run(w.drain())
    assert platform.transcript == []  # still someone else's
    clock.advance(minutes=3)
    asyncio.run(w.drain())
    assert sorted(platform.ops()) == [("send", "#a"), ("send", "#b")]


class Delivered(RecordingPlatform):
    """Notes which rows went out, in the order they did."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: list[int] = []

    async def send(self, address: str, card: Card, *, delivery_id: int) -> str:
        ref = self._record("send", address, card)
        self.ids.append(delivery_id)
        return ref


def test_a_message_queued_while_an_earlier_one_waits_for_its_retry_goes_after_it(
    ctx: Context, clock: Clock
) -> None:
    first, second = queue(ctx, "#a", "#a")
    platform = Delivered()
    platform.fail_next = [DeliveryError("502 bad gateway")]
    w = worker(ctx, platform)
    asyncio.run(w.drain())
    [third] = queue(ctx, "#a")  # due at once, while the first waits for its retry
    [elsewhere] = queue(ctx, "#b")
    asyncio.run(w.drain())
    assert platform.ids == [elsewhere]  # the channel waits; no other one does
    clock.advance(hours=1)
    asyncio.run(w.drain())
    assert platform.ids == [elsewhere, first, second, third]


def test_a_conversation_waits_for_the_message_a_dead_worker_was_sending(ctx: Context, clock: Clock) -> None:
    first, second = queue(ctx, "#a", "#a")
    with ctx.db.session() as session:  # a worker claims the first, perhaps sends it, and dies
        [claimed] = outbox.claim_due(session, platforms=["console"], now=clock.now, limit=1)
    assert claimed.id == first
    [third] = queue(ctx, "#a")
    [elsewhere] = queue(ctx, "#b")
    platform = Delivered()
    w = worker(ctx, platform, lease=timedelta(minutes=2))
    asyncio.run(w.drain())
    assert platform.ids == [elsewhere]
    clock.advance(minutes=3)
    asyncio.run(w.drain())
    assert platform.ids == [elsewhere, first, second, third]


def claim(ctx: Context, limit: int, mine: frozenset[int] = frozenset()) -> list[int]:
    with ctx.db.session() as session:
        taken = outbox.claim_due(session, platforms=["console"], now=ctx.now(), limit=limit, mine=mine)
    return [row.id for row in taken]


def test_a_conversation_one_worker_is_sending_to_is_left_to_it(ctx: Context) -> None:
    ids = queue(ctx, "#a", "#a", "#b", "#a")
    assert claim(ctx, 1) == ids[:1]  # one worker
    assert claim(ctx, 10) == ids[2:3]  # another: only what the first is not sending to
    assert claim(ctx, 10, mine=frozenset(ids[:1])) == [ids[1], ids[3]]  # the first, again


def test_a_worker_s_own_message_that_failed_since_it_said_what_it_holds_still_holds_the_rest(
    ctx: Context, clock: Clock
) -> None:
    """A claim made with what the worker held a moment ago: its message has since failed and
    waits for its retry, and the next one of its conversation is not taken past it."""
    first, second = queue(ctx, "#a", "#a")
    with ctx.db.session() as session:
        [claimed] = outbox.claim_due(session, platforms=["console"], now=clock.now, limit=1)
        outbox.mark_retry(session, claimed, error="502 bad gateway", due_at=clock.now + timedelta(minutes=5))
    assert claim(ctx, 10, mine=frozenset([first])) == []
    clock.advance(minutes=6)
    assert claim(ctx, 10) == [first, second]


def test_a_claim_made_while_another_is_under_way_sees_what_that_one_took(ctx: Context) -> None:
    """Another worker claims while one's claim is not yet committed: it waits for that claim and
    leaves its conversation alone. Not waiting, it would read the first message as pending,
    choose it and the one after it, lose the first to the other claim and take the second."""
    ids = queue(ctx, "#a", "#b", "#a", "#b")
    with ThreadPoolExecutor(1) as pool:
        with ctx.db.session() as session:
            first = outbox.claim_due(session, platforms=["console"], now=ctx.now(), limit=1)
            other = pool.submit(claim, ctx, 10)
            time.sleep(0.5)  # the other claim is under way, waiting for this one
        assert [row.id for row in first] == ids[:1]
        assert other.result(timeout=30) == [ids[1], ids[3]]


def test_two_workers_on_one_database_never_send_the_same_row(ctx: Context) -> None:
    queue(ctx, *[f"#c{i}" for i in range(40)])
    platform = RecordingPlatform()

    async def both() -> None:
        await asyncio.gather(worker(ctx, platform, batch=5).drain(), worker(ctx, platform, batch=5).drain())

    asyncio.run(both())
    addresses = [s.address for s in platform.transcript]
    assert sorted(addresses) == sorted(f"#c{i}" for i in range(40))


def test_rows_for_a_platform_that_is_not_served_wait_for_it(ctx: Context) -> None:
    queue(ctx, "C0000000001", platform="slack")
    queue(ctx, "#a")
    platform = RecordingPlatform()
    asyncio.run(worker(ctx, platform).drain())
    assert platform.ops() == [("send", "#a")]
    assert [r.status for r in rows(ctx.db, Outbox, platform="slack")] == ["pending"]


def test_a_large_broadcast_shows_its_sender_one_progress_message_naming_each_failure(
    db: Database, clock: Clock
) -> None:
    from bot.config import parse_organisation_text
    from handlers import inbound, setup
    from handlers.context import Context

    channels = [f"console:#sales-{n:02d}" for n in range(12)]
    org = parse_organisation_text(
        "organisation: {name: Wide Co}\npeople: {lead: {name: Lena Leader}, rep: {name: Rita Rep}}\n"
        "roles: {leader: [lead], rep: [rep]}\n"
        f"audiences: {{everyone: {{targets: [{', '.join(channels)}], members: [rep]}}}}\n"
    )
    ctx = Context(db=db, org=org, clock=clock)
    setup.apply(ctx)
    lead = directory.console_actor(ctx, "lead")
    form = inbound.command(ctx, lead, "strategy", "").form
    assert form is not None
    values = {
        "title": "Everyone",
        "decision": "One thing.",
        "why": "Because.",
        "reps_may": "a",
        "reps_may_not": "b",
        "effective_on": "2026-12-01",
        "audiences": ["everyone"],
    }
    inbound.submit(ctx, lead, form.form_id, values)
    platform = RecordingPlatform()
    platform.fail_next = [
        DeliveryError("#sales-00: the bot is not in the channel — invite it", permanent=True)
    ]
    asyncio.run(DeliveryWorker(db, {"console": platform}, clock=clock).drain())

    to_lead = [s for s in platform.transcript if s.address == "lead"]
    assert len(to_lead) == 1  # one progress message, no separate failure message
    shown = [s.card for s in platform.transcript if s.op == "update" and s.address == "lead"] or [
        to_lead[0].card
    ]
    final = json.dumps(shown[-1].to_dict(), ensure_ascii=False)
    assert "Delivered to 11 of 12 · 1 failed" in final and "invite it" in final and "Finished." in final


class SlowPlatform(RecordingPlatform):
    """Takes a moment to answer, and notes how many sends were under way at once."""

    def __init__(self) -> None:
        super().__init__()
        self.under_way = 0
        self.most_at_once = 0
        self.order: list[tuple[str, int]] = []

    async def send(self, address: str, card: Card, *, delivery_id: int) -> str:
        self.under_way += 1
        self.most_at_once = max(self.most_at_once, self.under_way)
        self.order.append((address, delivery_id))
        try:
            await asyncio.sleep(0.02)
            return self._record("send", address, card)
        finally:
            self.under_way -= 1


def test_conversations_are_sent_to_side_by_side_and_each_one_in_order(ctx: Context) -> None:
    platform = SlowPlatform()
    queue(ctx, *[f"#c{n}" for n in range(20)])
    busy = queue(ctx, "#busy", "#busy", "#busy")
    asyncio.run(worker(ctx, platform, concurrency=8).drain())
    assert 1 < platform.most_at_once <= 8
    assert [i for address, i in platform.order if address == "#busy"] == busy  # in order, one by one
    assert len(platform.transcript) == 23


def test_a_rate_limit_holds_that_conversation_only(ctx: Context, clock: Clock) -> None:
    platform = RecordingPlatform()
    ids = queue(ctx, "#limited", "#limited", "#free")
    platform.fail_next = [DeliveryError("slow down", retry_after=30)]
    asyncio.run(worker(ctx, platform).run_once())
    by_id = {r.id: r for r in rows(ctx.db, Outbox)}
    assert [by_id[i].status for i in ids] == ["pending", "pending", "sent"]
    assert all(by_id[i].due_at == clock.now + timedelta(seconds=30) for i in ids[:2])


def test_the_pacer_allows_no_more_than_each_window_and_says_how_long_to_wait() -> None:
    from bot.pacing import Limiter

    now = [100.0]
    limiter = Limiter([(2, 1.0), (3, 10.0)], clock=lambda: now[0])
    assert limiter.delay(now[0]) == 0
    limiter.take(now[0])
    limiter.take(now[0])
    assert 1.0 <= limiter.delay(now[0]) <= 1.0 + Limiter.MARGIN + 1e-9  # two in the last second
    now[0] += 1.5
    limiter.take(now[0])
    assert 8.5 <= limiter.delay(now[0]) <= 8.5 + Limiter.MARGIN + 1e-9  # three in the last ten seconds
    limiter.hold(20)
    assert limiter.delay(now[0]) >= 20


def test_a_request_on_its_way_counts_until_answered_and_then_from_its_answer() -> None:
    """The platform counts a request when it arrives, some time before its answer: the pacer
    may not start the next window's first until the last of this one cannot still be arriving."""
    from bot.pacing import Limiter

    now = [100.0]
    limiter = Limiter([(2, 1.0)], clock=lambda: now[0])
    limiter.begin()
    limiter.begin()
    assert limiter.delay(now[0]) == Limiter.POLL  # two on their way: only an answer frees a place
    now[0] += 0.4
    limiter.end(now[0])  # answered at 100.4: it may have arrived as late as that
    assert 1.0 <= limiter.delay(now[0]) <= 1.0 + Limiter.MARGIN + 1e-9
    now[0] += 0.7  # 101.1: a departure stamp (100.0) would have left the window by now
    assert limiter.delay(now[0]) > 0.29
    limiter.end(now[0])
    now[0] += 0.4  # 101.5: the first answer is out of the window, the second is not
    assert limiter.delay(now[0]) == 0
    assert not limiter.idle()


def test_a_turn_taken_and_not_used_frees_its_place_without_counting() -> None:
    """An update found already shown is not sent: its turn neither stays on its way nor counts."""
    from bot.pacing import Limiter

    now = [100.0]
    limiter = Limiter([(1, 1.0)], clock=lambda: now[0])
    limiter.begin()
    assert limiter.delay(now[0]) == Limiter.POLL
    limiter.withdraw()
    assert limiter.delay(now[0]) == 0 and limiter.idle()


def test_a_connection_slack_drops_unanswered_is_a_delivery_to_try_again(caplog: object) -> None:
    """Slack (or a proxy before it) may close the connection without an answer: the message may
    or may not be out, and it is tried again, not logged as a bug with a stack trace."""
    import pytest
    from slack_sdk.web.async_client import AsyncWebClient

    from bot.slack.platform import SlackPlatform
    from tests.fake_limits import Gate
    from tests.slack_fake import TOKEN, fake_slack

    async def send() -> DeliveryError:
        async with fake_slack() as fake:
            fake.gate = Gate(drops=1.0, hang=0.05)
            platform = SlackPlatform(AsyncWebClient(token=TOKEN, base_url=fake.base_url, timeout=5))
            with pytest.raises(DeliveryError) as raised:
                await platform.send("C0SALES001", Card(title="A drop"), delivery_id=1)
            assert fake.gate.counts["dropped"] >= 1  # slack_sdk tries a dropped connection once more
            return raised.value

    error = asyncio.run(send())
    assert not error.permanent and error.retry_after is None
    assert "Slack could not be reached" in error.reason
