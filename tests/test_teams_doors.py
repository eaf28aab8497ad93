"""The Teams doors an outsider could use, tried from outside over real HTTP: the Emulator's
unauthenticated mode, `serviceUrl` as a way to make the server send anywhere, and Microsoft's key
host as a way to stop the whole server (issue 16, items 1 to 3)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import jwt
import pytest
from aiohttp import ClientSession, ClientTimeout, web
from aiohttp.test_utils import TestServer
from pydantic import SecretStr

from bot.config import Environment, parse_organisation_text
from bot.platform import DeliveryError
from bot.server import Touchline
from bot.teams import keys, tokens
from handlers import conversations, setup
from handlers.context import Context
from handlers.ui import Card
from storage.database import Database
from storage.models import Conversation, Outbox
from tests import slack_fake
from tests.cli import run_cli
from tests.conftest import ROOT
from tests.fakes import Clock, rows
from tests.slack_world import World
from tests.teams_fake import (
    KeyHost,
    User,
    activity,
    fake_connector,
    installed,
    key_host,
    signing_key,
    unanswering_host,
)
from tests.teams_world import TeamsWorld, teams_world
from tests.test_teams import DECISION
from tests.web_world import serving

APP_ID = "5d0c8f5e-0000-4000-8000-00000000d00a"
PASSWORD = "not-a-real-secret-0000"
LEAD = User("0d1e4c6a-1111-4b9e-9e9f-73e0c02bf4ea", "Lena Leader")
REP = User("0d1e4c6a-2222-4b9e-9e9f-73e0c02bf4ea", "Rita Rep")
TEAM = "19:salesemea0000000000000000000000@thread.tacv2"
SLACK_LEAD, SLACK_CHANNEL = "U0LEAD00001", "C0SALESEMEA"
ORG = f"""\
organisation: {{name: Doors Co, timezone: Europe/Berlin}}
people:
  lead: {{name: Lena Leader, slack: {SLACK_LEAD}, teams: {LEAD.aad}}}
  rep: {{name: Rita Rep, teams: {REP.aad}}}
roles: {{leader: [lead], rep: [rep]}}
audiences:
  emea: {{targets: ["slack:{SLACK_CHANNEL}", "teams:{TEAM}"], members: [rep]}}
"""


@pytest.fixture
def dctx(db: Database, clock: Clock) -> Context:
    ctx = Context(db=db, org=parse_organisation_text(ORG), clock=clock)
    setup.apply(ctx)
    return ctx


def slack_env(slack: slack_fake.FakeSlack, **more: object) -> Environment:
    return Environment(
        slack_bot_token=SecretStr(slack_fake.TOKEN),
        slack_signing_secret=SecretStr(slack_fake.SECRET),
        slack_api_url=slack.base_url,
        **more,  # type: ignore[arg-type]
    )


def teams_env(**more: object) -> Environment:
    return Environment(
        microsoft_app_id=APP_ID,
        microsoft_app_password=SecretStr(PASSWORD),
        **more,  # type: ignore[arg-type]
    )


@asynccontextmanager
async def served(ctx: Context, env: Environment) -> AsyncIterator[str]:
    """Touchline's web app on an ephemeral port: its base URL."""
    touchline = Touchline.build(ctx, env)
    server = TestServer(touchline.web_app(), host="127.0.0.1", port=0)
    await server.start_server()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        await touchline.close()
        await server.close()


async def post_json(http: ClientSession, url: str, body: object, **headers: str) -> int:
    async with http.post(
        url, data=json.dumps(body), headers={"Content-Type": "application/json", **headers}
    ) as r:
        return r.status


# --- 1. The Emulator's mode: only when asked for, never beside credentials, this machine only ------


