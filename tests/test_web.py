"""The web page over real HTTP: one-time sign-in links from Slack and Teams, role views, CSV, refusals."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import ClientSession, CookieJar
from sqlmodel import select

from handlers import directory, inbound
from handlers.context import Context
from storage.models import Objection, SignInLink, WebSession
from tests.fakes import Clock, rows
from tests.slack_world import World, run
from tests.teams_world import teams_world
from tests.test_pulse import open_tuesday, pctx  # noqa: F401  (the fixture)
from tests.test_slack import LEAD, MARKET, REP1, announce, sctx  # noqa: F401  (the fixture)
from tests.test_teams import REP1 as TEAMS_REP1
from tests.test_teams import tctx  # noqa: F401  (the fixture)
from tests.web_world import serving

ROOT = Path(__file__).resolve().parent.parent
LINK = re.compile(r"(https?://127\.0\.0\.1:\d+)/sign-in/([\w-]+)")


async def link_for(world: World, user: str, count: int) -> tuple[str, str]:
    status, _ = await world.command("touchline", "dashboard", user)
    assert status == 200
    replies = await world.fake.wait_for("response_url", count)
    reply = replies[count - 1]
    assert reply["response_type"] == "ephemeral" and "works once, for the next 10 minutes" in reply["text"]
    found = LINK.search(reply["text"])
    assert found is not None, reply["text"]
    return found.group(1), found.group(2)


def browser() -> ClientSession:
    # A browser keeps cookies for 127.0.0.1 too; aiohttp's jar does so only when told.
    return ClientSession(cookie_jar=CookieJar(unsafe=True))


def test_a_slack_link_signs_in_once_and_each_role_sees_its_own_dashboard(sctx: Context, clock: Clock) -> None:  # noqa: F811
    async def scenario(world: World) -> None:
        world.ctx.public_url = world.url.removesuffix("/slack/events")
        await announce(world)
        rita = directory.identify(world.ctx, "slack", REP1)
        assert "Recorded" in inbound.command(world.ctx, rita, "objection", "too expensive for a pilot").text
        base, token = await link_for(world, REP1, 1)
        assert base == world.ctx.public_url

        async with browser() as rep:
            async with rep.get(f"{base}/") as response:  # not signed in yet: nothing shown
                assert response.status == 401
                page = await response.text()
                assert "/touchline dashboard" in page and "Mid-market" not in page
            async with rep.get(f"{base}/sign-in/{token}") as response:  # a preview opens it: no sign-in yet
                assert response.status == 200 and "Open the dashboard" in await response.text()
            assert every(world.ctx, WebSession) == []
            async with rep.post(f"{base}/sign-in/{token}") as response:
                assert response.status == 200 and str(response.url) == f"{base}/"
                page = await response.text()
            assert "Rita Rep (rep)" in page
            assert "Acknowledgement by decision and audience" in page and "Mid-market first" in page
            assert "Your objections" in page and "too expensive for a pilot" in page
            assert "Feedback per asset" not in page and "Alignment index" not in page
            async with rep.get(f"{base}/dashboard/assets/assets.csv") as response:
                assert response.status == 404  # a rep's dashboard has no asset table to download
            async with rep.get(f"{base}/try?as=lead") as response:
                assert response.status == 404  # playing other people is for a local Touchline only

        async with browser() as someone_else:
            async with someone_else.post(f"{base}/sign-in/{token}") as response:
                assert response.status == 403
                assert "used already" in await response.text()
            async with someone_else.post(f"{base}/sign-in/not-a-token-we-made") as response:
                assert response.status == 403
                assert "not one Touchline made" in await response.text()

        _, stale = await link_for(world, MARKET, 2)
        clock.advance(minutes=11)
        async with browser() as marketer, marketer.post(f"{base}/sign-in/{stale}") as response:
            assert response.status == 403 and "expired" in await response.text()
        _, fresh = await link_for(world, MARKET, 3)
        async with browser() as marketer:
            async with marketer.post(f"{base}/sign-in/{fresh}") as response:
                page = await response.text()
            assert "Mia Marketer (marketer)" in page
            assert "Feedback per asset" in page and "Objections per theme and week" in page
            assert "Your objections" not in page and "too expensive for a pilot" not in page
            async with marketer.get(f"{base}/dashboard/decisions/decisions.csv") as response:
                assert response.headers["Content-Type"].startswith("text/csv")
                table = list(csv.DictReader(io.StringIO(await response.text())))
            assert [(r["audience"], r["acknowledged"], r["members"]) for r in table] == [
                ("all", "0", "2"),
                ("Sales EMEA", "0", "2"),
            ]
            async with marketer.get(f"{base}/dashboard/decisions/acknowledgements-over-time.csv") as response:
                curve = list(csv.DictReader(io.StringIO(await response.text())))
            assert {(r["audience"], r["members"]) for r in curve} == {("all", "2"), ("Sales EMEA", "2")}
            clock.advance(hours=8, minutes=1)  # the session has ended
            async with marketer.get(f"{base}/") as response:
                assert response.status == 401 and "session has ended" in await response.text()

        links = every(world.ctx, SignInLink)
        assert len(links) == 3 and not {link.token_hash for link in links} & {
            token,
            stale,
            fresh,
        }  # only hashes

    run(sctx, scenario)


def test_signing_out_ends_the_session(sctx: Context) -> None:  # noqa: F811
    async def scenario(world: World) -> None:
        world.ctx.public_url = world.url.removesuffix("/slack/events")
        base, token = await link_for(world, LEAD, 1)
        async with browser() as lead:
            async with lead.post(f"{base}/sign-in/{token}") as response:
                assert "Lena Leader (leader)" in await response.text()
            async with lead.post(f"{base}/sign-out") as response:
                assert "Signed out" in await response.text()
            async with lead.get(f"{base}/") as response:
                assert response.status == 401
        assert every(world.ctx, WebSession) == []

    run(sctx, scenario)


def test_a_teams_user_gets_the_link_in_their_1_1_chat(tctx: Context) -> None:  # noqa: F811
    async def scenario() -> None:
        tctx.public_url = "https://touchline.example.com"
        async with teams_world(tctx) as world:
            await world.say(TEAMS_REP1, "touchline dashboard")
            said = world.texts(TEAMS_REP1.personal)
            assert re.search(r"https://touchline\.example\.com/sign-in/[\w-]{20,}", said), said

    asyncio.run(scenario())


def test_without_an_address_for_browsers_the_command_says_what_to_set(sctx: Context) -> None:  # noqa: F811
    async def scenario(world: World) -> None:
        world.ctx.public_url = ""
        await world.command("touchline", "dashboard", REP1)
        [reply] = await world.fake.wait_for("response_url")
        assert "PUBLIC_URL" in reply["text"] and "sign-in" not in reply["text"]
        assert every(world.ctx, SignInLink) == []

    run(sctx, scenario)


def test_locally_a_sign_in_link_shows_the_dashboard_as_its_person(ctx: Context) -> None:
    with serving(ctx) as served:
        ctx.public_url = served.url
        rita = directory.console_actor(ctx, "rep1")
        found = LINK.search(inbound.command(ctx, rita, "touchline", "dashboard").text)
        assert found is not None

        async def sign_in() -> tuple[str, str]:
            async with browser() as rep:
                async with rep.get(f"{served.url}/") as response:
                    anyone = await response.text()  # locally the page is open
                async with rep.post(f"{served.url}/sign-in/{found.group(2)}") as response:
                    return anyone, await response.text()

        anyone, signed_in = asyncio.run(sign_in())
    assert "this machine (admin, leader, marketer)" in anyone and "Feedback per asset" in anyone
    assert "Rita Rep (rep)" in signed_in and "Your objections" in signed_in
    assert "Feedback per asset" not in signed_in


def test_try_shows_a_message_only_once_it_is_due(pctx: Context, clock: Clock) -> None:  # noqa: F811
    ctx = pctx  # Monday evening
    open_tuesday(ctx)  # Sam in New York is invited at 10:00 there: 15:00 UTC on Tuesday
    with serving(ctx) as served:
        _, before = _open(urllib.request.Request(f"{served.url}/try?as=s6"))
        clock.now = datetime(2026, 12, 1, 15, 1, tzinfo=UTC)
        _, after = _open(urllib.request.Request(f"{served.url}/try?as=s6"))
    assert "Alignment pulse" not in before and "Nothing in Direct messages" in before
    assert "Alignment pulse" in after


def test_the_local_page_refuses_bad_requests_with_a_page_that_says_why(ctx: Context) -> None:
    with serving(ctx) as served:
        big = urllib.request.Request(
            f"{served.url}/try/command", data=b"as=rep1&text=" + b"x" * (2 * 1024 * 1024), method="POST"
        )
        status, page = _open(big)
        assert status == 413 and "more than Touchline takes" in page and "Traceback" not in page

        forged = urllib.request.Request(
            f"{served.url}/try/command",
            data=b"as=rep1&text=/objection+too+expensive",
            headers={"Origin": "https://elsewhere.example"},
            method="POST",
        )
        status, page = _open(forged)
        assert status == 403 and "another site" in page

        status, page = _open(
            urllib.request.Request(f"{served.url}/try/command", data=b"as=nobody", method="POST")
        )
        assert status == 400 and "&#x27;nobody&#x27; is not in people: of app.yaml" in page

        status, page = _open(urllib.request.Request(f"{served.url}/nothing-here"))
        assert status == 404 and "<html" in page

        status, page = _open(urllib.request.Request(f"{served.url}/dashboard/decisions/no-such-table.csv"))
        assert status == 404 and "no table called no-such-table" in page
    assert rows(ctx.db, Objection) == []


def test_text_from_people_is_escaped_on_the_page_and_defused_in_csv(ctx: Context) -> None:
    with serving(ctx) as served:
        said = '=HYPERLINK("https://evil.example") <script>alert(1)</script> price'
        _open(
            urllib.request.Request(
                f"{served.url}/try/command",
                data=urllib.parse.urlencode({"as": "rep1", "text": f"/objection {said}"}).encode(),
                method="POST",
            )
        )
        status, page = _open(urllib.request.Request(f"{served.url}/try?as=rep1"))
        assert status == 200 and "<script>alert(1)</script>" not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
        status, mine = _open(
            urllib.request.Request(f"{served.url}/dashboard/objections/my-objections.csv?as=rep1")
        )
        [row] = list(csv.DictReader(io.StringIO(mine)))
        assert row["text"].startswith("'=HYPERLINK")  # a spreadsheet shows it; it does not run it


def test_serve_without_credentials_prints_the_address_and_serves_try(tmp_path: Path) -> None:
    (tmp_path / "app.yaml").write_text((ROOT / "app.yaml").read_text())
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "MICROSOFT_", "DATABASE_URL"))},
        "PORT": str(port),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'touchline.db'}",
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
    try:
        deadline = time.monotonic() + 30
        status, page = 0, ""
        while time.monotonic() < deadline and status != 200:
            try:
                status, page = _open(urllib.request.Request(f"http://127.0.0.1:{port}/try"))
            except OSError:
                time.sleep(0.2)
        assert status == 200 and "Try Touchline as someone from Northwind Analytics" in page
        assert "Maria Keller" in page and "Jonas Weber" in page
    finally:
        server.terminate()
        out, _ = server.communicate(timeout=30)
    assert f"Open http://127.0.0.1:{port}/ in your browser" in out.decode()


def every(ctx: Context, model: type[SignInLink] | type[WebSession]) -> list[Any]:
    with ctx.db.session() as session:
        return list(session.exec(select(model)).all())


def _open(request: urllib.request.Request) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
