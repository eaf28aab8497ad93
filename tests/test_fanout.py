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