def test_api_messages_is_not_there_without_teams_credentials_or_the_emulator_asked_for(dctx: Context) -> None:
    async def main() -> None:
        async with fake_connector() as fake, slack_fake.fake_slack() as slack, ClientSession() as http:
            hello = activity(fake, LEAD, text="help")
            for env in (Environment(), slack_env(slack)):  # nothing at all; Slack's credentials alone
                async with served(dctx, env) as base:
                    assert await post_json(http, f"{base}/api/messages", hello) == 404
            async with served(dctx, Environment(teams_emulator=True)) as base:
                assert await post_json(http, f"{base}/api/messages", hello) == 201
            assert [s.conversation for s in fake.sent] == [LEAD.personal]  # the one asked for answered

    asyncio.run(main())


def test_the_emulator_mode_refuses_to_start_beside_any_platform_s_credentials(tmp_path: Path) -> None:
    base = {
        "TEAMS_EMULATOR": "1",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'touchline.db'}",
        "TOUCHLINE_CONFIG": str(ROOT / "app.yaml"),
    }
    for credentials in (
        {"SLACK_BOT_TOKEN": slack_fake.TOKEN, "SLACK_SIGNING_SECRET": slack_fake.SECRET},
        {"MICROSOFT_APP_ID": APP_ID},
        {"SLACK_APP_TOKEN": "xapp-1-A0APP00001-test"},
    ):
        for command in (["check"], ["serve", "--no-console"]):
            done = run_cli(*command, env={**base, **credentials})
            said = done.stdout + done.stderr
            assert done.returncode != 0, said
            assert "TEAMS_EMULATOR=1" in said and all(name in said for name in credentials), said
            assert "Traceback" not in said and slack_fake.TOKEN not in said
    alone = run_cli("check", env=base)
    assert alone.returncode == 0 and "Bot Framework Emulator mode (TEAMS_EMULATOR=1" in alone.stdout


@asynccontextmanager
async def reverse_proxy(upstream: str, added: dict[str, str]) -> AsyncIterator[str]:
    """A reverse proxy on this machine in front of Touchline, adding the headers it is told to."""
    async with ClientSession() as http:

        async def relay(request: web.Request) -> web.Response:
            headers = {
                k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")
            }
            async with http.request(
                request.method,
                upstream + request.path_qs,
                data=await request.read(),
                headers={**headers, **added},
                allow_redirects=False,
            ) as answer:
                return web.Response(status=answer.status, body=await answer.read())

        app = web.Application()
        app.router.add_route("*", "/{path:.*}", relay)
        server = TestServer(app, host="127.0.0.1", port=0)
        await server.start_server()
        try:
            yield f"http://127.0.0.1:{server.port}"
        finally:
            await server.close()


async def raw_http(url: str, request: bytes) -> int:
    """Send bytes as they are (HTTP/1.0, a Host of one's choosing); the status answered."""
    host, port = url.removeprefix("http://").split("/")[0].split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request)
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), timeout=5)
        return int(status_line.split()[1])
    finally:
        writer.close()


