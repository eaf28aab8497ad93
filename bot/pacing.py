"""Sending at a platform's own pace: sliding-window limits per conversation and per app."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence


class Limiter:
    """At most `count` in any `seconds`, for each of its windows; `hold` stops it until a time
    (a 429's Retry-After).

    A platform counts a request when it arrives, which is some time between our sending it and
    its answer. So a request counts in every window while it is on its way (`begin`), and once
    answered, as if it had arrived at the answer (`end`): the next window's first may leave only
    when the last of this one cannot still be arriving. Stamping departures instead let a slow
    request and the quick ones after it land in one window (429s at every second's edge)."""

    MARGIN = 0.01  # seconds: the platform's clock and ours (arrival is bounded by the answer)
    POLL = 0.005  # seconds between two looks while a window is full of requests on their way

    def __init__(
        self, windows: Sequence[tuple[int, float]], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.windows = [(count, seconds + self.MARGIN, deque[float]()) for count, seconds in windows]
        self.clock = clock
        self.held_until = 0.0
        self.in_flight = 0

    def delay(self, now: float) -> float:
        """Seconds until one more is allowed (0 if now)."""
        wait = self.held_until - now
        for count, seconds, stamps in self.windows:
            while stamps and stamps[0] <= now - seconds:
                stamps.popleft()
            over = len(stamps) + self.in_flight - count  # must leave the window first, plus one
            if over < 0:
                continue
            # With no answer in the window to wait out, only an answer can free a place.
            wait = max(wait, self.POLL if over >= len(stamps) else stamps[over] + seconds - now)
        return max(wait, 0.0)

    def take(self, now: float) -> None:
        """One request that arrived at `now`."""
        for _, _, stamps in self.windows:
            stamps.append(now)

    def begin(self) -> None:
        self.in_flight += 1

    def end(self, now: float) -> None:
        """The request begun last-but-any is answered: it counts as having arrived `now`."""
        self.in_flight = max(self.in_flight - 1, 0)
        self.take(now)

    def withdraw(self) -> None:
        """The request begun is not sent after all: it frees its place without counting."""
        self.in_flight = max(self.in_flight - 1, 0)

    def room(self, now: float) -> int:
        """How many more its fullest window takes now."""
        left = []
        for count, seconds, stamps in self.windows:
            while stamps and stamps[0] <= now - seconds:
                stamps.popleft()
            left.append(count - len(stamps) - self.in_flight)
        return max(min(left, default=0), 0)

    def idle(self) -> bool:
        return not self.in_flight and all(not stamps for _, _, stamps in self.windows)

    def hold(self, seconds: float) -> None:
        self.held_until = max(self.held_until, self.clock() + seconds)


async def acquire(limiters: Sequence[Limiter], clock: Callable[[], float] = time.monotonic) -> None:
    """Wait until every limiter allows one more, and begin it on all of them at once; `release`
    when it is answered."""
    while True:
        now = clock()
        wait = max((limiter.delay(now) for limiter in limiters), default=0.0)
        if wait <= 0:
            for limiter in limiters:
                limiter.begin()
            return
        await asyncio.sleep(wait)


def release(limiters: Sequence[Limiter], clock: Callable[[], float] = time.monotonic) -> None:
    now = clock()
    for limiter in limiters:
        limiter.end(now)


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
        """Wait until both the conversation and the app allow one more, and take it; `answered`
        when the platform has answered it (or it failed)."""
        await acquire(self.limiters(platform, address))

    def answered(self, platform: str, address: str) -> None:
        release(self.limiters(platform, address))

    def withdrawn(self, platform: str, address: str) -> None:
        """The turn taken is not used (the message already shows what was to be sent)."""
        for limiter in self.limiters(platform, address):
            limiter.withdraw()

    async def ready(self, platform: str, address: str) -> None:
        """Wait until the conversation alone would allow one more, taking nothing: a lane waits
        here without holding one of the worker's sending slots."""
        limiters = self.limiters(platform, address)
        while limiters and (wait := limiters[0].delay(time.monotonic())) > 0:
            await asyncio.sleep(wait)

    def short(self, platform: str, wanted: int) -> bool:
        """Whether the app's windows have less room than `wanted` requests."""
        app = self.apps.get(platform)
        return app is not None and app.room(time.monotonic()) < wanted

    def _forget_idle(self) -> None:
        now = time.monotonic()
        for key, limiter in list(self.conversations.items()):
            if limiter.delay(now) == 0 and limiter.idle():
                del self.conversations[key]
