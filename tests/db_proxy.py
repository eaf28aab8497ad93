"""A TCP relay in front of the local PostgreSQL, in a thread of its own, that the tests can cut: every
session is killed and new connections are refused, as when the database server goes away."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

from sqlalchemy.engine import make_url


@dataclass
class Relay:
    port: int = 0
    cut: threading.Event = field(default_factory=threading.Event)
    refused: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    def url(self, database_url: str) -> str:
        """`database_url` reached through the relay."""
        return (
            make_url(database_url).set(host="127.0.0.1", port=self.port).render_as_string(hide_password=False)
        )

    def down(self) -> None:
        """Kill every session through the relay, and refuse new ones until `up`."""
        self.cut.set()
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._close_all)

    def up(self) -> None:
        self.cut.clear()

    def _close_all(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with suppress(OSError, asyncio.IncompleteReadError):
        while data := await reader.read(65_536):
            writer.write(data)
            await writer.drain()
    writer.transport.abort()


@contextmanager
def relay_to(host: str = "127.0.0.1", port: int = 5432) -> Iterator[Relay]:
    relay = Relay()
    loop = asyncio.new_event_loop()
    relay._loop = loop
    ready = threading.Event()
    stopping = asyncio.Event()

    async def serve(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        if relay.cut.is_set():
            relay.refused += 1
            client_writer.transport.abort()
            return
        try:
            server_reader, server_writer = await asyncio.open_connection(host, port)
        except OSError:
            client_writer.transport.abort()
            return
        relay._writers.update((client_writer, server_writer))
        await asyncio.gather(_pipe(client_reader, server_writer), _pipe(server_reader, client_writer))
        relay._writers.difference_update((client_writer, server_writer))

    async def main() -> None:
        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        relay.port = server.sockets[0].getsockname()[1]
        ready.set()
        async with server:
            await stopping.wait()
            relay._close_all()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield relay
    finally:
        loop.call_soon_threadsafe(stopping.set)
        thread.join(timeout=10)
        loop.close()
