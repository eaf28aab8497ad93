"""What the fake platforms enforce: rate limits (429 with Retry-After past them) and injected
faults (5xx answers, connections dropped), with a count of each."""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import Counter, deque
from dataclasses import dataclass, field

from aiohttp import web

Windows = list[tuple[int, float]]


@dataclass
class Gate:
    """`per_conversation` and `per_app` limits as the platform enforces them; `errors` and `drops`
    are the shares of requests answered 503, or left hanging then cut."""

    per_conversation: Windows = field(default_factory=list)
    per_app: Windows = field(default_factory=list)
    errors: float = 0.0
    drops: float = 0.0
    hang: float = 2.0
    # Seconds of each window forgiven (network jitter): none by default, so that every window is
    # counted in full; "the least time the limits allow" must use the same figure.
    tolerance: float = 0.0
    seed: int = 7
    counts: Counter[str] = field(default_factory=Counter)
    # The most requests let through within any one window, by ("app" or "conversation", seconds):
    # what the limits were held to, to print beside them.
    most: dict[tuple[str, float], int] = field(default_factory=dict)
    _stamps: dict[str, list[deque[float]]] = field(default_factory=dict)
    _random: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    async def check(self, request: web.Request, conversation: str) -> web.StreamResponse | None:
        """None to let the request through; else the answer that refuses it."""
        roll = self._random.random()
        if roll < self.drops:
            self.counts["dropped"] += 1
            await asyncio.sleep(self.hang)
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=504)
        if roll < self.drops + self.errors:
            self.counts["5xx"] += 1
            return web.json_response({"ok": False, "error": "fake_outage"}, status=503)
        now = time.monotonic()
        wait = max(self._wait("app", self.per_app, now), self._wait(conversation, self.per_conversation, now))
        if wait > 0:
            self.counts["429"] += 1
            return web.json_response(
                {"ok": False, "error": "ratelimited"},
                status=429,
                headers={"Retry-After": str(math.ceil(wait))},
            )
        for scope, key, windows in (
            ("app", "app", self.per_app),
            ("conversation", conversation, self.per_conversation),
        ):
            for (_, seconds), stamps in zip(windows, self._windows(key, windows), strict=True):
                stamps.append(now)
                # The window ending now holds every request since now - seconds (older ones were dropped).
                inside = sum(1 for stamp in stamps if stamp > now - seconds)
                self.most[(scope, seconds)] = max(self.most.get((scope, seconds), 0), inside)
        return None

    def _windows(self, key: str, windows: Windows) -> list[deque[float]]:
        return self._stamps.setdefault(key, [deque() for _ in windows])

    def _wait(self, key: str, windows: Windows, now: float) -> float:
        wait = 0.0
        for (count, seconds), stamps in zip(windows, self._windows(key, windows), strict=True):
            while stamps and stamps[0] <= now - seconds + self.tolerance:
                stamps.popleft()
            if len(stamps) >= count:
                wait = max(wait, stamps[0] + seconds - now)
        return wait
