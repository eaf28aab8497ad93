"""What reaches the log, read from outside: a real `touchline serve` sent requests nobody signed
writes none of their bodies at any level, however many and however large; and no text in a log
record can start a line of its own, in either format."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiohttp import ClientSession, ClientTimeout

from tests.conftest import ROOT
from tests.serving import serving

MARKER = "unsigned-body-7c1f"  # in every body sent: it must appear in no log line
FORGED = "\n2026-12-01 INFO bot: forged"
FORM = "application/x-www-form-urlencoded"
LARGE = 500_000  # bytes, half of the megabyte a request may be
# What a log line begins with, in the text format: when it was written and at which level.
RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) ")


async def _post_unsigned(url: str) -> list[int]:
    """200 bodies of 500 kB and 200 that hold a log line of their own, each half with no
    signature at all and half with a made-up one of Slack's shape; all at once, 8 at a time."""
    stamp = str(int(time.time()))
    guessed = {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": "v0=" + "0" * 64}
    bodies = [f"text={MARKER}" + "x" * LARGE] * 200 + [f"text={MARKER}{FORGED}\x1b[31m\r\n{FORGED}"] * 200
    room = asyncio.Semaphore(8)
    async with ClientSession(timeout=ClientTimeout(total=60)) as http:

        async def post(number: int, body: str) -> int:
            headers = {"Content-Type": FORM, **(guessed if number % 2 else {})}
            async with room, http.post(f"{url}/slack/events", data=body.encode(), headers=headers) as answer:
                await answer.read()
                return answer.status

        return await asyncio.gather(*(post(number, body) for number, body in enumerate(bodies)))


def _send_raw(port: int, data: bytes, *, hang_up: bool = False) -> bytes:
    """Bytes as they are, on a socket of their own: what comes back before the server closes
    (or, with `hang_up`, nothing: the client leaves halfway through its body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        if hang_up:
            time.sleep(0.05)
            return b""
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        return answer


def _post_broken(port: int) -> None:
    """Bodies aiohttp itself cannot read: a chunked body whose chunk size is the body's text, and
    bodies cut off halfway by a client that goes away."""
    head = f"POST /slack/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {FORM}\r\n"
    for _ in range(20):
        chunked = f"{head}Transfer-Encoding: chunked\r\n\r\n{MARKER}{FORGED}\r\n{MARKER}\r\n0\r\n\r\n"
        assert _send_raw(port, chunked.encode()).split(b" ")[1] == b"400"
        cut = f"{head}Content-Length: 100000\r\n\r\ntext={MARKER}{FORGED}"
        _send_raw(port, cut.encode(), hang_up=True)


@pytest.mark.parametrize(("level", "fmt"), [("INFO", "text"), ("DEBUG", "text"), ("DEBUG", "json")])
def test_unsigned_requests_leave_nothing_of_their_bodies_in_the_log_at_any_level(
    tmp_path: Path, level: str, fmt: str
) -> None:
    with serving(tmp_path, LOG_LEVEL=level, LOG_FORMAT=fmt) as served:
        # What start-up still writes once the server answers (the scheduler's first lines, late
        # on a busy machine) is not what the requests wrote: wait until the log is still.
        started, deadline = -1, time.monotonic() + 20
        while (now := len(served.log().encode())) != started and time.monotonic() < deadline:
            started = now
            time.sleep(1.0)
        statuses = asyncio.run(_post_unsigned(served.url))
        _post_broken(served.port)
        time.sleep(0.5)  # whatever the server still had to write
        log = served.log()
    assert set(statuses) == {401}
    written = len(log.encode()) - started
    print(f"{level} {fmt}: {written} bytes of log for 400 unsigned requests and 40 broken ones")
    assert MARKER not in log and "forged" not in log
    # Was 200 MB and more (each body logged whole by Bolt at INFO). Now nothing at INFO, and at
    # DEBUG one short line for each request that is not valid HTTP (the chunked ones).
    assert written < (8_000 if level == "DEBUG" else 1_000)
    if fmt == "json":
        for line in log.splitlines():
            if line.startswith("{"):
                json.loads(line)


LOGGING = """
import logging, sys
from bot import logs
logs.configure("DEBUG", sys.argv[1])
log = logging.getLogger("bot.test")
log.warning("said %s", "ok\\n2026-12-01 INFO bot: forged\\r\\x1b[2J\\x85next\\u2028line\\u2029end\\u202eevil")
log.info("\\n2026-12-01 INFO bot: forged in the message itself")
try:
    raise ValueError("a message\\n2026-12-01 INFO bot: forged in an exception")
except ValueError:
    log.exception("failed: %r", "quoted\\nline")
"""


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_newline_or_control_in_what_is_logged_never_starts_a_line_of_its_own(fmt: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", LOGGING, fmt], capture_output=True, cwd=ROOT, timeout=60, check=True
    )
    lines = done.stderr.decode("utf-8").splitlines()  # splits at \r, \x85, \u2028 too: all of them
    assert len(lines) == 3, lines
    assert not any("\x1b" in line or "\u202e" in line for line in lines)
    if fmt == "text":
        assert all(RECORD.match(line) for line in lines), lines
        assert "forged\\r\\x1b[2J\\x85next\\u2028line\\u2029end\\u202eevil" in lines[0]
        assert "Traceback (most recent call last):\\n" in lines[2] and "forged in an exception" in lines[2]
    else:
        records = [json.loads(line) for line in lines]
        assert [record["level"] for record in records] == ["warning", "info", "error"]
        assert records[0]["message"].endswith("\x85next\u2028line\u2029end\u202eevil")
        assert "forged in an exception" in records[2]["exception"]
