"""Delivery at scale, small: a worker process sends through fakes that enforce rate limits and
inject faults, is killed with SIGKILL half-way and started again; nothing is lost, and only
what was on its way at the kill may arrive twice."""

from __future__ import annotations

import asyncio

from benchmarks.fanout import fan_out

# Tight limits, so that a few hundred messages exercise pacing: 20 a second per app.
LIMITS: dict[str, tuple[list[tuple[int, float]], list[tuple[int, float]]]] = {
    "slack": ([(1, 1.0)], [(20, 1.0)]),
    "teams": ([(7, 1.0), (60, 30.0)], [(20, 1.0)]),
}
CONCURRENCY = 8


def test_a_paced_fan_out_with_faults_and_a_kill_loses_nothing(database_url: str) -> None:
    result = asyncio.run(
        fan_out(
            database_url,
            dms=120,
            posts=20,
            faults=True,
            kill=True,
            lease=2.0,
            concurrency=CONCURRENCY,
            limits=LIMITS,
            timeout=120,
        )
    )
    assert result.kills == 1
    assert (result.delivered, result.lost) == (140, 0)
    # At most the messages in flight when the worker died went out twice.
    assert result.duplicated <= CONCURRENCY
    assert result.faults.get("5xx", 0) > 0 and result.faults.get("dropped", 0) > 0


def test_a_failed_message_holds_back_those_behind_it_in_its_conversation(database_url: str) -> None:
    """Several messages to each channel and chat, through fakes that fail one request in ten and
    drop one in twenty: a message tried again later does not let the next one overtake it."""
    result = asyncio.run(
        fan_out(
            database_url,
            dms=80,
            posts=20,
            each=4,
            faults=True,
            lease=30.0,
            concurrency=CONCURRENCY,
            limits=LIMITS,
            timeout=120,
        )
    )
    assert (result.delivered, result.lost) == (result.expected, 0)
    assert result.faults.get("5xx", 0) > 0
    assert result.out_of_order == 0


def test_a_paced_fan_out_never_goes_past_the_platforms_limits(database_url: str) -> None:
    result = asyncio.run(
        fan_out(
            database_url, dms=80, posts=20, lease=30.0, concurrency=CONCURRENCY, limits=LIMITS, timeout=120
        )
    )
    assert (result.delivered, result.lost, result.duplicated) == (100, 0, 0)
    # The fakes answer 429 past their limits. Unpaced, eight sends at a time against 20 a second
    # would see most of these refused; paced, only jitter at a window's edge is (a few).
    assert result.rate_limited <= result.expected // 4


def test_the_fakes_refuse_past_every_window_counted_in_full() -> None:
    """The fakes the fan-out is measured against: the 51st request within one second is refused
    (none of the window is forgiven), and the most let through in any window is what they report."""
    from aiohttp import ClientSession

    from tests.fake_limits import Gate
    from tests.slack_fake import fake_slack

    async def main() -> None:
        async with fake_slack() as slack, ClientSession() as http:
            slack.gate = Gate(per_conversation=[(3, 1.0)], per_app=[(5, 1.0), (8, 30.0)])
            statuses = []
            for n in range(10):
                async with http.post(
                    f"{slack.base_url}chat.postMessage", data={"channel": f"C{n % 2}", "text": "x"}
                ) as r:
                    statuses.append(r.status)
            assert statuses[:5] == [200] * 5 and statuses[5:] == [429] * 5
            assert slack.gate.most == {("app", 1.0): 5, ("app", 30.0): 5, ("conversation", 1.0): 3}
            await asyncio.sleep(1.05)  # the 1 s window has passed; the 30 s one holds 5 of 8
            for _ in range(3):
                async with http.post(
                    f"{slack.base_url}chat.postMessage", data={"channel": "C9", "text": "y"}
                ) as r:
                    assert r.status == 200
            async with http.post(
                f"{slack.base_url}chat.postMessage", data={"channel": "C8", "text": "z"}
            ) as r:
                assert r.status == 429 and r.headers["Retry-After"]
            assert slack.gate.most[("app", 30.0)] == 8

    asyncio.run(main())
