"""Slow and crowding clients, tried from outside on sockets against a real `touchline serve`:
headers or a body sent a byte a second are cut off within their timeout; connections past the cap
push out the one that waited longest, and a request is still answered (or, when every one is being
answered, are refused with 503); and no value of Slack's signing headers is answered 5xx."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import select
import socket
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator

import pytest
from aiohttp import ClientSession, ClientTimeout, web
from hypothesis import assume, example, given
from hypothesis import strategies as st

from bot import door
from tests import slack_fake
from tests.generated import examples
from tests.serving import Served, serving

HEADER_TIMEOUT = 2.5  # between two of the bytes sent a second apart, not at one
BODY_TIMEOUT = 2.5
CAP = 4
LATE = 1.0  # seconds past a timeout the cut may come: the server's clock, and this test's polling
COMMAND = urllib.parse.urlencode({"command": "/objection", "text": "too expensive", "user_id": "U0REP000001"})
HEAD = (
    b"POST /slack/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
)


@pytest.fixture(scope="module")
def impatient(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serving(
        tmp_path_factory.mktemp("impatient"),
        HEADER_TIMEOUT=str(HEADER_TIMEOUT),
        BODY_TIMEOUT=str(BODY_TIMEOUT),
    ) as served:
        yield served


@pytest.fixture(scope="module")
def crowded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serving(tmp_path_factory.mktemp("crowded"), MAX_CONNECTIONS=str(CAP), HEADER_TIMEOUT="60") as served:
        yield served


def connect(served: Served) -> socket.socket:
    return socket.create_connection(("127.0.0.1", served.port), timeout=10)


def hung_up(sock: socket.socket, wait: float) -> bytes | None:
    """What the server sent before closing, if it closes within `wait` seconds; None if it is
    still open then."""
    said = b""
    deadline = time.monotonic() + wait
    while (left := deadline - time.monotonic()) > 0:
        if not select.select([sock], [], [], left)[0]:
            return None
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return said
        if not chunk:
            return said
        said += chunk
    return None


def trickle(sock: socket.socket, data: bytes) -> tuple[float, bytes] | None:
    """`data` a byte a second, until the server hangs up: how long after the first byte it did,
    and what it said; None if it never did (at most 20 s)."""
    began = time.monotonic()
    for byte in data[:20]:
        try:
            sock.sendall(bytes([byte]))
        except OSError:
            return time.monotonic() - began, b""
        said = hung_up(sock, 1.0)
        if said is not None:
            return time.monotonic() - began, said
    return None


def test_a_client_sending_its_headers_a_byte_a_second_is_cut_off_within_the_header_timeout(
    impatient: Served,
) -> None:
    with connect(impatient) as sock:
        cut = trickle(sock, HEAD)
    assert cut is not None, "still connected after 20 s"
    assert HEADER_TIMEOUT - 0.2 <= cut[0] <= HEADER_TIMEOUT + LATE, cut


def test_a_client_sending_its_body_a_byte_a_second_is_cut_off_within_the_body_timeout(
    impatient: Served,
) -> None:
    body = COMMAND.encode()
    with connect(impatient) as sock:
        sock.sendall(HEAD + f"Content-Length: {len(body)}\r\n\r\n".encode())
        cut = trickle(sock, body)
    assert cut is not None, "still connected after 20 s"
    assert BODY_TIMEOUT - 0.2 <= cut[0] <= BODY_TIMEOUT + LATE, cut
    assert cut[1].startswith(b"HTTP/1.1 408 "), cut[1]


def test_connections_past_the_cap_push_out_the_longest_waiting_and_a_request_is_still_answered(
    crowded: Served,
) -> None:
    idle = []
    try:
        for _ in range(CAP + 1):
            idle.append(connect(crowded))
            time.sleep(0.05)  # so that which waited longest is clear
        assert hung_up(idle[0], 2.0) is not None, "the longest waiting connection is still open"
        assert all(hung_up(sock, 0.2) is None for sock in idle[1:])
        with urllib.request.urlopen(f"{crowded.url}/healthz", timeout=10) as answer:  # a fifth, at the cap
            assert answer.status == 200
        assert hung_up(idle[1], 2.0) is not None, "the next longest waiting made room for it"
        assert all(hung_up(sock, 0.2) is None for sock in idle[2:])
    finally:
        for sock in idle:
            sock.close()


# --- Slack's signing headers, whatever they hold --------------------------------------------------

NOW = b"<now>"  # stands for the time the request is sent: a timestamp that is fresh
NO_LINE_BREAK = st.characters(exclude_characters="\r\n", exclude_categories=["Cs"])
VALUES = st.one_of(
    st.just(NOW),
    st.integers(min_value=-(10**500), max_value=10**500).map(lambda n: str(n).encode()),
    st.text(NO_LINE_BREAK, max_size=80).map(str.encode),
    st.binary(max_size=80).filter(lambda raw: b"\r" not in raw and b"\n" not in raw),  # not UTF-8
    st.sampled_from(
        [
            b"9" * 400,
            b"-1",
            b"1e10",
            b" 1700000000 ",
            b"1_700_000_000",
            "١٧٠٠٠٠٠٠٠٠".encode(),  # digits to int(), not ASCII
            b"v0=" + b"0" * 64,
            ("v0=" + "é" * 32).encode(),
            b"1" * 10_000,
            b"x" * 10_000,
        ]
    ),
)


def status_of(served: Served, stamp: bytes, signature: bytes | None) -> int:
    """POST a slash command with these signing headers, as bytes on the wire; `signature` None:
    signed with Slack's secret over whatever the timestamp is."""
    body = COMMAND.encode()
    stamp = str(int(time.time())).encode() if stamp == NOW else stamp
    if signature is None:
        digest = hmac.new(slack_fake.SECRET.encode(), b"v0:" + stamp + b":" + body, hashlib.sha256)
        signature = f"v0={digest.hexdigest()}".encode()
    request = (
        HEAD + b"Connection: close\r\nContent-Length: " + str(len(body)).encode() + b"\r\n"
        b"X-Slack-Request-Timestamp: " + stamp + b"\r\n"
        b"X-Slack-Signature: " + signature + b"\r\n\r\n" + body
    )
    with connect(served) as sock:
        sock.sendall(request)
        said = hung_up(sock, 10.0)
    assert said, "no answer"
    return int(said.split(b" ", 2)[1])


