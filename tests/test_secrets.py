"""Secrets stay secret: the configured tokens, signing secret, app password and database password never
appear in logs (at DEBUG), in errors, in what people are shown, or in what the command line prints."""

from __future__ import annotations

import asyncio
import json
import logging
import os

import pytest
from pydantic import SecretStr

from bot.config import Environment, load_environment
from handlers.context import Context
from storage.models import Outbox
from tests import slack_fake
from tests.cli import run_cli
from tests.fakes import rows
from tests.slack_world import World, run
from tests.teams_world import teams_world
from tests.test_slack import LEAD, REP1, announce, sctx  # noqa: F401  (the fixture)
from tests.test_teams import tctx  # noqa: F401  (the fixture)

APP_PASSWORD = "teams-app-password-4f1c"
DB_PASSWORD = "database-password-9e2a"


def shown(world: World) -> str:
    """Everything Touchline sent to Slack: messages, modals, replies."""
    return json.dumps([call.body for call in world.fake.calls], default=str)


def test_slack_secrets_never_reach_a_log_line_or_a_message(
    sctx: Context,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)

    async def scenario(world: World) -> None:
        body = slack_fake.slash_command("objection", "too expensive", REP1, fake=world.fake)
        assert (await world.send(body, secret="not-the-secret"))[0] == 401
        await announce(world)
        world.fake.errors["chat.postMessage"] = ["invalid_auth", "not_in_channel"]
        world.fake.errors["views.open"] = ["invalid_auth"]
        await world.deliver()
        await world.command("objection", "", LEAD)  # views.open refused: the person is told
        await world.command("objection", "too expensive vs Acme", REP1)
        await world.fake.wait_for("response_url")
        await world.settled()
        failures = " ".join(row.error or "" for row in rows(world.ctx.db, Outbox))
        assert "invalid_auth" in failures or "token" in failures.lower()  # the failure is recorded...
        for secret in (slack_fake.TOKEN, slack_fake.SECRET):
            assert secret not in failures  # ...without the secret
            assert secret not in shown(world)

    run(sctx, scenario)
    assert len(caplog.records) > 10  # the DEBUG log did capture the run
    for secret in (slack_fake.TOKEN, slack_fake.SECRET):
        assert secret not in caplog.text


def test_the_teams_app_password_is_never_logged_when_requests_are_refused(
    tctx: Context,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    env = Environment(
        microsoft_app_id="8f0c5b3e-1111-4b9e-9e9f-73e0c02bf4ea",
        microsoft_app_password=SecretStr(APP_PASSWORD),
    )
    assert APP_PASSWORD not in repr(env) and APP_PASSWORD not in str(env)

    async def scenario() -> None:
        async with teams_world(tctx, env) as world:
            unsigned = {"type": "message", "text": "strategy", "serviceUrl": world.fake.base_url}
            assert (await world.send(unsigned))[0] == 401
            forged = {"Authorization": "Bearer eyJhbGciOiJIUzI1NiJ9.e30.forged"}
            assert (await world.send(unsigned, forged))[0] == 401

    asyncio.run(scenario())
    assert APP_PASSWORD not in caplog.text


@pytest.fixture
def secret_environment() -> dict[str, str]:
    return {
        "SLACK_BOT_TOKEN": slack_fake.TOKEN,
        "SLACK_SIGNING_SECRET": slack_fake.SECRET,
        "SLACK_APP_TOKEN": "xapp-app-level-token-77",
        "MICROSOFT_APP_ID": "8f0c5b3e-1111-4b9e-9e9f-73e0c02bf4ea",
        "MICROSOFT_APP_PASSWORD": APP_PASSWORD,
        # Nothing listens on port 9: every command that needs the database fails to connect.
        "DATABASE_URL": f"postgresql+psycopg://touchline:{DB_PASSWORD}@127.0.0.1:9/touchline",
    }


def test_the_command_line_never_prints_a_secret_even_when_it_fails(
    secret_environment: dict[str, str],
) -> None:
    # The app id is public (it is in the Teams app package); the rest is secret.
    secrets = [slack_fake.TOKEN, slack_fake.SECRET, "xapp-app-level-token-77", APP_PASSWORD, DB_PASSWORD]
    outputs = []
    for args in (["check"], ["migrate"], ["export", "objections"], ["serve"], ["forget", "rep1"]):
        done = run_cli(*args, env=secret_environment)
        outputs.append((args, done.returncode, done.stdout + done.stderr))
    for args, _code, printed in outputs:
        assert "Traceback" not in printed, (args, printed)
        for secret in secrets:
            assert secret not in printed, (args, printed)
    assert outputs[0][1] == 0 and "slack" in outputs[0][2].lower()  # check says what it understood
    assert all(code == 2 for _, code, _ in outputs[1:])  # the database cannot be reached: a clear exit
    assert "127.0.0.1:9" in outputs[1][2] and "***" in outputs[1][2]  # where, with the password hidden


def test_a_secret_in_the_wrong_variable_is_not_echoed_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(os.environ, "PORT", "xoxb-pasted-into-the-wrong-place")
    with pytest.raises(Exception) as refused:
        load_environment()
    assert "PORT" in str(refused.value) and "xoxb-pasted" not in str(refused.value)
