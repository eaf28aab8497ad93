"""The token Teams sends with each activity, checked with the Bot Framework's keys fetched off the event loop.

The checks are those of "Authentication with the Bot Connector API" (Connector to bot): a bearer
JWT, RS256, issued by `https://api.botframework.com` to this bot's app id, within five minutes of
its lifetime, signed by a key of the published OpenID metadata that is endorsed for the
activity's channel, and naming the activity's `serviceUrl`. The Agents SDK's own validator
(`JwtTokenValidator`) fetches the keys with `PyJWKClient` (urllib, a thread per waiter, 30 s),
from a URL that cannot be pointed elsewhere, and checks neither the issuer by default, nor the
endorsements, nor the service URL; so the check is made here, and the SDK's adapter is handed
the claims it would have made (`ClaimsIdentity`).

The metadata and keys are fetched with aiohttp within `TIMEOUT`, one fetch at a time shared by
all who wait; a key id not yet known refetches them at most once per `RECHECK`, so that unsigned
tokens naming made-up key ids cannot make Touchline hammer Microsoft's host."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import jwt
from jwt.algorithms import RSAAlgorithm

log = logging.getLogger(__name__)
METADATA_URL = "https://login.botframework.com/v1/.well-known/openidconfiguration"
ISSUER = "https://api.botframework.com"
TIMEOUT = 5.0  # seconds; Teams wants an answer well inside 10 s, and retries what it did not get
LARGEST = 1_000_000  # bytes: Microsoft's documents are a few kB
KEEP = 24 * 3600.0  # seconds: the keys are fetched again after a day (Microsoft rolls them)
RECHECK = 300.0  # seconds: at most one fetch this often for a key id not in the keys held
SKEW = 300  # seconds of clock skew allowed, as the Bot Framework's own validators allow


class KeysUnavailable(Exception):
    """The signing keys could not be fetched in time: the request can be neither trusted nor refused."""


class NotAuthenticated(PermissionError):
    """The request carries no token the Bot Framework issued for this bot and this activity."""


@dataclass(frozen=True)
class _Key:
    public: Any
    endorsements: tuple[str, ...]


class SigningKeys:
    """The keys published at `url`'s OpenID metadata, fetched on demand and kept for a day."""

    def __init__(self, url: str = METADATA_URL, timeout: float = TIMEOUT) -> None:
        self.url = url
        self.timeout = timeout
        self._keys: dict[str, _Key] = {}
        self._fetched = 0.0  # time.monotonic() of the last fetch that succeeded
        self._tried = 0.0  # … and of the last one started
        self._fetching: asyncio.Task[None] | None = None

    async def find(self, key_id: str) -> _Key | None:
        now = time.monotonic()
        stale = not self._fetched or now - self._fetched > KEEP
        unknown = key_id not in self._keys and now - self._tried > RECHECK
        if stale or unknown:
            await self._refresh()
        return self._keys.get(key_id)

    async def _refresh(self) -> None:
        task = self._fetching
        if task is None or task.done() or task.get_loop() is not asyncio.get_running_loop():
            self._tried = time.monotonic()
            task = self._fetching = asyncio.create_task(self._fetch())
        # A waiter that gives up does not cancel the fetch the others wait for.
        await asyncio.shield(task)

    async def _fetch(self) -> None:
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout)) as http:
                metadata = await _document(http, self.url)
                keys_url = metadata.get("jwks_uri")
                if not isinstance(keys_url, str) or not keys_url.startswith(("https://", "http://")):
                    raise ValueError("the metadata names no jwks_uri")
                listed = (await _document(http, keys_url)).get("keys")
        except (TimeoutError, aiohttp.ClientError, ValueError) as error:
            log.warning("the Bot Framework's signing keys could not be fetched: %s", type(error).__name__)
            raise KeysUnavailable(type(error).__name__) from None
        if not isinstance(listed, list):
            raise KeysUnavailable("no keys")
        keys: dict[str, _Key] = {}
        for entry in listed:
            if not isinstance(entry, dict) or not isinstance(entry.get("kid"), str) or not entry["kid"]:
                continue
            try:
                public = RSAAlgorithm.from_jwk(json.dumps(entry))
            except (ValueError, KeyError, TypeError):
                continue  # a key of another kind, or malformed: no token is signed with it here
            endorsed = entry.get("endorsements")
            names = tuple(e for e in endorsed if isinstance(e, str)) if isinstance(endorsed, list) else ()
            keys[entry["kid"]] = _Key(public, names)
        self._keys, self._fetched = keys, time.monotonic()


async def _document(http: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with http.get(url, allow_redirects=False) as response:
        if response.status != 200:
            raise ValueError(f"answered {response.status}")
        body = bytearray()
        async for chunk in response.content.iter_chunked(65_536):
            body += chunk
            if len(body) > LARGEST:
                raise ValueError("too large")
    document = json.loads(body)
    if not isinstance(document, dict):
        raise ValueError("not a JSON object")
    return document


class ChannelTokens:
    """Checks the `Authorization` header of an activity sent to the bot with app id `app_id`."""

    def __init__(self, app_id: str, keys: SigningKeys) -> None:
        self.app_id = app_id
        self.keys = keys

    async def check(self, header: str | None, activity: dict[str, Any]) -> dict[str, Any]:
        """The token's claims; NotAuthenticated for any token that is not what Teams sends, and
        KeysUnavailable while the keys cannot be had."""
        scheme, _, token = (header or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip() or " " in token.strip():
            raise NotAuthenticated("no bearer token")
        token = token.strip()
        try:
            head = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise NotAuthenticated("not a JWT") from None
        key_id = head.get("kid")
        if head.get("alg") != "RS256" or not isinstance(key_id, str) or not key_id:
            raise NotAuthenticated("not signed as the Bot Framework signs")
        try:
            key = await asyncio.wait_for(self.keys.find(key_id), timeout=self.keys.timeout + 1)
        except TimeoutError:
            raise KeysUnavailable("timed out") from None
        if key is None:
            raise NotAuthenticated("signed with a key the Bot Framework does not publish")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.public,
                algorithms=["RS256"],
                audience=self.app_id,
                issuer=ISSUER,
                leeway=SKEW,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.PyJWTError as error:
            raise NotAuthenticated(type(error).__name__) from None
        channel = activity.get("channelId")
        if not isinstance(channel, str) or channel not in key.endorsements:
            raise NotAuthenticated("the key is not endorsed for this channel")
        if claims.get("serviceurl") != activity.get("serviceUrl"):
            raise NotAuthenticated("the token was issued for another service URL")
        return claims