@examples(100)
@given(stamp=VALUES, signature=st.none() | VALUES)
@example(stamp=b"9" * 400, signature=None)  # signed over it: 500 before
@example(stamp=b"9" * 400, signature=b"v0=" + b"0" * 64)
@example(stamp=NOW, signature=("v0=" + "é" * 32).encode())  # non-ASCII, with a fresh timestamp: 500 before
@example(stamp=b"-1", signature=None)
@example(stamp=b"1" * 10_000, signature=None)
def test_any_value_of_slacks_signing_headers_is_answered_4xx_never_5xx(
    impatient: Served, stamp: bytes, signature: bytes | None
) -> None:
    assume(not (stamp == NOW and signature is None))  # that one is a request Slack sends
    assert 400 <= status_of(impatient, stamp, signature) < 500


def test_a_connection_past_the_cap_is_refused_with_503_while_every_one_is_being_answered() -> None:
    """Touchline's own routes answer too fast to be caught at work from outside: a route that
    waits until told, behind the same door, on 127.0.0.1."""

    async def scenario() -> None:
        release = asyncio.Event()

        async def slow(request: web.Request) -> web.Response:
            await release.wait()
            return web.Response(text="done")

        app = web.Application(middlewares=[door.keep])
        app.router.add_get("/slow", slow)
        app.middlewares.append(door.read_within(BODY_TIMEOUT))
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        assert runner.server is not None
        loop = asyncio.get_running_loop()
        listening = await loop.create_server(
            door.Door(runner.server, door.Limits(max_connections=2)), "127.0.0.1", 0
        )
        port = listening.sockets[0].getsockname()[1]
        url = f"http://127.0.0.1:{port}/slow"
        try:
            async with ClientSession() as http:
                working = [asyncio.create_task(_get(http, url)) for _ in range(2)]
                await asyncio.sleep(0.3)  # both being answered
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                refused = await asyncio.wait_for(reader.read(), 5)
                writer.close()
                assert refused.startswith(b"HTTP/1.1 503 ")
                release.set()
                assert await asyncio.gather(*working) == [200, 200]
                assert await _get(http, url) == 200  # room again
        finally:
            listening.close()
            await runner.cleanup()

    asyncio.run(scenario())


async def _get(http: ClientSession, url: str) -> int:
    async with http.get(url, timeout=ClientTimeout(total=10)) as answer:
        await answer.read()
        return answer.status
