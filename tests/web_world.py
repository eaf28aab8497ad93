"""Touchline's whole server on an ephemeral port, in a thread of its own, for the browser tests."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bot.config import Environment
from bot.server import Touchline
from handlers.context import Context

CHROMIUM = Path("/usr/bin/chromium")
# As the machine's notes say: without these, Chromium keeps trying to reach Google's hosts.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@dataclass
class Served:
    url: str  # http://127.0.0.1:<port>
    touchline: Touchline


@contextmanager
def serving(ctx: Context, env: Environment | None = None) -> Iterator[Served]:
    """`touchline serve` as it runs for real (web page, delivery worker), on a port the system picks."""
    touchline = Touchline.build(ctx, env or Environment(port=0))
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    found: dict[str, object] = {}

    async def main() -> None:
        stop = asyncio.Event()
        found["stop"] = stop

        async def on_ready(address: str) -> None:
            found["url"] = address
            ready.set()

        try:
            await touchline.run(stop, on_ready=on_ready)
        except BaseException as error:
            found["error"] = error
            ready.set()
            raise

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(20), "the server did not start"
    assert "error" not in found, found.get("error")
    try:
        yield Served(str(found["url"]), touchline)
    finally:
        stop = found["stop"]
        assert isinstance(stop, asyncio.Event)
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        loop.close()
