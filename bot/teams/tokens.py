"""The bot's own token for the Bot Connector, fetched without blocking the event loop and kept fresh.

With a client secret (a single-tenant app registration, or a multi-tenant one made before
2025-07-31) the token is the documented client-credentials grant of "Authentication with the Bot
Connector API": `POST {login}/{tenant}/oauth2/v2.0/token` with the app id, the secret and the
scope `https://api.botframework.com/.default`, fetched here with aiohttp. The Agents SDK's
`MsalAuth` would build MSAL's `ConfidentialClientApplication` on the event loop, and MSAL fetches
Entra's discovery documents while it is built: while Microsoft's login host is slow, Slack, Teams
and the web page would all wait.

With a user-assigned managed identity there is no secret: MSAL's `ManagedIdentityClient` asks the
host's identity endpoint (App Service's `IDENTITY_ENDPOINT`, or the instance metadata service), in
a thread of its own.

Either way one fetch runs at a time, shared by all who wait, within `TIMEOUT`, and a token is
renewed `RENEW_BEFORE` its end, so that no send holds a stale one."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any

import aiohttp
import msal
import requests

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
    """The app's token for the Bot Connector, fetched on demand and renewed before it expires."""

    def __init__(
        self, app_id: str, password: str, *, tenant: str | None, login_url: str | None = None
    ) -> None:
        self.app_id = app_id
        self._password = password
        self.scope = f"{SCOPE}/.default"
        self.url = f"{(login_url or LOGIN_URL).rstrip('/')}/{tenant or MULTI_TENANT}/oauth2/v2.0/token"
        self._token = ""
        self._expires = 0.0  # time.monotonic() when the token stops working
        self._fetching: asyncio.Task[None] | None = None
        self._problem: Exception | None = None  # why the last fetch failed

    async def get(self) -> str:
        """A token that lasts at least `RENEW_BEFORE` more seconds, fetched if need be; without
        one, the reason the fetch failed: the send fails with it (and is retried or explained)."""
        if not (self._token and time.monotonic() < self._expires - RENEW_BEFORE):
            task = self._fetching
            if task is None or task.done() or task.get_loop() is not asyncio.get_running_loop():
                task = self._fetching = asyncio.create_task(self._fetch())
            # A send that gives up (its own deadline) does not cancel the fetch the others wait for.
            with contextlib.suppress(TokenUnavailable, TokenRefused):
                await asyncio.shield(task)
        if self._token and time.monotonic() < self._expires:
            return self._token
        raise self._problem or TokenUnavailable("the bot's token was not fetched, or has expired")

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


class ManagedIdentityToken(BotToken):
    """The token of a user-assigned managed identity (`MICROSOFT_APP_TYPE=UserAssignedMSI`, the
    app id being the identity's client id), from the host's identity endpoint through MSAL."""

    def __init__(self, client_id: str) -> None:
        super().__init__(client_id, "", tenant=None)
        self.url = "the host's managed identity endpoint"
        self._client = msal.ManagedIdentityClient(
            msal.UserAssignedManagedIdentity(client_id=client_id), http_client=_Session()
        )

    async def _ask(self) -> None:
        started = time.monotonic()
        try:
            # MSAL is synchronous: in a thread, so that the event loop goes on meanwhile.
            answer = await asyncio.wait_for(
                asyncio.to_thread(self._client.acquire_token_for_client, resource=SCOPE), timeout=TIMEOUT
            )
        except (TimeoutError, requests.RequestException, OSError, ValueError) as error:
            log.warning("the managed identity's token could not be fetched: %s", type(error).__name__)
            raise TokenUnavailable(
                f"the managed identity endpoint could not be reached ({type(error).__name__})"
            ) from None
        token, lasts = answer.get("access_token"), answer.get("expires_in")
        if isinstance(token, str) and token and _seconds(lasts) > 0:
            self._token, self._expires = token, started + _seconds(lasts)
            return
        code = str(answer.get("error") or "no token")[:64]
        log.warning("the managed identity endpoint answered %s for the bot's Teams token", code)
        raise TokenRefused(
            f"the managed identity gave no token ({code}) — check that MICROSOFT_APP_ID is the client id "
            "of the user-assigned identity attached to this host"
        )


class _Session(requests.Session):
    """MSAL's HTTP client: never without a deadline, never following a redirect elsewhere."""

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", TIMEOUT)
        kwargs["allow_redirects"] = False
        return super().request(*args, **kwargs)
