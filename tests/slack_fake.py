"""A local Slack for tests: a fake Web API on an ephemeral port that records every call and
answers in the shapes of the published fixtures, and helpers that send Touchline requests
signed exactly as Slack signs them."""

from __future__ import annotations

import asyncio
import copy
import json
import time
import urllib.parse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import ClientSession, WSMsgType, web
from aiohttp.test_utils import TestServer
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View
from slack_sdk.signature import SignatureVerifier

from tests.fake_limits import Gate

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "slack"  # see fixtures/README.md
SECRET = "test-signing-secret"
TOKEN = "xoxb-test-token"
BOT_USER = "U0BOT00001"


def fixture(kind: str, name: str) -> Any:
    return json.loads((FIXTURES / kind / name).read_text(encoding="utf-8-sig"))


@dataclass
class Call:
    method: str
    body: dict[str, Any]
    answer: dict[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.perf_counter)  # when it arrived, for end-to-end timings


@dataclass
class FakeSlack:
    """Answers like Slack's Web API; `errors` queues answers per method (an error code, or
    429 with a Retry-After) and `users`, `members`, `groups` say who is who."""

    calls: list[Call] = field(default_factory=list)
    errors: dict[str, list[str]] = field(default_factory=dict)
    users: dict[str, dict[str, str]] = field(default_factory=dict)
    members: dict[str, list[str]] = field(default_factory=dict)
    groups: dict[str, list[str]] = field(default_factory=dict)
    invalid: list[str] = field(default_factory=list)
    uploads: dict[str, bytes] = field(default_factory=dict)
    base_url: str = ""
    gate: Gate | None = None  # rate limits and faults, for the delivery tests and benchmarks
    # Slack's tiers, counted "per API method per app per workspace": users.info is Tier 4, 100+
    # a minute (docs.slack.dev/apis/web-api/rate-limits); past it, 429 with a Retry-After.
    tiers: dict[str, list[tuple[int, float]]] = field(default_factory=lambda: {"users.info": [(100, 60.0)]})
    check_blocks: bool = True
    sockets: list[web.WebSocketResponse] = field(default_factory=list)
    acks: list[dict[str, Any]] = field(default_factory=list)  # what Socket Mode clients sent back
    _ts: int = 0
    _tier_gates: dict[str, Gate] = field(default_factory=dict)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=20 * 1024 * 1024)
        app.router.add_post("/api/{method}", self.api)
        app.router.add_get("/api/{method}", self.api)  # slack_sdk reads some methods (users.info) by GET
        app.router.add_get("/socket", self.socket_mode)
        app.router.add_post("/response/{token}", self.response_url)
        app.router.add_post("/upload/{file_id}", self.upload)
        return app

    def called(self, method: str) -> list[dict[str, Any]]:
        return [c.body for c in self.calls if c.method == method]

    def answered(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method and c.answer.get("ok")]

    async def wait_for(self, method: str, count: int = 1, timeout: float = 10.0) -> list[dict[str, Any]]:
        """The calls of `method`, once there are at least `count` (Bolt works after it answers)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.called(method)
            if len(found) >= count:
                return found
            await asyncio.sleep(0.02)
        raise AssertionError(
            f"{method}: {len(self.called(method))} calls after {timeout} s;"
            f" calls: {[c.method for c in self.calls]}"
        )

    async def socket_mode(self, request: web.Request) -> web.WebSocketResponse:
        """Socket Mode's WebSocket: says hello, then carries what `push` sends; records acks."""
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        self.sockets.append(socket)
        await socket.send_json(
            {
                "type": "hello",
                "num_connections": 1,
                "debug_info": {"host": "fake-slack", "approximate_connection_time": 18060},
                "connection_info": {"app_id": "A0APP00001"},
            }
        )
        async for message in socket:
            if message.type == WSMsgType.TEXT:
                self.acks.append(json.loads(message.data))
        return socket

    async def push(self, kind: str, payload: dict[str, Any], *, envelope_id: str) -> dict[str, Any]:
        """Send an envelope to the connected Socket Mode client; returns its acknowledgement."""
        deadline = time.monotonic() + 10
        while not self.sockets and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert self.sockets, "no Socket Mode client connected"
        await self.sockets[-1].send_json(
            {
                "envelope_id": envelope_id,
                "type": kind,
                "accepts_response_payload": kind != "events_api",
                "retry_attempt": 0,
                "retry_reason": "",
                "payload": payload,
            }
        )
        while time.monotonic() < deadline:
            for ack in self.acks:
                if ack.get("envelope_id") == envelope_id:
                    return ack
            await asyncio.sleep(0.02)
        raise AssertionError(f"envelope {envelope_id} was not acknowledged")

    async def response_url(self, request: web.Request) -> web.Response:
        body = await request.json()
        self._check_blocks("response_url", body)
        self.calls.append(Call("response_url", body))
        return web.json_response({"ok": True})

    async def upload(self, request: web.Request) -> web.Response:
        self.uploads[request.match_info["file_id"]] = await request.read()
        return web.Response(text="OK")

    async def api(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        body = await _parsed(request)
        if self.gate is not None and method in ("chat.postMessage", "chat.update"):
            refusal = await self.gate.check(request, str(body.get("channel", "")))
            if refusal is not None:
                return refusal
        if method in self.tiers:
            tier = self._tier_gates.setdefault(method, Gate(per_app=self.tiers[method]))
            refusal = await tier.check(request, "")
            if refusal is not None:
                self.calls.append(Call(method, body, {"ok": False, "error": "ratelimited"}))
                return refusal
        self.calls.append(Call(method, body))
        queued = self.errors.get(method)
        if queued:
            error = queued.pop(0)
            if error == "429":
                return web.json_response(
                    {"ok": False, "error": "ratelimited"}, status=429, headers={"Retry-After": "7"}
                )
            return web.json_response({"ok": False, "error": error})
        self._check_blocks(method, body)
        self.calls[-1].answer = self._answer(method, body)
        return web.json_response(self.calls[-1].answer)

    def _check_blocks(self, where: str, body: dict[str, Any]) -> None:
        """Every Block Kit payload goes through slack_sdk's own models: an invalid one is noted."""
        if not self.check_blocks:
            return
        try:
            for block in _json(body.get("blocks")) or []:
                parsed = Block.parse(block)
                assert parsed is not None, f"unknown block {block.get('type')}"
                parsed.to_dict()
            view = _json(body.get("view"))
            if view:
                View(**view).to_dict()
        except Exception as error:
            self.invalid.append(f"{where}: {error}")

    def _answer(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        if method == "apps.connections.open":
            socket = self.base_url.replace("http://", "ws://").removesuffix("api/") + "socket"
            return {"ok": True, "url": socket}
        if method == "auth.test":
            answer = fixture("api", "auth.test.json")
            answer.update(
                ok=True, user_id=BOT_USER, team_id="T0TEAM0001", bot_id="B0BOT00001", user="touchline"
            )
            return answer
        if method == "chat.update" and str(body.get("channel", "")).startswith(("U", "W")):
            # Slack's documentation: for a direct message, a DM id (D…), not the person's user id.
            return {"ok": False, "error": "channel_not_found"}
        if method == "conversations.open":
            users = str(body.get("users", ""))
            if not users.startswith(("U", "W")) or "," in users:
                return {"ok": False, "error": "user_not_found"}
            return {"ok": True, "channel": {"id": "D" + users[1:]}}
        if method in ("chat.postMessage", "chat.update"):
            self._ts += 1
            ts = body.get("ts") or f"1764000000.{self._ts:06d}"
            channel = body.get("channel", "")
            if channel.startswith("U"):
                channel = "D" + channel[1:]  # a post to a person lands in the direct message with them
            return {
                "ok": True,
                "channel": channel,
                "ts": ts,
                "message": {"text": body.get("text", ""), "ts": ts},
            }
        if method == "chat.postEphemeral":
            return {"ok": True, "message_ts": f"1764000000.{self._ts:06d}"}
        if method in ("views.open", "views.publish", "views.update"):
            answer = fixture("api", "views.open.json")
            answer["ok"] = True
            answer["view"] = {**(_json(body.get("view")) or {}), "id": "V0VIEW0001"}
            return answer
        if method == "users.info":
            user_id = body.get("user", "")
            known = self.users.get(user_id, {})
            answer = fixture("api", "users.info.json")
            answer["ok"] = True
            user = answer["user"]
            user.update(
                id=user_id,
                name=known.get("name", user_id.lower()),
                real_name=known.get("name", ""),
                tz=known.get("tz", "Europe/Berlin"),
            )
            user["profile"].update(
                display_name=known.get("name", ""),
                real_name=known.get("name", ""),
                email=known.get("email", ""),
            )
            return answer
        if method == "conversations.members":
            everyone = self.members.get(body.get("channel", ""), [])
            start = int(body.get("cursor") or 0)
            page = everyone[start : start + 2]  # small pages, so that paging is exercised
            more = start + 2 < len(everyone)
            return {
                "ok": True,
                "members": page,
                "response_metadata": {"next_cursor": str(start + 2) if more else ""},
            }
        if method == "conversations.info":
            channel = body.get("channel", "")
            return {"ok": True, "channel": {"id": channel, "name": f"name-of-{channel.lower()}"}}
        if method == "usergroups.users.list":
            return {"ok": True, "users": self.groups.get(body.get("usergroup", ""), [])}
        if method == "files.getUploadURLExternal":
            file_id = f"F{len(self.uploads) + 1:09d}"
            return {
                "ok": True,
                "upload_url": f"{self.base_url.removesuffix('api/')}upload/{file_id}",
                "file_id": file_id,
            }
        if method == "files.completeUploadExternal":
            return {
                "ok": True,
                "files": [
                    {"id": f["id"], "title": f.get("title", "")} for f in _json(body.get("files")) or []
                ],
            }
        return {"ok": True}


async def _parsed(request: web.Request) -> dict[str, Any]:
    """The call's arguments, wherever slack_sdk put them: the query string (some methods), a
    form, or JSON."""
    arguments: dict[str, Any] = dict(request.query)
    raw = await request.text()
    if request.content_type == "application/json":
        arguments.update(json.loads(raw or "{}"))
    elif request.content_type == "application/x-www-form-urlencoded":
        arguments.update(urllib.parse.parse_qsl(raw))
    return arguments


def _json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value


@asynccontextmanager
async def fake_slack() -> AsyncIterator[FakeSlack]:
    fake = FakeSlack()
    # Slack's own logs are not Touchline's: the fake keeps no access log beside Touchline's.
    server = TestServer(fake.app(), host="127.0.0.1", port=0)
    await server.start_server(access_log=None)
    fake.base_url = f"http://127.0.0.1:{server.port}/api/"
    try:
        yield fake
    finally:
        await server.close()


# --- requests as Slack sends them ---------------------------------------------------------------------


def sign(body: str, *, secret: str = SECRET, timestamp: int | None = None) -> dict[str, str]:
    stamp = str(timestamp if timestamp is not None else int(time.time()))
    return {
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": SignatureVerifier(secret).generate_signature(timestamp=stamp, body=body),
    }


async def post(
    session: ClientSession, url: str, body: str, content_type: str, **signing: Any
) -> tuple[int, str]:
    headers = {"Content-Type": content_type, **sign(body, **signing)}
    async with session.post(url, data=body.encode(), headers=headers) as response:
        return response.status, await response.text()


def slash_command(
    command: str, text: str, user: str, *, fake: FakeSlack, channel: str = "C0SALES0001"
) -> str:
    fields = fixture("inbound", "slash_command.json")
    fields.update(
        command=f"/{command}",
        text=text,
        user_id=user,
        user_name=user.lower(),
        channel_id=channel,
        channel_name="sales",
        team_id="T0TEAM0001",
        team_domain="northwind",
        trigger_id=f"trigger-{time.monotonic_ns()}",
        response_url=f"{fake.base_url.removesuffix('api/')}response/{command}",
        api_app_id="A0APP00001",
    )
    return urllib.parse.urlencode({k: v if isinstance(v, str) else json.dumps(v) for k, v in fields.items()})


def interaction(payload: dict[str, Any]) -> str:
    return urllib.parse.urlencode({"payload": json.dumps(payload)})


def button(
    action_id: str, value: str, user: str, *, fake: FakeSlack, channel: str = "C0SALES0001", ts: str = ""
) -> str:
    payload = copy.deepcopy(fixture("inbound", "block_actions.json"))
    payload.update(
        type="block_actions",
        user={"id": user, "username": user.lower(), "name": user.lower(), "team_id": "T0TEAM0001"},
        api_app_id="A0APP00001",
        team={"id": "T0TEAM0001", "domain": "northwind"},
        trigger_id=f"trigger-{time.monotonic_ns()}",
        channel={"id": channel, "name": "sales"},
        container={"type": "message", "message_ts": ts, "channel_id": channel},
        response_url=f"{fake.base_url.removesuffix('api/')}response/action",
        actions=[
            {
                "type": "button",
                "action_id": action_id,
                "block_id": "b",
                "value": value,
                "action_ts": "1.0",
                "text": {"type": "plain_text", "text": "x"},
            }
        ],
    )
    payload.pop("view", None)
    payload.pop("message", None)
    return interaction(payload)


def view_submission(view: dict[str, Any], user: str, values: dict[str, Any]) -> str:
    """A submitted modal: `values` are put in the state the way Slack reports each element."""
    payload = copy.deepcopy(fixture("inbound", "view_submission.json"))
    state: dict[str, Any] = {}
    for block in view["blocks"]:
        if block["type"] != "input":
            continue
        name, element = block["block_id"], block["element"]
        value = values.get(name)
        kind = element["type"]
        if kind == "datepicker":
            item = {"type": kind, "selected_date": value}
        elif kind == "static_select":
            item = {
                "type": kind,
                "selected_option": {"value": value, "text": {"type": "plain_text", "text": str(value)}}
                if value
                else None,
            }
        elif kind == "multi_static_select":
            item = {
                "type": kind,
                "selected_options": [
                    {"value": v, "text": {"type": "plain_text", "text": v}} for v in value or []
                ],
            }
        elif kind == "checkboxes":
            item = {"type": kind, "selected_options": [{"value": "yes"}] if value else []}
        else:
            item = {"type": kind, "value": value}
        state[name] = {"value": item}
    payload.update(
        type="view_submission",
        user={"id": user, "username": user.lower(), "name": user.lower(), "team_id": "T0TEAM0001"},
        api_app_id="A0APP00001",
        team={"id": "T0TEAM0001", "domain": "northwind"},
        trigger_id=f"trigger-{time.monotonic_ns()}",
        view={**view, "id": "V0VIEW0001", "state": {"values": state}},
    )
    return interaction(payload)


def shortcut(text: str, user: str, *, channel: str = "C0SALES0001") -> str:
    payload = copy.deepcopy(fixture("inbound", "message_shortcut.json"))
    payload.update(
        type="message_action",
        callback_id="log_as_objection",
        user={"id": user, "name": user.lower()},
        team={"id": "T0TEAM0001", "domain": "northwind"},
        channel={"id": channel, "name": "sales"},
        trigger_id=f"trigger-{time.monotonic_ns()}",
        message={"type": "message", "text": text, "ts": "1.1", "user": "U0OTHER001"},
        response_url="https://hooks.invalid/none",
    )
    return interaction(payload)


def event(kind: str, fields: dict[str, Any], *, event_id: str) -> str:
    envelope = copy.deepcopy(fixture("inbound", f"event_{kind}.json"))
    envelope.update(
        team_id="T0TEAM0001",
        api_app_id="A0APP00001",
        event_id=event_id,
        event_time=int(time.time()),
        type="event_callback",
    )
    envelope["event"] = {**envelope.get("event", {}), **fields}
    return json.dumps(envelope)
