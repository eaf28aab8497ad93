"""The server's door: how long a client may take over a request's headers and over its body, and
how many connections may be open at once, so that slow clients (slowloris) cannot hold Touchline.

aiohttp's server has no timeout of its own for a request's headers or its body (its keep-alive
timeout, an hour by default, is for connections waiting between requests), so each connection is
watched here: `Door` is the protocol factory of the listening socket, around aiohttp's own;
`keep` and `read_within` are the middlewares that tell it where a request stands.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

log = logging.getLogger(__name__)

IDLE = "idle"  # between requests: aiohttp's keep-alive timeout (IDLE_TIMEOUT) closes it
SPEAKING = "speaking"  # sending a request's headers, within HEADER_TIMEOUT
READING = "reading"  # headers in, the body being read, within BODY_TIMEOUT
ANSWERING = "answering"  # the whole request in, Touchline working on it: never cut off
# Written straight to the socket of a connection refused at once: no request was read.
FULL = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
TELL_EVERY = 60.0  # seconds between warnings that connections were refused


@dataclass(frozen=True)
class Limits:
    """Seconds for a request's headers (from connecting, or from the first byte of the next request
    on a kept-alive connection) and for its body (once the headers are in); connections at once."""

    header_timeout: float = 10.0
    body_timeout: float = 10.0
    max_connections: int = 256


class Door:
    """The listening socket's protocol factory, around aiohttp's `Server`. With every connection
    taken, a new one pushes out the one that has waited longest without being answered (an idle
    kept-alive connection, or one still sending its request); if all are being answered, it is
    refused with 503."""

    def __init__(self, server: Callable[[], asyncio.Protocol], limits: Limits) -> None:
        self.server = server
        self.limits = limits
        self.visits: set[Visit] = set()
        self._refused = 0
        self._told: float | None = None

    def __call__(self) -> Visit:
        return Visit(self)

    def admit(self, visit: Visit) -> bool:
        if len(self.visits) >= self.limits.max_connections:
            waiting = [other for other in self.visits if other.phase != ANSWERING]
            if not waiting:
                self._refuse()
                return False
            longest = min(waiting, key=lambda other: other.since)
            log.debug("closed a connection (%s) to make room: MAX_CONNECTIONS are open", longest.phase)
            longest.leave()
        self.visits.add(visit)
        return True

    def _refuse(self) -> None:
        self._refused += 1
        now = time.monotonic()
        # At most one line a minute, however many are refused.
        if self._told is None or now - self._told >= TELL_EVERY:
            log.warning(
                "refused %d connection(s): all %d allowed (MAX_CONNECTIONS) are being answered",
                self._refused,
                self.limits.max_connections,
            )
            self._refused, self._told = 0, now


class Visit(asyncio.Protocol):
    """One connection: aiohttp's protocol inside it, and where its request stands."""

    def __init__(self, door: Door) -> None:
        self.door = door
        self.inner: asyncio.Protocol | None = None
        self.transport: asyncio.Transport | None = None
        self.phase = SPEAKING
        self.since = 0.0  # when the current phase began (the event loop's clock)
        self._clock: asyncio.TimerHandle | None = None
        self._heard_ahead = False  # bytes of the next request arrived while this one was answered

    # --- asyncio's protocol, handed on to aiohttp's ---------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.since = asyncio.get_running_loop().time()
        if not self.door.admit(self):
            self.transport.write(FULL)
            self.transport.close()
            return
        self.inner = self.door.server()
        self.inner.connection_made(transport)
        self._speak()

    def data_received(self, data: bytes) -> None:
        if self.inner is None:
            return
        if self.phase == IDLE:
            self._speak()
        elif self.phase == ANSWERING:
            self._heard_ahead = True
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.inner is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_clock()
        self.door.visits.discard(self)
        if self.inner is not None:
            self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_writing()

    # --- where the request stands, told by the middlewares ----------------------------------------------

    def heard(self) -> None:
        """The request's headers are in: its body is next."""
        self._stop_clock()
        self.phase = READING

    def answering(self) -> None:
        """The whole request is in."""
        self.phase = ANSWERING
        self._heard_ahead = False

    def answered(self) -> None:
        """Touchline has its answer: the connection waits for the next request (or, if that has
        begun to arrive meanwhile, for the rest of its headers)."""
        self.phase, self.since = IDLE, asyncio.get_running_loop().time()
        if self._heard_ahead:
            self._speak()

    def leave(self) -> None:
        self.door.visits.discard(self)  # now: its room is free before the close completes
        if self.transport is not None:
            self.transport.close()

    def _speak(self) -> None:
        loop = asyncio.get_running_loop()
        self.phase, self.since = SPEAKING, loop.time()
        self._stop_clock()
        self._clock = loop.call_later(self.door.limits.header_timeout, self._too_slow)

    def _too_slow(self) -> None:
        self._clock = None
        if self.phase == SPEAKING:
            log.debug("closed a connection whose request's headers took over HEADER_TIMEOUT")
            self.leave()

    def _stop_clock(self) -> None:
        if self._clock is not None:
            self._clock.cancel()
            self._clock = None


def _visit(request: web.Request) -> Visit | None:
    transport = request.transport
    protocol = transport.get_protocol() if transport is not None else None
    return protocol if isinstance(protocol, Visit) else None


@web.middleware
async def keep(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The outermost middleware: the request's headers are in, and, when it returns, its answer."""
    visit = _visit(request)
    if visit is not None:
        visit.heard()
    try:
        return await handler(request)
    finally:
        if visit is not None:
            visit.answered()


def read_within(seconds: float) -> Middleware:
    """The innermost middleware: the whole body read before any route sees it, within `seconds`
    (else 408, and the connection closed); a body that breaks off or is not valid HTTP is a 400
    without a traceback in the log, since whoever sent it may be anyone."""

    @web.middleware
    async def read_in_time(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.content_type.startswith("multipart/"):
            # No route takes one, and once read ahead aiohttp could not parse it for them.
            raise web.HTTPUnsupportedMediaType(text="Touchline takes no multipart bodies.")
        try:
            async with asyncio.timeout(seconds):
                await request.read()  # kept by aiohttp: the routes' read(), json() and post() use it
        except TimeoutError:
            return await _cut_off(request)
        except (ConnectionError, web.RequestPayloadError):
            # Gone, or a chunk aiohttp cannot parse: nobody to tell, or nothing to tell them.
            return web.Response(status=400, text="The request's body could not be read.")
        visit = _visit(request)
        if visit is not None:
            visit.answering()
        return await handler(request)

    return read_in_time


async def _cut_off(request: web.Request) -> web.StreamResponse:
    """408, written now, and the connection closed: aiohttp would otherwise linger, reading what is
    left of the body before closing."""
    response = web.Response(status=408, text="The request's body came too slowly.")
    response.force_close()
    await response.prepare(request)
    await response.write_eof()
    if request.transport is not None:
        request.transport.close()
    return response
