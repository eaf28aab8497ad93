"""The bot's own token for the Bot Connector, fetched without blocking the event loop and kept fresh.

botframework-connector signs each request with `MicrosoftAppCredentials.get_access_token`, which
asks MSAL, which fetches the token (and Entra's discovery documents first) with blocking
`requests` calls, on the event loop, at the first send and at every renewal: while Microsoft's
login host is slow, Slack, Teams and the web page all wait. Here the token is fetched with
aiohttp, within `TIMEOUT`, one fetch at a time shared by all who wait, before a connector client
is handed out (`BotToken.fresh`); the library's synchronous call then only reads it.

The request is the documented client-credentials grant of "Authentication with the Bot Connector
API": `POST {login}/{tenant}/oauth2/v2.0/token` with the app id and password and the scope
`https://api.botframework.com/.default`; the tenant is `botframework.com` for a multi-tenant bot."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import aiohttp
from botframework.connector.auth import (
    AppCredentials,
    MicrosoftAppCredentials,
    ServiceClientCredentialsFactory,
)

log = logging.getLogger(__name__)
LOGIN_URL = "https://login.microsoftonline.com"
MULTI_TENANT = "botframework.com"
SCOPE = "https://api.botframework.com"
TIMEOUT = 5.0  # seconds for the whole fetch: a turn waits for it, and Teams for the turn
RENEW_BEFORE = 300.0  # seconds: a token is renewed this long before it expires, so no send holds a stale one
LARGEST = 100_000  # bytes: a token answer is a few kB


class TokenUnavailable(ConnectionError):
    """The bot's token could not be had: nothing can be sent to Teams until it can."""


class TokenRefused(PermissionError):
    """Microsoft's login host refused the app id and password: a setting to fix, not a moment to wait."""


class BotToken:
    """One app's token for one scope, fetched on demand and renewed before it expires."""

    def __init__(self, app_id: str, password: str, *, tenant: str | None, scope: str, login_url: str) -> None:
        self.app_id = app_id
        self._password = password
        self.scope = scope if scope.endswith("/.default") else f"{scope.rstrip('/')}/.default"
        self.url = f"{login_url.rstrip('/')}/{tenant or MULTI_TENANT}/oauth2/v2.0/token"
        self._token = ""
        self._expires = 0.0  # time.monotonic() when the token stops working
        self._fetching: asyncio.Task[None] | None = None
        self._problem: Exception | None = None  # why the last fetch failed

    def current(self) -> str:
        """The token, for the library's synchronous signing; `fresh()` ran just before. Without
        one, the reason the last fetch failed: the send fails with it (and is retried or explained)."""
        if self._token and time.monotonic() < self._expires:
            return self._token
        raise self._problem or TokenUnavailable("the bot's token was not fetched, or has expired")

    async def fresh(self) -> None:
        """Have a token that lasts at least `RENEW_BEFORE` more seconds, fetching one if not."""
        if self._token and time.monotonic() < self._expires - RENEW_BEFORE:
            return
        task = self._fetching
        if task is None or task.done() or task.get_loop() is not asyncio.get_running_loop():
            task = self._fetching = asyncio.create_task(self._fetch())
        # A send that gives up (its own deadline) does not cancel the fetch the others wait for.
        await asyncio.shield(task)

    async def _fetch(self) -> None:
        try:
            await self._ask()
        except (TokenUnavailable, TokenRefused) as problem:
            self._problem = problem
            raise
        self._problem = None

    async def _ask(self) -> None:
        form = {
            "grant_type": "client_credentials",
            "client_id": self.app_id,
            "client_secret": self._password,
            "scope": self.scope,
        }
        started = time.monotonic()
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as http,
                http.post(self.url, data=form, allow_redirects=False) as response,
            ):
                body = await response.content.read(LARGEST + 1)
                status = response.status
        except (TimeoutError, aiohttp.ClientError, OSError) as error:
            log.warning("the bot's Teams token could not be fetched: %s", type(error).__name__)
            reason = type(error).__name__
            raise TokenUnavailable(f"Microsoft's login host could not be reached ({reason})") from None
        answer = _json(body) if len(body) <= LARGEST else {}
        token, lasts = answer.get("access_token"), answer.get("expires_in")
        if status == 200 and isinstance(token, str) and token and _seconds(lasts) > 0:
            self._token, self._expires = token, started + _seconds(lasts)
            return
        # Entra's error codes (invalid_client, unauthorized_client, …) say what is wrong; its
        # description may quote the request, so it is not repeated.
        code = str(answer.get("error") or "no token")[:64]
        log.warning("Microsoft's login host answered %s (%s) for the bot's Teams token", status, code)
        if status in (400, 401):
            raise TokenRefused(
                f"Microsoft refused the bot's credentials ({code}) — check MICROSOFT_APP_ID, "
                "MICROSOFT_APP_PASSWORD and MICROSOFT_APP_TENANT_ID"
            )
        raise TokenUnavailable(f"Microsoft's login host answered {status}")


def _json(body: bytes) -> dict[str, Any]:
    try:
        answer = json.loads(body)
    except ValueError:
        return {}
    return answer if isinstance(answer, dict) else {}


def _seconds(value: Any) -> float:
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        return 0.0


class KeptCredentials(AppCredentials):  # type: ignore[misc]
    """What the library signs requests with: the token `BotToken` keeps, read without I/O."""

    def __init__(self, token: BotToken) -> None:
        super().__init__(app_id=token.app_id, oauth_scope=token.scope)
        self.token = token

    def get_access_token(self, force_refresh: bool = False) -> str:
        return self.token.current()


class Credentials(ServiceClientCredentialsFactory):  # type: ignore[misc]
    """The library's credentials factory, handing out `KeptCredentials`, one `BotToken` per scope."""

    def __init__(self, app_id: str, password: str, *, tenant: str | None, login_url: str | None) -> None:
        self.app_id = app_id
        self._password = password
        self.tenant = tenant
        self.login_url = login_url or LOGIN_URL
        self._tokens: dict[str, BotToken] = {}

    async def is_valid_app_id(self, app_id: str) -> bool:
        return bool(self.app_id) and app_id == self.app_id

    async def is_authentication_disabled(self) -> bool:
        return not self.app_id

    async def create_credentials(
        self, app_id: str, oauth_scope: str, login_endpoint: str, validate_authority: bool
    ) -> AppCredentials:
        if not self.app_id:  # the Emulator's mode: nothing to sign with
            return MicrosoftAppCredentials.empty()
        if app_id != self.app_id:
            raise PermissionError("a token for another app")
        scope = oauth_scope or SCOPE
        if scope not in self._tokens:
            self._tokens[scope] = BotToken(
                self.app_id, self._password, tenant=self.tenant, scope=scope, login_url=self.login_url
            )
        return KeptCredentials(self._tokens[scope])
