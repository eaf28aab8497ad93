"""Sending at a platform's own pace: sliding-window limits per conversation and per app."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence


class Limiter:
    """At most `count` in any `seconds`, for each of its windows; `hold` stops it until a time
    (a 429's Retry-After)."""

    # A platform counts arrivals and we count departures: a little margin absorbs the jitter.
    MARGIN = 0.03

    def __init__(
        self, windows: Sequence[tuple[int, float]], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.windows = [(count, seconds + self.MARGIN, deque[float]()) for count, seconds in windows]
        self.clock = clock
        self.held_until = 0.0

    def delay(self, now: float) -> float:
        """Seconds until one more is allowed (0 if now)."""
        wait = self.held_until - now
        for count, seconds, stamps in self.windows:
            while stamps and stamps[0] <= now - seconds:
                stamps.popleft()
            if len(stamps) >= count:
                wait = max(wait, stamps[0] + seconds - now)
        return max(wait, 0.0)

    def take(self, now: float) -> None:
        for _, _, stamps in self.windows:
            stamps.append(now)

    def hold(self, seconds: float) -> None:
        self.held_until = max(self.held_until, self.clock() + seconds)


async def acquire(limiters: Sequence[Limiter], clock: Callable[[], float] = time.monotonic) -> None:
    """Wait until every limiter allows one more, and take it from all of them at once."""
    while True:
        now = clock()
        wait = max((limiter.delay(now) for limiter in limiters), default=0.0)
        if wait <= 0:
            for limiter in limiters:
                limiter.take(now)
            return
        await asyncio.sleep(wait)


class Pacer:
    """The limiters of each platform: one per conversation (created as they are met) and one for
    the app. A platform with no limits given (the console) is not paced."""

    def __init__(
        self, limits: Mapping[str, tuple[Sequence[tuple[int, float]], Sequence[tuple[int, float]]]]
    ) -> None:
        self.limits = limits
        self.apps = {platform: Limiter(app) for platform, (_, app) in limits.items()}
        self.conversations: dict[tuple[str, str], Limiter] = {}

    def limiters(self, platform: str, address: str) -> list[Limiter]:
        if platform not in self.limits:
            return []
        key = (platform, address)
        if key not in self.conversations:
            if len(self.conversations) > 100_000:
                self._forget_idle()
            self.conversations[key] = Limiter(self.limits[platform][0])
        return [self.conversations[key], self.apps[platform]]

    def conversation(self, platform: str, address: str) -> Limiter | None:
        return self.conversations.get((platform, address))

    async def wait_turn(self, platform: str, address: str) -> None:
        """Wait until both the conversation and the app allow one more, and take it."""
        await acquire(self.limiters(platform, address))

    async def ready(self, platform: str, address: str) -> None:
        """Wait until the conversation alone would allow one more, taking nothing: a lane waits
        here without holding one of the worker's sending slots."""
        limiters = self.limiters(platform, address)
        while limiters and (wait := limiters[0].delay(time.monotonic())) > 0:
            await asyncio.sleep(wait)

    def _forget_idle(self) -> None:
        now = time.monotonic()
        for key, limiter in list(self.conversations.items()):
            if limiter.delay(now) == 0 and all(not stamps for _, _, stamps in limiter.windows):
                del self.conversations[key]