def test_in_emulator_mode_only_requests_that_truly_come_from_this_machine_are_taken(dctx: Context) -> None:
    async def scenario(world: TeamsWorld) -> None:
        body = json.dumps(activity(world.fake, LEAD, text="help")).encode()
        base = world.url.removesuffix("/api/messages")
        for added in (
            {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"},  # nginx's usual lines
            {"X-Forwarded-Host": "touchline.example.com"},
            {"Forwarded": "for=203.0.113.9;proto=https"},
            {"X-Real-IP": "203.0.113.9"},
            {"Via": "1.1 proxy"},
        ):
            async with reverse_proxy(base, added) as proxy:
                assert await post_json(world.http, f"{proxy}/api/messages", json.loads(body)) == 403, added
        port = base.rsplit(":", 1)[1]
        # nginx's plain `proxy_pass http://127.0.0.1:PORT;` adds no header, but speaks HTTP/1.0.
        plain = (
            f"POST /api/messages HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        assert await raw_http(world.url, plain) == 403
        # A web page whose name was made to resolve to 127.0.0.1 (DNS rebinding) says its own name.
        rebound = plain.replace(b"HTTP/1.0", b"HTTP/1.1").replace(
            f"Host: 127.0.0.1:{port}".encode(), f"Host: touchline.attacker.example:{port}".encode()
        )
        assert await raw_http(world.url, rebound) == 403
        assert world.fake.sent == [] and rows(world.ctx.db, Conversation) == []
        # The Emulator itself, on this machine, under either of its names.
        assert await raw_http(world.url, plain.replace(b"HTTP/1.0", b"HTTP/1.1")) == 201
        by_name = plain.replace(b"HTTP/1.0", b"HTTP/1.1").replace(b"Host: 127.0.0.1", b"Host: localhost")
        assert await raw_http(world.url, by_name) == 201
        assert len(world.fake.to(LEAD.personal)) == 2

    async def main() -> None:
        async with teams_world(dctx) as world:
            await scenario(world)

    asyncio.run(main())


# --- 2. serviceUrl: only Bot Framework service URLs are followed --------------------------------


def test_an_activity_whose_service_url_is_not_a_bot_framework_one_is_refused_and_nothing_goes_there(
    dctx: Context,
) -> None:
    async def main() -> None:
        async with fake_connector() as elsewhere, teams_world(dctx, teams_env()) as world:
            refused = [
                elsewhere.base_url,  # a server of the sender's choosing
                "http://169.254.169.254/latest/meta-data/",
                "http://127.0.0.1:5432/",
                "https://smba.trafficmanager.net.attacker.example/amer/",
                "https://smba.trafficmanager.net@attacker.example/amer/",
                "https://attacker.example/smba.trafficmanager.net/",
                "http://smba.trafficmanager.net/amer/",  # not https
                "https://smba.trafficmanager.net:8443/amer/",
                "https://smba.trafficmanager.net/amer/../../",
                world.fake.base_url.replace(
                    "127.0.0.1", "localhost"
                ),  # not the prefix TEAMS_SERVICE_URLS lists
                world.fake.base_url.rstrip("/") + "0/",  # another port that starts the same
                "https://smba.trafficmanager.net/amer/?next=https://attacker.example/",
                None,
                42,
            ]
            for url in refused:
                body = activity(world.fake, REP, text="objection too expensive", serviceUrl=url)
                status, text = await world.send(body, {"Authorization": "Bearer eyJhbGciOiJSUzI1NiJ9.e30.x"})
                assert (status, "serviceUrl" in text) == (403, True), url
            # Teams' own hosts and the listed prefix pass this check (and then need a valid token).
            for url in (
                "https://smba.trafficmanager.net/amer/",
                "https://smba.infra.gov.teams.microsoft.us/teams/",
                "https://SMBA.trafficmanager.net/emea/",
                world.fake.base_url,
                world.fake.base_url + "amer/",
            ):
                body = activity(world.fake, REP, text="objection too expensive", serviceUrl=url)
                assert (await world.send(body))[0] == 401, url
            assert elsewhere.heard == [] and world.fake.heard == []

    asyncio.run(main())


def test_in_emulator_mode_only_service_urls_on_this_machine_are_followed(dctx: Context) -> None:
    async def scenario(world: TeamsWorld) -> None:
        for url in (
            "https://smba.trafficmanager.net/amer/",
            "http://10.0.0.7:3978/",
            "http://attacker.example/",
        ):
            body = activity(world.fake, LEAD, text="help", serviceUrl=url)
            assert (await world.send(body))[0] == 403, url
        for url in (world.fake.base_url, world.fake.base_url.replace("127.0.0.1", "localhost")):
            assert (await world.send(activity(world.fake, LEAD, text="help", serviceUrl=url)))[0] == 201
        assert len(world.fake.to(LEAD.personal)) == 2

    async def main() -> None:
        async with teams_world(dctx) as world:
            await scenario(world)

    asyncio.run(main())


def test_a_stored_conversation_whose_service_url_is_not_allowed_is_not_sent_to(dctx: Context) -> None:
    """A Teams channel remembered before service URLs were checked (or under another
    configuration) pointing somewhere else: the delivery fails with its reason, sending nothing."""

    async def main() -> None:
        async with (
            slack_fake.fake_slack() as slack,
            fake_connector() as connector,
            fake_connector() as elsewhere,
            ClientSession() as http,
        ):
            env = slack_env(slack, microsoft_app_id=APP_ID, microsoft_app_password=SecretStr("not-a-secret"))
            env = env.model_copy(update={"teams_service_urls": connector.base_url})
            touchline = Touchline.build(dctx, env)
            server = TestServer(touchline.web_app(), host="127.0.0.1", port=0)
            await server.start_server()
            try:
                reference = installed(connector, LEAD, team=TEAM)
                await asyncio.to_thread(
                    conversations.remember,
                    dctx,
                    "teams",
                    TEAM,
                    kind=conversations.CHANNEL,
                    reference={
                        "serviceUrl": elsewhere.base_url,
                        "channelId": "msteams",
                        "conversation": reference["conversation"],
                        "bot": reference["recipient"],
                    },
                    name="General",
                    team="Northwind Sales",
                )
                on_slack = World(dctx, touchline, slack, f"http://127.0.0.1:{server.port}/slack/events", http)
                await on_slack.command("strategy", "", SLACK_LEAD)
                view = await on_slack.opened(1)
                await on_slack.submit(view, SLACK_LEAD, {**DECISION, "audiences": ["emea"]})
                await on_slack.deliver()
                assert SLACK_CHANNEL in [c["channel"] for c in slack.called("chat.postMessage")]
                [to_teams] = [r for r in rows(dctx.db, Outbox) if r.platform == "teams" and r.kind == "post"]
                assert to_teams.status == "failed" and "not a Bot Framework service URL" in (
                    to_teams.error or ""
                )
                assert elsewhere.heard == [] and connector.heard == []
            finally:
                await touchline.close()
                await server.close()

    asyncio.run(main())


def test_a_connector_answering_with_a_redirect_is_not_followed(dctx: Context) -> None:
    async def main() -> None:
        async with fake_connector() as elsewhere, teams_world(dctx) as world:
            await world.install(LEAD, TEAM, [LEAD, REP])
            world.fake.redirects[TEAM] = f"{elsewhere.base_url}v3/conversations/{TEAM}/activities"
            await world.say(LEAD, "strategy")
            await world.submit(LEAD, world.latest(LEAD.personal, with_inputs=True), DECISION)
            await world.deliver()
            [post] = [r for r in rows(dctx.db, Outbox) if r.address == TEAM and r.kind == "post"]
            assert post.status == "failed" and "(307)" in (post.error or "")
            assert elsewhere.heard == []  # the message (and, with an app id, the bot's token) went nowhere

    asyncio.run(main())


# --- 3. Microsoft's key host cannot stop the server ---------------------------------------------


def test_a_request_signed_with_the_bot_framework_s_keys_is_taken_and_others_are_not(dctx: Context) -> None:
    """The keys come from MICROSOFT_OPENID_METADATA_URL, fetched off the event loop."""

    async def main() -> None:
        async with key_host(APP_ID, PASSWORD) as microsoft:
            env = teams_env(
                microsoft_openid_metadata_url=microsoft.metadata_url, microsoft_login_url=microsoft.base_url
            )
            async with teams_world(dctx, env) as world:
                # Someone joins a team Touchline is in: nothing to answer, only to remember.
                body = installed(world.fake, LEAD, team=TEAM)
                body["membersAdded"] = [{"id": REP.member_id, "aadObjectId": REP.aad, "name": REP.name}]
                service = body["serviceUrl"]
                forged = [
                    microsoft.token(app_id=APP_ID, service_url=service, key=signing_key()),  # another key
                    microsoft.token(app_id="another-bot", service_url=service),
                    microsoft.token(app_id=APP_ID, service_url="https://smba.trafficmanager.net/amer/"),
                    microsoft.token(app_id=APP_ID, service_url=service, exp=int(time.time()) - 3600),
                    microsoft.token(app_id=APP_ID, service_url=service, iss="https://attacker.example"),
                    jwt.encode(
                        {"iss": "https://api.botframework.com", "aud": APP_ID}, "k" * 32, algorithm="HS256"
                    ),
                ]
                claims = {"iss": "https://api.botframework.com", "aud": APP_ID, "serviceurl": service}
                forged.append(jwt.encode({**claims, "exp": int(time.time()) + 600}, "", algorithm="none"))
                for token in forged:
                    assert (await world.send(body, {"Authorization": f"Bearer {token}"}))[0] == 401
                signed = microsoft.token(app_id=APP_ID, service_url=service)
                for header in ({}, {"Authorization": signed}, {"Authorization": f"Basic {signed}"}):
                    assert (await world.send(body, header))[0] == 401
                # Teams' key, signing for another channel than the one it is endorsed for.
                elsewhere = {**body, "channelId": "webchat"}
                assert (await world.send(elsewhere, {"Authorization": f"Bearer {signed}"}))[0] == 401
                assert rows(world.ctx.db, Conversation) == []
                signed = microsoft.token(app_id=APP_ID, service_url=service)
                assert (await world.send(body, {"Authorization": f"Bearer {signed}"}))[0] in (200, 201)
                [team] = rows(world.ctx.db, Conversation)
                assert (team.address, team.team) == (TEAM, "Northwind Sales")
                assert world.fake.sent == []

    asyncio.run(main())


def test_while_microsoft_s_key_host_does_not_answer_slack_and_the_web_page_still_do(dctx: Context) -> None:
    async def main() -> None:
        async with (
            slack_fake.fake_slack() as slack,
            fake_connector() as connector,
            unanswering_host() as stuck,
        ):
            env = slack_env(
                slack,
                port=0,
                microsoft_app_id=APP_ID,
                microsoft_app_password=SecretStr("not-a-real-secret-0000"),
                teams_service_urls=connector.base_url,
                microsoft_openid_metadata_url=stuck.url,
            )
            # The server in a thread of its own, as it runs: if its event loop stalled, these
            # requests' timeouts still fire.
            with serving(dctx, env) as server:
                async with ClientSession(timeout=ClientTimeout(total=keys.TIMEOUT + 5)) as http:
                    body = activity(connector, REP, text="objection too expensive")
                    # Signed as the Bot Framework signs, by anyone, naming a key id not yet held:
                    # enough to have the keys fetched.
                    token = jwt.encode(
                        {
                            "iss": "https://api.botframework.com",
                            "aud": APP_ID,
                            "serviceurl": connector.base_url,
                            "exp": int(time.time()) + 600,
                        },
                        signing_key(),
                        algorithm="RS256",
                        headers={"kid": "a-key-microsoft-would-have"},
                    )
                    started = time.monotonic()
                    teams = [
                        asyncio.create_task(
                            post_json(
                                http, f"{server.url}/api/messages", body, Authorization=f"Bearer {token}"
                            )
                        )
                        for _ in range(3)
                    ]
                    deadline = time.monotonic() + 5
                    while stuck.connections == 0 and time.monotonic() < deadline:
                        await asyncio.sleep(0.02)
                    assert stuck.connections == 1  # the keys are being fetched, and not yet there

                    async def answered(coming: asyncio.Future[int] | asyncio.Task[int]) -> int:
                        return await asyncio.wait_for(coming, timeout=2)

                    form = slack_fake.slash_command("objection", "too expensive", "U0REP00001", fake=slack)
                    headers = {"Content-Type": "application/x-www-form-urlencoded", **slack_fake.sign(form)}

                    async def get(path: str) -> int:
                        async with http.get(f"{server.url}{path}", allow_redirects=False) as r:
                            return r.status

                    async def slack_command() -> int:
                        async with http.post(f"{server.url}/slack/events", data=form, headers=headers) as r:
                            return r.status

                    assert await answered(asyncio.ensure_future(slack_command())) == 200
                    assert await answered(asyncio.ensure_future(get("/healthz"))) == 200
                    assert await answered(asyncio.ensure_future(get("/"))) < 500
                    assert not any(t.done() for t in teams)  # still waiting for Microsoft, alone
                    statuses = await asyncio.wait_for(asyncio.gather(*teams), timeout=keys.TIMEOUT + 3)
                    assert statuses == [503, 503, 503]
                    assert time.monotonic() - started < keys.TIMEOUT + 3
                    assert stuck.connections == 1  # one fetch shared by all who waited
                    assert connector.heard == []

    asyncio.run(main())


def signed(microsoft: KeyHost, body: dict[str, object]) -> dict[str, str]:
    """The header the Bot Framework sends with `body`."""
    token = microsoft.token(app_id=APP_ID, service_url=str(body["serviceUrl"]))
    return {"Authorization": f"Bearer {token}"}


def test_the_connector_refuses_a_bot_without_its_token() -> None:
    """The fake Connector, for a bot with an app id, refuses requests without a token the login
    host issued, as the real one answers 401: the tests below rely on it."""

    async def main() -> None:
        async with (
            fake_connector() as connector,
            key_host(APP_ID, PASSWORD) as microsoft,
            ClientSession() as http,
        ):
            connector.tokens = microsoft.issued
            url = f"{connector.base_url}v3/conversations/{REP.personal}/activities"
            for headers in ({}, {"Authorization": "Bearer bot-token-1"}, {"Authorization": "Basic x"}):
                assert await post_json(http, url, {"type": "message", "text": "hi"}, **headers) == 401
            grant = {"grant_type": "client_credentials", "client_id": APP_ID, "client_secret": PASSWORD}
            login = f"{microsoft.base_url}botframework.com/oauth2/v2.0/token"
            for wrong, status in (
                ({"client_secret": "guess"}, 401),
                ({"client_id": "another"}, 400),
                ({}, 400),
            ):
                async with http.post(login, data={**grant, **wrong}) as r:  # the last has no scope
                    assert r.status == status
            async with http.post(
                login, data={**grant, "scope": "https://api.botframework.com/.default"}
            ) as r:
                token = (await r.json())["access_token"]
            bearer = {"Authorization": f"Bearer {token}"}
            assert await post_json(http, url, {"type": "message", "text": "hi"}, **bearer) == 200
            assert connector.sent[-1].activity["text"] == "hi"

    asyncio.run(main())


def test_the_bot_s_own_token_comes_from_the_login_host_and_is_renewed_before_it_expires(
    dctx: Context,
) -> None:
    async def main() -> None:
        async with key_host(APP_ID, PASSWORD) as microsoft:
            env = teams_env(
                microsoft_openid_metadata_url=microsoft.metadata_url, microsoft_login_url=microsoft.base_url
            )
            async with teams_world(dctx, env) as world:
                world.fake.tokens = microsoft.issued
                # A token that lasts less than the renewal margin is renewed at each send …
                microsoft.lasts = 120
                for count in (1, 2):
                    hello = activity(world.fake, REP, text="help")
                    assert (await world.send(hello, signed(microsoft, hello)))[0] in (200, 201)
                    await world.fake.wait_for(REP.personal, count)
                    assert len(microsoft.issued) == count
                # … one that lasts an hour is kept, and signs every request after it.
                microsoft.lasts = 3599
                for count in (3, 4, 5):
                    hello = activity(world.fake, REP, text="help")
                    assert (await world.send(hello, signed(microsoft, hello)))[0] in (200, 201)
                    await world.fake.wait_for(REP.personal, count)
                assert len(microsoft.issued) == 3
                assert {tuple(sorted(login.items())) for login in microsoft.logins} == {
                    (
                        ("client_id", APP_ID),
                        ("grant_type", "client_credentials"),
                        ("scope", "https://api.botframework.com/.default"),
                    )
                }

    asyncio.run(main())


def test_credentials_microsoft_refuses_are_said_plainly_and_nothing_goes_out_unsigned(
    dctx: Context, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        async with key_host(APP_ID, "the-password-entra-knows") as microsoft:
            env = teams_env(
                microsoft_openid_metadata_url=microsoft.metadata_url, microsoft_login_url=microsoft.base_url
            )
            async with teams_world(dctx, env) as world:
                world.fake.tokens = microsoft.issued
                hello = activity(world.fake, REP, text="help")
                # The turn runs (what the person did is done); only its answer cannot be sent.
                assert (await world.send(hello, signed(microsoft, hello)))[0] in (200, 201)
                assert world.fake.heard == []
                teams = world.touchline.platforms["teams"]
                with pytest.raises(DeliveryError) as refused:
                    await teams.send_direct(REP.aad, Card(title="Hello"), delivery_id=1)
                assert refused.value.permanent
                assert "MICROSOFT_APP_PASSWORD" in str(refused.value) and "invalid_client" in str(
                    refused.value
                )
                assert world.fake.heard == []

    with caplog.at_level(logging.DEBUG):
        asyncio.run(main())
    assert "invalid_client" in caplog.text and PASSWORD not in caplog.text


def test_while_microsoft_s_login_host_does_not_answer_slack_and_the_web_page_still_do(dctx: Context) -> None:
    """The bot's token is fetched off the event loop, within tokens.TIMEOUT; a send without one
    is retried later, never made unsigned."""

    async def main() -> None:
        async with (
            slack_fake.fake_slack() as slack,
            fake_connector() as connector,
            key_host(APP_ID, PASSWORD) as microsoft,
            unanswering_host() as stuck,
        ):
            connector.tokens = microsoft.issued
            env = slack_env(
                slack,
                port=0,
                microsoft_app_id=APP_ID,
                microsoft_app_password=SecretStr(PASSWORD),
                teams_service_urls=connector.base_url,
                microsoft_openid_metadata_url=microsoft.metadata_url,
                microsoft_login_url=stuck.url,
            )
            with serving(dctx, env) as server:
                async with ClientSession(timeout=ClientTimeout(total=tokens.TIMEOUT + 5)) as http:
                    hello = activity(connector, REP, text="help")
                    teams = asyncio.create_task(
                        post_json(http, f"{server.url}/api/messages", hello, **signed(microsoft, hello))
                    )
                    deadline = time.monotonic() + 5
                    while stuck.connections == 0 and time.monotonic() < deadline:
                        await asyncio.sleep(0.02)
                    assert stuck.connections == 1  # the token is being fetched, and not yet there
                    form = slack_fake.slash_command("objection", "too expensive", "U0REP00001", fake=slack)
                    headers = {"Content-Type": "application/x-www-form-urlencoded", **slack_fake.sign(form)}

                    async def slack_command() -> int:
                        async with http.post(f"{server.url}/slack/events", data=form, headers=headers) as r:
                            return r.status

                    async def get(path: str) -> int:
                        async with http.get(f"{server.url}{path}", allow_redirects=False) as r:
                            return r.status

                    assert await asyncio.wait_for(slack_command(), timeout=2) == 200
                    assert await asyncio.wait_for(get("/healthz"), timeout=2) == 200
                    assert await asyncio.wait_for(get("/"), timeout=2) < 500
                    assert not teams.done()
                    assert await asyncio.wait_for(teams, timeout=tokens.TIMEOUT + 3) in (200, 201)
                    assert connector.heard == []  # nothing sent without the bot's token

    asyncio.run(main())


def test_teams_service_urls_are_refused_at_start_unless_https_or_on_this_machine(tmp_path: Path) -> None:
    base = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'touchline.db'}",
        "TOUCHLINE_CONFIG": str(ROOT / "app.yaml"),
    }
    for listed in ("http://attacker.example/", "https://ok.example/, ftp://x/", "https://user:pw@host/"):
        done = run_cli("check", env={**base, "TEAMS_SERVICE_URLS": listed})
        said = done.stdout + done.stderr
        assert done.returncode != 0 and "TEAMS_SERVICE_URLS: entry" in said, said
        assert "attacker" not in said and "pw@" not in said  # the value is not echoed
    fine = run_cli(
        "check",
        env={**base, "TEAMS_SERVICE_URLS": "https://smba.teams.sovcloud-core.fr/, http://127.0.0.1:9/"},
    )
    assert fine.returncode == 0, fine.stdout + fine.stderr


def test_with_a_user_assigned_managed_identity_the_bot_signs_with_the_identity_s_token(
    dctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MICROSOFT_APP_TYPE=UserAssignedMSI: no secret; MSAL asks the host's identity endpoint (App
    Service's, here), and a wrong identity header is a plain, permanent refusal."""

    async def main() -> None:
        async with key_host(APP_ID) as microsoft:
            monkeypatch.setenv("IDENTITY_ENDPOINT", f"{microsoft.base_url}msi/token")
            monkeypatch.setenv("IDENTITY_HEADER", microsoft.identity_header)
            env = Environment(
                microsoft_app_id=APP_ID,
                microsoft_app_type="UserAssignedMSI",
                microsoft_openid_metadata_url=microsoft.metadata_url,
            )
            assert env.teams_configured
            async with teams_world(dctx, env) as world:
                world.fake.tokens = microsoft.issued
                for count in (1, 2):
                    hello = activity(world.fake, REP, text="help")
                    assert (await world.send(hello, signed(microsoft, hello)))[0] in (200, 201)
                    await world.fake.wait_for(REP.personal, count)
                assert microsoft.issued == ["identity-token-1"]  # kept, not fetched per message
                assert microsoft.logins[0]["client_id"] == APP_ID
                assert microsoft.logins[0]["resource"] == "https://api.botframework.com"

            monkeypatch.setenv("IDENTITY_HEADER", "not-the-header")
            with pytest.raises(tokens.TokenRefused) as refused:
                await tokens.ManagedIdentityToken(APP_ID).get()
            assert "managed identity" in str(refused.value) and "MICROSOFT_APP_ID" in str(refused.value)
            assert len(microsoft.issued) == 1

    asyncio.run(main())


def test_the_kind_of_bot_registration_is_checked_at_start_and_said(tmp_path: Path) -> None:
    base = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'touchline.db'}",
        "TOUCHLINE_CONFIG": str(ROOT / "app.yaml"),
        "MICROSOFT_APP_ID": APP_ID,
    }
    one_tenant = run_cli(
        "check", env={**base, "MICROSOFT_APP_PASSWORD": "x" * 20, "MICROSOFT_APP_TYPE": "SingleTenant"}
    )
    said = one_tenant.stdout + one_tenant.stderr
    assert one_tenant.returncode != 0 and "needs MICROSOFT_APP_TENANT_ID" in said and "x" * 20 not in said
    identity = run_cli("check", env={**base, "MICROSOFT_APP_TYPE": "UserAssignedMSI"})
    assert identity.returncode == 0 and "user-assigned managed identity" in identity.stdout
    unknown = run_cli("check", env={**base, "MICROSOFT_APP_TYPE": "Whatever"})
    assert unknown.returncode != 0 and "MICROSOFT_APP_TYPE" in unknown.stdout + unknown.stderr
