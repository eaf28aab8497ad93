"""The Agents SDK's Connector clients as Touchline hands them out: one kept per service URL, signed
with the bot's token, sending only where Touchline sends, and never following a redirect."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

import aiohttp
from microsoft_agents.hosting.core.authorization import ClaimsIdentity
from microsoft_agents.hosting.core.connector.client import UserTokenClient
from microsoft_agents.hosting.core.connector.teams import TeamsConnectorClient

from bot.teams import tokens
from bot.teams.service_urls import ServiceUrls

log = logging.getLogger(__name__)
TIMEOUT = 20.0  # seconds for one request to the Connector; the delivery worker retries what timed out


class ServiceUrlRefused(ValueError):
    """Touchline does not send there: not a Bot Framework service URL it knows or was told of."""


class KeptClient(TeamsConnectorClient):
    """A Connector client that outlives the turn: the SDK closes its client after each turn and
    proactive message, and a new one (an aiohttp session, its connection pool, a TLS handshake)
    for every message is most of the cost of a fan-out."""

    loop: asyncio.AbstractEventLoop | None = None

    async def close(self) -> None:
        pass  # kept: closed with the server (Connectors.close)

    async def shut(self) -> None:
        await self.client.close()


class _NoRedirects:
    """The session the SDK's operations call `post`/`put`/`get`/… on, each with
    `allow_redirects=False`: a Connector that answered 3xx would otherwise have the message (and,
    on the same host, the bot's token) sent somewhere else. Anything else is the session's own."""

    VERBS = frozenset({"request", "get", "post", "put", "delete", "patch"})

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self._session = session

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._session, name)
        if name not in self.VERBS:
            return found
        return lambda *args, **kwargs: found(*args, **{**kwargs, "allow_redirects": False})


class _Refusing:
    """The session of a client without the bot's token: every request fails with the reason."""

    def __init__(self, problem: Exception) -> None:
        self.problem = problem
        self.headers: dict[str, str] = {}
        self._base_url = None
        self.closed = False

    def __getattr__(self, name: str) -> Any:
        if name in ("request", "get", "post", "put", "delete", "patch"):
            raise self.problem
        raise AttributeError(name)

    async def close(self) -> None:
        pass


class _NoUserTokens(UserTokenClient):
    """Touchline signs no one in through the Bot Framework's token service, yet the SDK asks for
    this client on every turn and proactive message: one, never used, is kept."""

    async def close(self) -> None:
        pass


class Connectors:
    """The SDK's `ChannelServiceClientFactoryBase`, as the CloudAdapter and Touchline's own
    proactive sends use it."""

    def __init__(self, app_id: str, token: tokens.BotToken | None, service_urls: ServiceUrls) -> None:
        self.app_id = app_id
        self.token = token  # None in the Emulator's mode: nothing is signed
        self.service_urls = service_urls
        self._clients: dict[str, KeptClient] = {}
        self._user_tokens: _NoUserTokens | None = None

    async def client(self, service_url: str, *, for_turn: bool = False) -> KeptClient:
        """The client for `service_url`, with a fresh token; ServiceUrlRefused where Touchline does
        not send, TokenRefused or TokenUnavailable when the bot's token cannot be had. For a turn
        (`for_turn`), a token that cannot be had fails only what the turn sends: what the person
        did is still done (and the delivery worker retries the messages it caused)."""
        # Every Connector client is made here: nothing is sent to a service URL not allowed.
        if not self.service_urls.allows(service_url):
            raise ServiceUrlRefused("not a Bot Framework service URL Touchline sends to")
        # The token first: without it nothing is sent, not even unsigned.
        try:
            bearer = await self.token.get() if self.token is not None else ""
        except (tokens.TokenRefused, tokens.TokenUnavailable) as problem:
            if not for_turn:
                raise
            return KeptClient(service_url, "", session=cast(aiohttp.ClientSession, _Refusing(problem)))
        client = self._clients.get(service_url)
        # A session belongs to the event loop it was made in (tests run one loop after another).
        if client is None or client.client.closed or client.loop is not asyncio.get_running_loop():
            session = aiohttp.ClientSession(
                base_url=service_url if service_url.endswith("/") else service_url + "/",
                timeout=aiohttp.ClientTimeout(total=TIMEOUT),
            )
            client = self._clients[service_url] = KeptClient(
                service_url, "", session=cast(aiohttp.ClientSession, _NoRedirects(session))
            )
            client.loop = asyncio.get_running_loop()
        if bearer:
            client.client.headers["Authorization"] = f"Bearer {bearer}"
        return client

    async def create_connector_client(
        self,
        context: Any,
        claims_identity: ClaimsIdentity,
        service_url: str,
        audience: str,
        scopes: list[str] | None = None,
        use_anonymous: bool = False,
    ) -> KeptClient:
        return await self.client(service_url, for_turn=True)

    async def create_user_token_client(
        self, context: Any, claims_identity: ClaimsIdentity, use_anonymous: bool = False
    ) -> _NoUserTokens:
        if self._user_tokens is None:
            self._user_tokens = _NoUserTokens(
                "https://api.botframework.com", "", app_id=self.app_id or "emulator"
            )
        return self._user_tokens

    async def close(self) -> None:
        for client in self._clients.values():
            if client.loop is asyncio.get_running_loop():
                await client.shut()
        self._clients.clear()
        if self._user_tokens is not None:
            await UserTokenClient.close(self._user_tokens)
