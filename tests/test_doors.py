"""The doors an outsider could use, tried from outside against a real `touchline serve`:
`/metrics` kept private, and the web page's Origin and Host checks."""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiohttp import ClientSession, CookieJar, web
from aiohttp.test_utils import TestServer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from handlers.context import Context
from storage.models import Objection
from tests.cli import run_cli
from tests.conftest import ROOT
from tests.fakes import rows
from tests.slack_world import World, run
from tests.test_slack import REP1, sctx  # noqa: F401  (the fixture)
from tests.test_web import link_for
from tests.web_world import serving as web_serving


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def fetch(url: str, headers: dict[str, str] | None = None, data: bytes | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers or {}, data=data)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


@contextmanager
def serving(tmp_path: Path, **settings: str) -> Iterator[str]:
    """`touchline serve --no-console` in its own process, with `settings` in its environment."""
    (tmp_path / "app.yaml").write_text((ROOT / "app.yaml").read_text())
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "MICROSOFT_", "DATABASE_URL"))},
        "PORT": str(port),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'touchline.db'}",
        **settings,
    }
    touchline = str(Path(sys.executable).with_name("touchline"))
    subprocess.run([touchline, "migrate"], cwd=tmp_path, env=env, check=True, capture_output=True)
    server = subprocess.Popen(
        [touchline, "serve", "--no-console"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if fetch(f"{base}/healthz")[0] == 200:
                    break
            except OSError:
                time.sleep(0.2)
        else:
            server.terminate()
            raise AssertionError(
                f"touchline serve did not start: {server.communicate(timeout=30)[1][-2000:]!r}"
            )
        yield base
    finally:
        server.terminate()
        server.communicate(timeout=30)


def test_metrics_ask_for_their_token_when_one_is_set(tmp_path: Path) -> None:
    token = "metrics-token-7d1e8a2b"
    with serving(tmp_path, METRICS_TOKEN=token) as base:
        assert fetch(f"{base}/metrics")[0] == 401
        assert fetch(f"{base}/metrics", {"Authorization": "Bearer not-the-token-at-all"})[0] == 401
        status, body = fetch(f"{base}/metrics", {"Authorization": f"Bearer {token}"})
        assert status == 200 and "touchline_" in body


def test_metrics_on_an_address_of_their_own_are_gone_from_the_public_port(tmp_path: Path) -> None:
    apart = free_port()
    with serving(tmp_path, METRICS_PORT=str(apart)) as base:
        assert fetch(f"{base}/metrics")[0] == 404
        status, body = fetch(f"http://127.0.0.1:{apart}/metrics")
        assert status == 200 and "touchline_" in body


# --- the web page behind a TLS-terminating proxy, and locally under another name ---------------


def _certificate(folder: Path) -> ssl.SSLContext:
    """A self-signed certificate for 127.0.0.1, as a proxy in front of Touchline would have one."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .sign(key, hashes.SHA256())
    )
    (folder / "proxy.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (folder / "proxy.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(folder / "proxy.pem", folder / "proxy.key")
    return context


HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "upgrade", "host", "content-length"}


@asynccontextmanager
async def tls_proxy(backend: str, folder: Path) -> AsyncIterator[str]:
    """A reverse proxy that ends TLS and passes each request on over plain HTTP, the way nginx's
    `proxy_pass` does: Touchline sees http, its own host and port, and X-Forwarded-* headers."""
    async with ClientSession() as upstream:

        async def forward(request: web.Request) -> web.StreamResponse:
            headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
            headers |= {"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Proto": "https"}
            async with upstream.request(
                request.method,
                backend + request.path_qs,
                headers=headers,
                data=await request.read(),
                allow_redirects=False,
            ) as answer:
                body = await answer.read()
                response = web.Response(status=answer.status, body=body)
                for key, value in answer.headers.items():
                    if key.lower() not in HOP_BY_HOP | {"content-encoding"}:
                        response.headers.add(key, value)
                return response

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", forward)
        server = TestServer(app, host="127.0.0.1", port=0)
        await server.start_server(ssl=_certificate(folder))
        try:
            yield f"https://127.0.0.1:{server.port}"
        finally:
            await server.close()


def test_sign_in_works_behind_a_tls_terminating_proxy_and_refuses_other_sites(
    sctx: Context,  # noqa: F811
    tmp_path: Path,
) -> None:
    async def scenario(world: World) -> None:
        backend = world.url.removesuffix("/slack/events")
        async with tls_proxy(backend, tmp_path) as public:
            world.ctx.public_url = public  # PUBLIC_URL: where browsers reach Touchline
            client = ssl.create_default_context(cafile=str(tmp_path / "proxy.pem"))
            _, first = await link_for(world, REP1, 1)
            _, second = await link_for(world, REP1, 2)
            async with ClientSession(cookie_jar=CookieJar(unsafe=True)) as browser:
                async with browser.get(f"{public}/sign-in/{first}", ssl=client) as response:
                    assert response.status == 200 and "Open the dashboard" in await response.text()
                # A browser sends the page's own origin with the form: the proxy's, not Touchline's.
                sent = {"Origin": public}
                async with browser.post(f"{public}/sign-in/{first}", headers=sent, ssl=client) as response:
                    page = await response.text()
                    assert response.status == 200 and "Rita Rep (rep)" in page, page[:300]
                elsewhere = {"Origin": "https://touchline.evil.example"}
                signing_in = f"{public}/sign-in/{second}"
                async with browser.post(signing_in, headers=elsewhere, ssl=client) as response:
                    assert response.status == 403 and "another site" in await response.text()
                # Touchline's own http address is not where the page lives either.
                own = {"Origin": backend}
                async with browser.post(signing_in, headers=own, ssl=client) as response:
                    assert response.status == 403

    run(sctx, scenario)


def test_locally_the_page_answers_only_under_this_machine_s_own_names(ctx: Context) -> None:
    with web_serving(ctx) as served:
        port = served.url.rsplit(":", 1)[1]
        assert fetch(f"{served.url}/", {"Host": f"127.0.0.1:{port}"})[0] == 200
        assert fetch(f"{served.url}/", {"Host": f"localhost:{port}"})[0] == 200
        # DNS rebinding: another site's name that now points here.
        status, page = fetch(f"{served.url}/", {"Host": f"rebind.evil.example:{port}"})
        assert status == 421 and "127.0.0.1" in page
        assert fetch(f"{served.url}/try", {"Host": "rebind.evil.example"})[0] == 421
        # A form from another site is refused; one from this machine is taken.
        form = b"as=rep1&text=%2Fhelp"
        other = {"Origin": "http://rebind.evil.example", "Content-Type": "application/x-www-form-urlencoded"}
        assert fetch(f"{served.url}/try/command", other, form)[0] == 403
        mine = {**other, "Origin": f"http://localhost:{port}"}
        assert fetch(f"{served.url}/try/command", mine, form)[0] == 200


# --- what passes `touchline check` must not break start-up or a run ----------------------------


def test_touchline_check_refuses_what_would_break_start_up_or_a_run_at_its_line(tmp_path: Path) -> None:
    shipped = (ROOT / "app.yaml").read_text()
    twins = "people:\n" + "".join(f"  twin{n}: {{name: Twin {n}, slack: U0TWIN00001}}\n" for n in (1, 2))
    broken = {
        "twins": (
            shipped.replace("people:\n", twins, 1),
            "people.twin2.slack: U0TWIN00001 is twin1's slack too",
        ),
        "forever": (shipped.replace("open_for: 3d", "open_for: 999999999d"), "longer than a year"),
        "surrogate": (
            shipped.replace("title: Alignment pulse", 'title: "Align\\ud800ment"'),
            "surveys.alignment.title: has a broken character",
        ),
    }
    for name, (text, said) in broken.items():
        (tmp_path / "app.yaml").write_text(text)
        done = run_cli("check", cwd=tmp_path)
        assert done.returncode == 2 and said in done.stderr and "app.yaml:" in done.stderr, (
            name,
            done.stderr,
        )
        assert "Traceback" not in done.stderr


def test_a_lone_surrogate_from_a_platform_is_refused_with_a_message_and_nothing_is_stored(
    sctx: Context,  # noqa: F811
) -> None:
    async def scenario(world: World) -> None:
        await world.command("objection", "", REP1)
        view = await world.opened(1)
        # Slack's JSON can carry half of an emoji: "\ud83d" alone.
        answer = await world.submit(view, REP1, {"text": "too expensive \ud83d vs Acme", "severity": "high"})
        await world.settled()
        assert rows(world.ctx.db, Objection) == []
        said = json.dumps(world.fake.called("chat.postEphemeral") + world.fake.called("response_url"))
        assert "broken character" in said or "broken character" in json.dumps(answer)
        assert "went wrong" not in said

    run(sctx, scenario)
