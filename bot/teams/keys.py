"""The Bot Framework's signing keys, fetched without blocking the event loop and within a deadline.

botframework-connector fetches the OpenID metadata and the keys it names with `requests.get`,
without a timeout, on the event loop (`_OpenIdMetadata._refresh`): while that host is slow every
request to Touchline waits — Slack's, Teams', the web page's — and one unauthenticated bearer
token is enough to start it. `SigningKeys` stands in for the library's object in its cache of
metadata documents (`JwtTokenExtractor.metadataCache`, by URL), so that every validation path
(channel, Emulator and skill tokens) fetches through it: asynchronously, one fetch at a time
shared by all who wait, and given up after `TIMEOUT`."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime
from typing import Any

import aiohttp
from botframework.connector.auth.jwt_token_extractor import (
    JwtTokenExtractor,
    _OpenIdConfig,
    _OpenIdMetadata,
)
from jwt.algorithms import RSAAlgorithm

log = logging.getLogger(__name__)
TIMEOUT = 5.0  # seconds; Teams wants an answer well inside 10 s, and retries what it did not get
LARGEST = 1_000_000  # bytes: Microsoft's documents are a few kB


class KeysUnavailable(Exception):
    """The signing keys could not be fetched in time: the request can be neither trusted nor refused."""


class SigningKeys(_OpenIdMetadata):  # type: ignore[misc]
    def __init__(self, url: str, timeout: float = TIMEOUT) -> None:
        super().__init__(url)
        self.timeout = timeout
        self._fetching: asyncio.Task[None] | None = None

    async def _refresh(self) -> None:
        task = self._fetching
        if task is None or task.done() or task.get_loop() is not asyncio.get_running_loop():
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
                keys = (await _document(http, keys_url)).get("keys")
        except (TimeoutError, aiohttp.ClientError, ValueError) as error:
            log.warning("the Bot Framework's signing keys could not be fetched: %s", type(error).__name__)
            raise KeysUnavailable(type(error).__name__) from None
        if not isinstance(keys, list):
            raise KeysUnavailable("no keys")
        self.keys = [key for key in keys if isinstance(key, dict)]
        self.last_updated = datetime.now()

    def _find(self, key_id: str) -> Any:
        # The library's takes the first match of a list and fails on a key without an id.
        for key in self.keys:
            if key.get("kid") == key_id and key_id:
                try:
                    public = RSAAlgorithm.from_jwk(json.dumps(key))
                except (ValueError, KeyError, TypeError):
                    return None
                return _OpenIdConfig(public, key.get("endorsements") or [])
        return None


async def _document(http: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with http.get(url) as response:
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


def install(url: str, timeout: float = TIMEOUT) -> None:
    """Make the library fetch `url`'s keys through `SigningKeys` (kept if already there)."""
    if not isinstance(JwtTokenExtractor.metadataCache.get(url), SigningKeys):
        JwtTokenExtractor.metadataCache[url] = SigningKeys(url, timeout)
