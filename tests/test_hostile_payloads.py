"""Hostile payloads, generated and sent over real HTTP: whatever reaches `/slack/events` correctly
signed, or `/api/messages`, with fields missing, null, of the wrong type, huge, truncated or
unknown, is answered 2xx or 4xx, never 5xx, with no failure logged, and stores the whole change a
valid request makes or none of it. A malformed `app.yaml` is a `ConfigError` saying what is wrong,
never another exception.

Each test starts its server once, on an event loop in a thread of its own, and sends every
hypothesis example to it."""

from __future__ import annotations

import asyncio
import copy
import hashlib
import hmac
import itertools
import json
import logging
import threading
import time
import urllib.parse
from collections.abc import Callable, Coroutine, Iterator
from contextlib import AbstractAsyncContextManager, contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from aiohttp.http_exceptions import LineTooLong
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

from bot.config import MAX_CONFIG_BYTES, ConfigError, load_organisation, parse_organisation_text
from handlers import objections, setup, strategy
from handlers.context import Context
from storage.database import Database
from storage.models import Decision, Outbox, metadata
from tests import slack_fake, teams_fake, test_slack, test_teams
from tests.conftest import ROOT
from tests.fakes import Clock, rows
from tests.generated import examples
from tests.slack_world import FORM, World, slack_world
from tests.teams_world import TeamsWorld, teams_world

T = TypeVar("T")
JSON = "application/json"
DROP = object()  # a field left out
EXAMPLES = examples(40, fixtures=True)
# Where who-is-who and where-to-answer are kept: any request from someone may add to them.
DIRECTORY = {"person", "identity", "conversation", "rostermember", "groupmember", "apscheduler_jobs"}

# --- what goes into the fields ---------------------------------------------------------------------

HOSTILE_TEXT = st.one_of(
    st.sampled_from(
        [
            "",
            " ",
            "\x00\x01\x07\x1b[31m control \x7f",
            "\u202eevil\u202c \u200f\u200e right-to-left",
            "<!channel> <@U0REP000001> <https://evil.example|x>",
            "²",
            "null",
            "[]",
            "{}",
            '{"id": 1}',
            "1e999",
            "-1",
        ]
    ),
    # 100 kB, and (in emoji, 4 bytes each and longer once escaped) past the megabyte a request may be
    st.sampled_from(["x", "\u202e", "🙂"]).map(lambda char: char * 100_000),
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    HOSTILE_TEXT,
)
JUNK = st.one_of(
    SCALARS,
    st.just([]),
    st.just({}),
    st.lists(SCALARS, max_size=3),
    st.dictionaries(st.text(max_size=8), SCALARS, max_size=3),
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key and index inside a JSON document."""
    found: list[tuple[Any, ...]] = []
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        found.append((*prefix, key))
        found += _paths(child, (*prefix, key))
    return found


@st.composite
def mutated(draw: st.DrawFn, base: Any, junk: st.SearchStrategy[Any] = JUNK) -> Any:
    """`base` with one to three of its fields dropped or replaced by something of another type."""
    doc = copy.deepcopy(base)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        paths = _paths(doc)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        if draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(junk)
    return doc


def truncated(draw: st.DrawFn, text: str) -> str:
    return text[: draw(st.integers(min_value=0, max_value=max(len(text) - 1, 0)))]


# --- a server started once per test ---------------------------------------------------------------


class Loop:
    """An event loop in a thread of its own: the world started on it serves every example."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(timeout=120)

    def close(self) -> None:
        self.run(self.loop.shutdown_default_executor())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@contextmanager
def started(world: AbstractAsyncContextManager[T]) -> Iterator[tuple[T, Loop]]:
    loop = Loop()
    try:
        opened = loop.run(world.__aenter__())
        try:
            yield opened, loop
        finally:
            loop.run(world.__aexit__(None, None, None))
    finally:
        loop.close()


def counts(ctx: Context) -> dict[str, int]:
    with ctx.db.session() as session:
        return {
            table.name: int(session.execute(select(func.count()).select_from(table)).scalar_one())
            for table in metadata.sorted_tables
            if table.name not in DIRECTORY
        }


def difference(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {name: after[name] - before[name] for name in after if after[name] != before[name]}


def failures(caplog: pytest.LogCaptureFixture, since: int) -> list[str]:
    """Failures logged since record `since`: errors, and anything with a traceback."""
    return [
        f"{r.name}: {r.getMessage()[:300]}"
        for r in caplog.records[since:]
        if (r.levelno >= logging.ERROR or r.exc_info is not None) and not _the_fakes(r)
    ]


def _the_fakes(record: logging.LogRecord) -> bool:
    """The fake Slack's server refusing a request line over 8 kB (`users.info?user=` and a
    user id of 100 kB), as Slack would; Touchline's own requests here have short lines."""
    error = record.exc_info[1] if record.exc_info else None
    return record.name == "aiohttp.server" and isinstance(error, LineTooLong)


def whole(change: dict[str, int]) -> bool:
    """A change one valid request makes: nothing; an objection logged (with its audit entry,
    and any theme it is the first of); an acknowledgement given or taken back (and the posted
    cards' counts queued for an update); an event (a reaction, a Teams activity) noted as heard,
    with any of them; the request kept in the inbox (done), with any of them."""
    rest = dict(change)
    heard = rest.pop("inboundevent", 0)
    if rest.pop("inboxitem", 0) not in (0, 1):
        return False
    if rest.get("objection") == 1:
        rest.pop("theme", None)
        return heard in (0, 1) and rest == {"objection": 1, "auditentry": 1}
    if "acknowledgement" in rest:
        return (
            heard in (0, 1)
            and rest.pop("acknowledgement") in (1, -1)
            and rest.pop("outbox", 0) >= 0
            and not rest
        )
    return heard in (0, 1) and not rest


class Server:
    """A world and the loop it runs on. (Not a dataclass: hypothesis would print all of the
    world with a failing example.)"""

    def __init__(
        self,
        ctx: Context,
        loop: Loop,
        caplog: pytest.LogCaptureFixture,
        send: Callable[[bytes, str], Coroutine[Any, Any, tuple[int, str]]],
    ) -> None:
        self.ctx, self.loop, self.caplog, self.send = ctx, loop, caplog, send
        self.invalid: list[str] = []  # what the fake platform found invalid in what Touchline sent

    def __repr__(self) -> str:
        return type(self).__name__

    def heard(self, body: bytes | str, content_type: str) -> tuple[int, str, dict[str, int]]:
        """Send one request: it is answered without a server error, no failure is logged, and it
        changes the database by a whole change or not at all. Returns the status, the answer
        and the change."""
        raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
        since, before, sent = len(self.caplog.records), counts(self.ctx), len(self.invalid)
        status, text = self.loop.run(self.send(raw, content_type))
        change = difference(before, counts(self.ctx))
        assert 200 <= status < 500, (status, text[:500], raw[:500])
        assert failures(self.caplog, since) == [], raw[:500]
        assert self.invalid[sent:] == [], raw[:500]  # answered within the platform's rules
        assert whole(change), f"{change} is a part of a change; sent {raw[:800]!r}"
        return status, text, change

    def learn(self, body: bytes | str, content_type: str) -> dict[str, int]:
        """A valid request: answered 2xx, and (the fixtures check) it changes what it should,
        so that the changes `whole` allows are ones valid requests really make."""
        status, text, change = self.heard(body, content_type)
        assert status in (200, 201), text
        return change


# --- Slack ------------------------------------------------------------------------------------------

SLACK_LEAD, SLACK_REP1, SLACK_REP2, SALES = (
    test_slack.LEAD,
    test_slack.REP1,
    test_slack.REP2,
    test_slack.SALES,
)
_stamps = itertools.count()


def slack_signed(body: bytes, content_type: str, secret: str = slack_fake.SECRET) -> dict[str, str]:
    """Signed as Slack signs (over the raw bytes, which need not be UTF-8); each request with
    a timestamp of its own, so that no two examples repeat a signature (a replay, refused)."""
    stamp = str(int(time.time()) - next(_stamps) % 240)
    digest = hmac.new(secret.encode(), b"v0:" + stamp.encode() + b":" + body, hashlib.sha256).hexdigest()
    return {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": f"v0={digest}",
    }


class SlackServer(Server):
    world: World
    decision: int
    post_ts: str
    modal: dict[str, Any]


@pytest.fixture
def slack(database_url: str, clock: Clock, caplog: pytest.LogCaptureFixture) -> Iterator[SlackServer]:
    """Touchline on Slack with a decision announced and posted, an objection form opened, and
    valid requests of each kind seen to make their change."""
    ctx = Context(
        db=Database.from_url(database_url), org=parse_organisation_text(test_slack.ORG), clock=clock
    )
    setup.apply(ctx)
    with started(slack_world(ctx)) as (world, loop):

        async def send(body: bytes, content_type: str) -> tuple[int, str]:
            async with world.http.post(
                world.url, data=body, headers=slack_signed(body, content_type)
            ) as answer:
                text = await answer.text()
            await world.settled()
            return answer.status, text

        server = SlackServer(ctx, loop, caplog, send)
        server.world, server.invalid = world, world.fake.invalid
        loop.run(test_slack.announce(world))
        loop.run(world.deliver())
        server.decision = rows(ctx.db, Decision)[0].id or 0
        server.post_ts = rows(ctx.db, Outbox, address=SALES, kind="post")[0].message_ref or ""
        server.heard(slack_fake.slash_command("objection", "", SLACK_REP1, fake=world.fake), FORM)
        server.modal = loop.run(world.opened(2))
        assert server.modal["callback_id"] == objections.FORM_ID
        for user in (SLACK_REP1, SLACK_REP2):
            assert server.learn(command_body(server, {"user_id": user, "text": "too expensive"}), FORM)[
                "objection"
            ]
            assert server.learn(slack_fake.interaction(view_submission(server, user)), FORM)["objection"]
        ack = slack_fake.button(strategy.ACK, str(server.decision), SLACK_REP1, fake=world.fake)
        assert server.learn(ack, FORM)["acknowledgement"] == 1
        assert (
            server.learn(json.dumps(reaction(server, SLACK_REP2, "Ev0LEARN0001")), JSON)["acknowledgement"]
            == 1
        )
        taken_back = reaction(server, SLACK_REP2, "Ev0LEARN0002")
        taken_back["event"]["type"] = "reaction_removed"
        assert server.learn(json.dumps(taken_back), JSON)["acknowledgement"] == -1
        yield server
    ctx.db.dispose()


def command_body(server: SlackServer, fields: dict[str, str]) -> str:
    base = dict(
        urllib.parse.parse_qsl(
            slack_fake.slash_command("objection", "", SLACK_REP1, fake=server.world.fake),
            keep_blank_values=True,
        )
    )
    return urllib.parse.urlencode({**base, **fields})


def view_submission(server: SlackServer, user: str) -> dict[str, Any]:
    body = slack_fake.view_submission(
        server.modal, user, {"text": "Too expensive for us", "severity": "high"}
    )
    payload: dict[str, Any] = json.loads(dict(urllib.parse.parse_qsl(body))["payload"])
    return payload


def reaction(server: SlackServer, user: str, event_id: str) -> dict[str, Any]:
    fields = {
        "type": "reaction_added",
        "user": user,
        "reaction": "white_check_mark",
        "item": {"type": "message", "channel": SALES, "ts": server.post_ts},
        "item_user": slack_fake.BOT_USER,
    }
    envelope: dict[str, Any] = json.loads(slack_fake.event("reaction_added", fields, event_id=event_id))
    return envelope


def test_requests_not_signed_by_slack_now_are_refused_with_401_and_do_nothing(slack: SlackServer) -> None:
    body = command_body(slack, {"text": "too expensive"}).encode()
    headers = slack_signed(body, FORM)
    for variant in (
        {"Content-Type": FORM},  # unsigned
        slack_signed(body, FORM, secret="a guess"),  # forged
        {**headers, "X-Slack-Request-Timestamp": "1700000000"},  # stale
        {**headers, "X-Slack-Request-Timestamp": "yesterday"},
        {k: v for k, v in headers.items() if k != "X-Slack-Request-Timestamp"},
        {**headers, "X-Slack-Signature": ""},
    ):

        async def post(headers: dict[str, str] = variant) -> int:
            async with slack.world.http.post(slack.world.url, data=body, headers=headers) as answer:
                return answer.status

        before, since = counts(slack.ctx), len(slack.caplog.records)
        assert slack.loop.run(post()) == 401, variant
        assert counts(slack.ctx) == before and failures(slack.caplog, since) == []


# The form fields of a slash command: dropped, empty, another type (a form holds only text,
# so a number, a list or an object written out), huge, or with controls and right-to-left marks.
FORM_VALUES = st.one_of(
    HOSTILE_TEXT,
    st.integers().map(str),
    st.sampled_from(['["U0REP000001"]', '{"id": "U0REP000001"}', "None", "true"]),
    st.text(max_size=40),
)


@EXAMPLES
@given(data=st.data())
def test_a_slash_command_with_any_form_fields_is_answered_and_stores_all_or_nothing(
    slack: SlackServer, data: st.DataObject
) -> None:
    fields = dict(
        urllib.parse.parse_qsl(command_body(slack, {"user_id": SLACK_REP1}), keep_blank_values=True)
    )
    fields["command"] = data.draw(
        st.sampled_from(["/objection", "/objection", "/strategy", "/touchline", "/x"])
    )
    fields["text"] = data.draw(st.one_of(HOSTILE_TEXT, st.text(max_size=80), st.just("too expensive")))
    for _ in range(data.draw(st.integers(min_value=0, max_value=3))):
        name = data.draw(st.sampled_from(sorted(fields)))
        if data.draw(st.booleans()):
            fields.pop(name)
        else:
            fields[name] = data.draw(FORM_VALUES)
    body = urllib.parse.urlencode(fields)
    body += data.draw(st.sampled_from(["", "", "&user_id=U0REP000002", "&text", "&%ZZ=%", "&&="]))
    slack.heard(body, FORM)


def test_bodies_that_are_not_a_form_or_json_are_refused_with_400(slack: SlackServer) -> None:
    for body, content_type in (
        (b"\xff\xfe\x00payload=%7B", FORM),  # not UTF-8
        (b"payload=%7B%22type%22%3A%22block_actions%22%2C%22us", FORM),  # truncated JSON
        (b"payload=%5B1%2C2%5D", FORM),  # a list
        (b"payload=null", FORM),
        (b'{"type": "event_callback", "ev', JSON),
        (b"[]", JSON),
        (b"42", JSON),
        (b"", FORM),
    ):
        status, _, change = slack.heard(body, content_type)
        assert 400 <= status < 500 and change == {}, (body, status)


ACTION_IDS = st.sampled_from(
    [
        strategy.ACK,
        strategy.ASK,
        strategy.CONCERN,
        strategy.ANSWER,
        objections.EDIT,
        objections.FROM_MESSAGE,
        "asset.useful",
        "no.such.action",
        "",
        "🙂" * 300,
    ]
)


@st.composite
def interactions(draw: st.DrawFn, server: SlackServer) -> str:
    """A block_actions, view_submission or message shortcut payload, mutated, or truncated."""
    kind = draw(st.sampled_from(["block_actions", "view_submission", "message_action"]))
    if kind == "block_actions":
        body = slack_fake.button(
            draw(ACTION_IDS),
            draw(st.sampled_from([str(server.decision), "1", "", "x"])),
            SLACK_REP1,
            fake=server.world.fake,
        )
        base = json.loads(dict(urllib.parse.parse_qsl(body))["payload"])
    elif kind == "view_submission":
        base = view_submission(server, SLACK_REP1)
    else:
        base = json.loads(
            dict(urllib.parse.parse_qsl(slack_fake.shortcut("too expensive", SLACK_REP1)))["payload"]
        )
    payload = json.dumps(draw(mutated(base)))
    if draw(st.integers(min_value=0, max_value=9)) == 0:
        payload = truncated(draw, payload)
    return urllib.parse.urlencode({"payload": payload})


@EXAMPLES
@given(data=st.data())
def test_interactivity_payloads_with_fields_missing_null_or_mistyped_are_answered_and_store_all_or_nothing(
    slack: SlackServer, data: st.DataObject
) -> None:
    body = data.draw(interactions(slack))
    slack.heard(body, FORM)


_events = itertools.count(1)


@EXAMPLES
@given(data=st.data())
def test_events_with_fields_missing_null_or_mistyped_are_answered_and_store_all_or_nothing(
    slack: SlackServer, data: st.DataObject
) -> None:
    user = data.draw(st.sampled_from([SLACK_REP1, SLACK_REP2, SLACK_LEAD]))
    base = reaction(slack, user, f"Ev{next(_events):010d}")
    base["event"]["type"] = data.draw(
        st.sampled_from(["reaction_added", "reaction_removed", "app_home_opened"])
    )
    body = json.dumps(data.draw(mutated(base)))
    if data.draw(st.integers(min_value=0, max_value=9)) == 0:
        body = truncated(data.draw, body)
    slack.heard(body, JSON)


def test_the_named_hostile_slack_requests_are_each_refused_or_answered_as_expected(
    slack: SlackServer,
) -> None:
    """The cases of issue 10 written out (the generated tests may not meet each one): what Slack
    never sends is refused with 4xx; odd but well-formed content is answered."""
    submission = view_submission(slack, SLACK_REP1)
    view = submission["view"]
    event = reaction(slack, SLACK_REP2, "Ev0NAMED0001")

    def interaction(**fields: Any) -> str:
        return slack_fake.interaction({**submission, **fields})

    def with_event(**fields: Any) -> str:
        changed = {**event["event"], **fields}
        return json.dumps({**event, "event": {k: v for k, v in changed.items() if v is not DROP}})

    def button_with(**fields: Any) -> str:
        [payload] = urllib.parse.parse_qs(
            slack_fake.button(strategy.ASK, "1", SLACK_REP1, fake=slack.world.fake)
        )["payload"]
        return slack_fake.interaction({**json.loads(payload), **fields})

    refused = [
        (command_body(slack, {"user_id": ""}), FORM),
        (button_with(response_url=True), FORM),  # where to answer, not a URL
        (button_with(trigger_id=5), FORM),
        (urllib.parse.urlencode({"command": "/objection", "text": "too expensive"}), FORM),  # no user_id
        (command_body(slack, {"command": ""}), FORM),
        (slack_fake.interaction({"type": "block_actions", "user": {"id": SLACK_REP1}, "actions": []}), FORM),
        (slack_fake.interaction({"type": "block_actions", "user": {"id": SLACK_REP1}, "actions": {}}), FORM),
        (
            slack_fake.interaction({"type": "block_actions", "user": None, "actions": [{"action_id": "x"}]}),
            FORM,
        ),
        (
            slack_fake.interaction(
                {"type": "block_actions", "user": SLACK_REP1, "actions": [{"action_id": 5}]}
            ),
            FORM,
        ),
        (slack_fake.interaction({"type": "block_actions", "user": 5, "actions": [{"action_id": "x"}]}), FORM),
        (slack_fake.interaction({"type": "block_actions", "user": [SLACK_REP1], "actions": [{}]}), FORM),
        (interaction(view=None), FORM),
        (interaction(view=[view]), FORM),
        (interaction(view={**view, "callback_id": 5}), FORM),
        (interaction(user={"id": None}), FORM),
        (slack_fake.interaction({"type": "message_action", "callback_id": "log_as_objection"}), FORM),
        (slack_fake.interaction({"type": "shortcut", "callback_id": 5, "user": {"id": SLACK_REP1}}), FORM),
        (slack_fake.interaction({"type": "message_action", "user": {"id": SLACK_REP1}, "message": []}), FORM),
        (json.dumps({**event, "event": None}), JSON),
        (json.dumps({**event, "event": [event["event"]]}), JSON),
        (json.dumps({k: v for k, v in event.items() if k != "event"}), JSON),
        (json.dumps({**event, "type": 5}), JSON),
        (json.dumps({**event, "type": "no_such_type"}), JSON),
        (with_event(type=5), JSON),
        (with_event(item=[1]), JSON),
        (with_event(user=5), JSON),
        (with_event(user=DROP), JSON),
        (json.dumps({**event, "event_id": 5}), JSON),
        (json.dumps({"type": "event_callback", "event": {"type": "app_home_opened"}}), JSON),
        (json.dumps(event)[:-20], JSON),  # truncated
        # ids Slack does not give: too long for a column, or for a modal's metadata
        (command_body(slack, {"user_id": "U" + "X" * 300, "text": "too expensive"}), FORM),
        (command_body(slack, {"user_id": "u0rep000001\u202e", "text": "too expensive"}), FORM),
        (command_body(slack, {"user_id": SLACK_REP1, "channel_id": "C" * 100_000, "text": ""}), FORM),
        (slack_fake.button(strategy.ASK, "1", SLACK_REP1, fake=slack.world.fake, channel="C" * 5_000), FORM),
        (json.dumps({**event, "event_id": "Ev" + "x" * 300}), JSON),
        (with_event(item={"type": "message", "channel": "C" * 400, "ts": "1.1"}), JSON),
    ]
    for body, content_type in refused:
        status, _, change = slack.heard(body, content_type)
        assert 400 <= status < 500 and change == {}, (status, change, urllib.parse.unquote(body)[:300])
    answered = [
        (command_body(slack, {"user_id": SLACK_REP1, "text": "x" * 100_000}), FORM),
        (command_body(slack, {"user_id": SLACK_REP1, "text": "\u202e\x00\x1b\u200f"}), FORM),
        (command_body(slack, {"user_id": SLACK_REP1, "text": "\u202etoo expensive\u202c vs Acme"}), FORM),
        (slack_fake.button("no.such.action", "1", SLACK_REP1, fake=slack.world.fake), FORM),
        (interaction(view={**view, "state": []}), FORM),
        (interaction(view={**view, "state": {"values": []}}), FORM),
        (interaction(view={**view, "state": {"values": {"text": {"value": 5}}}}), FORM),
        (
            interaction(
                view={**view, "state": {"values": {"text": {"value": {"type": "x", "value": ["a"]}}}}}
            ),
            FORM,
        ),
        (interaction(view={**view, "private_metadata": 5}), FORM),
        (interaction(view={**view, "private_metadata": "{not json"}), FORM),
        (interaction(view={**view, "callback_id": "no.such.form"}), FORM),
        (with_event(item=DROP), JSON),
        (with_event(reaction=None), JSON),
        (json.dumps({"type": "url_verification"}), JSON),
    ]
    for body, content_type in answered:
        status, _, _ = slack.heard(body, content_type)
        assert status == 200, (status, urllib.parse.unquote(body)[:300])


# --- Teams ------------------------------------------------------------------------------------------

TEAMS_REP1, TEAMS_LEAD = test_teams.REP1, test_teams.LEAD


class TeamsServer(Server):
    world: TeamsWorld
    form: dict[str, Any]


@pytest.fixture
def teams(database_url: str, clock: Clock, caplog: pytest.LogCaptureFixture) -> Iterator[TeamsServer]:
    """Touchline on Teams (the Emulator's mode) in a team, an objection form card sent, and
    valid activities of each kind seen to make their change."""
    ctx = Context(
        db=Database.from_url(database_url), org=parse_organisation_text(test_teams.ORG), clock=clock
    )
    setup.apply(ctx)
    with started(teams_world(ctx)) as (world, loop):

        async def send(body: bytes, content_type: str) -> tuple[int, str]:
            async with world.http.post(
                world.url, data=body, headers={"Content-Type": content_type}
            ) as answer:
                return answer.status, await answer.text()

        server = TeamsServer(ctx, loop, caplog, send)
        server.world, server.invalid = world, world.fake.invalid
        loop.run(world.install(TEAMS_LEAD, test_teams.TEAM, [TEAMS_LEAD, TEAMS_REP1, test_teams.REP2]))
        server.learn(json.dumps(teams_fake.activity(world.fake, TEAMS_REP1, text="objection")), JSON)
        [card] = world.latest(TEAMS_REP1.personal, with_inputs=True).cards()
        server.form = {**card["actions"][0]["data"], "text": "Too expensive for us", "severity": "high"}
        for _ in range(2):
            one_line, form, react, install = teams_bases(server)
            assert server.learn(json.dumps(one_line), JSON)["objection"] == 1
            assert server.learn(json.dumps(form), JSON)["objection"] == 1
            assert server.learn(json.dumps(react), JSON) in ({}, {"inboundevent": 1})  # on no post of ours
            assert server.learn(json.dumps(install), JSON) == {}  # the roster: the directory's
        yield server
    ctx.db.dispose()


def teams_bases(server: TeamsServer) -> list[dict[str, Any]]:
    """Valid activities: a one-line objection, a submitted objection form, a reaction, an install."""
    fake = server.world.fake
    react = teams_fake.activity(fake, TEAMS_REP1, replyToId="1700000000001", type="messageReaction")
    react.pop("text", None)
    react["reactionsAdded"] = [{"type": "like"}]
    return [
        teams_fake.activity(fake, TEAMS_REP1, text="objection too expensive vs Acme"),
        teams_fake.activity(fake, TEAMS_REP1, text="", value=server.form),
        react,
        teams_fake.installed(fake, TEAMS_LEAD, team=test_teams.TEAM),
    ]


@EXAMPLES
@given(data=st.data())
def test_activities_with_fields_missing_null_or_mistyped_are_answered_and_store_all_or_nothing(
    teams: TeamsServer, data: st.DataObject
) -> None:
    base = data.draw(st.sampled_from(teams_bases(teams)))
    body = json.dumps(data.draw(mutated(base)))
    if data.draw(st.integers(min_value=0, max_value=9)) == 0:
        body = truncated(data.draw, body)
    teams.heard(body, JSON)


def test_the_named_hostile_activities_are_each_refused_or_answered_as_expected(teams: TeamsServer) -> None:
    message = teams_fake.activity(teams.world.fake, TEAMS_REP1, text="objection too expensive")

    def without(key: str) -> dict[str, Any]:
        return {k: v for k, v in message.items() if k != key}

    refused: list[dict[str, Any] | str] = [
        without("from"),
        {**message, "from": {"name": "Rita Rep"}},
        {**message, "from": {"id": 5}},
        {**message, "from": "Rita Rep"},
        without("conversation"),
        {**message, "conversation": {"conversationType": "personal"}},
        {**message, "conversation": None},
        without("recipient"),
        {**message, "type": 5},
        without("type"),
        without("serviceUrl"),
        {**message, "serviceUrl": "not a url"},
        {**message, "serviceUrl": 5},
        {**message, "serviceUrl": "ftp://example.com/"},
        {**message, "serviceUrl": "http://"},
        {**message, "entities": "x"},
        {**message, "attachments": {"a": 1}},
        {**message, "timestamp": "yesterday"},
        {**message, "type": "messageReaction", "replyToId": "1", "reactionsAdded": "x"},
        {**message, "type": "conversationUpdate", "membersAdded": [5]},
        {**message, "text": "objection " + "x" * 1_100_000},  # over the megabyte a request may be
        # ids longer than Teams gives, and than the columns that keep them
        {**message, "from": {"id": "29:" + "x" * 300, "name": "Rita"}},
        {**message, "from": {**message["from"], "aadObjectId": "x" * 300}},
        {**message, "from": {**message["from"], "name": "x" * 100_000}},  # echoed in the reply
        {**message, "channelId": "x" * 100_000},  # so are these two
        {**message, "locale": "x" * 100_000},
        {**message, "channelId": 5},
        {**message, "conversation": {**message["conversation"], "id": "a:\u0100"}},  # not for a URL
        {**message, "id": {}},
        {**message, "conversation": {**message["conversation"], "id": "a:" + "x" * 400}},
        {
            **message,
            "id": "x" * 300,
            "type": "messageReaction",
            "replyToId": "1",
            "reactionsAdded": [{"type": "like"}],
        },
        json.dumps(message)[:200],  # truncated
        # Not the Bot Framework's schema, which the Agents SDK's model holds to: named, refused.
        {**message, "text": 5},
        {**message, "text": ["objection", "x"]},
        {**message, "type": "messageReaction", "replyToId": "1", "reactionsAdded": [{}]},
        {**message, "type": "messageReaction", "replyToId": "1", "reactionsAdded": [None]},
        {**message, "type": "conversationUpdate", "membersAdded": [None, {}, {"id": TEAMS_REP1.member_id}]},
        "[]",
        "",
    ]
    for case in refused:
        status, _, change = teams.heard(case if isinstance(case, str) else json.dumps(case), JSON)
        assert 400 <= status < 500 and change == {}, (status, change, str(case)[:300])
    answered: list[dict[str, Any]] = [
        {**message, "text": "objection " + "x" * 1_000_000},  # a megabyte: too long to keep
        {**message, "text": "objection \u202etoo expensive\u202c \x00\x1b"},
        {**message, "value": "objection"},
        {**message, "value": ["objection"]},
        {**message, "value": {"_touchline": "submit"}},
        {**message, "value": {"_touchline": "submit", "_form": 5, "text": ["x"]}},
        {**message, "value": {"_touchline": "action", "action_id": 5, "value": [1]}},
        {**message, "type": "noSuchType"},
        {**message, "from": {**message["from"], "name": "R" * 300}},  # Teams allows 256
        {**message, "type": "messageReaction", "replyToId": "1", "reactionsAdded": [{"type": "x" * 300}]},
        {**message, "channelData": "x"},
        {**message, "type": "conversationUpdate", "membersAdded": [{"id": "\x00"}, {"id": "x" * 300}]},
        {**message, "from": {**message["from"], "name": "Rita\x00 \u202eRep"}},  # PostgreSQL refuses NUL
    ]
    for case in answered:
        status, _, _ = teams.heard(json.dumps(case), JSON)
        assert status in (200, 201), (status, str(case)[:300])
    status, _, change = teams.heard(json.dumps(message), "text/plain")
    assert status == 415 and change == {}


# --- app.yaml -----------------------------------------------------------------------------------------

DEMO = (ROOT / "app.yaml").read_text(encoding="utf-8")
DEMO_DATA = yaml.safe_load(DEMO)
YAML_SCALARS = st.sampled_from(
    [
        "~",
        "null",
        "yes",
        "no",
        "on",
        "0x1F",
        "0o17",
        ".inf",
        "-.nan",
        "2026-01-01",
        "2026-01-01T09:00:00Z",
        "12:30:00",
        "'",
        '"',
        "[",
        "{",
        "- -",
        ": :",
        "&a",
        "*a",
        "!!binary aGVsbG8=",
        "!!python/object:os.system x",
        "!!str",
        "!custom x",
        "|",
        ">-",
        "%YAML 1.1",
        "---",
        "...",
        "@",
        "`",
        "99999999999999999999999d",
        "9999999999999999999w",
        "7/0s",
        "0/1s",
        "*/0 * * * *",
        "99 99 99 99 99",
        "Europe",
        "../../etc/passwd",
        "a" * 300,
        "\t",
        "\u202e",
        "\ufeff",
    ]
)
YAML_JUNK = st.one_of(
    JUNK,
    YAML_SCALARS,
    st.lists(YAML_SCALARS, max_size=3),
    st.dictionaries(YAML_SCALARS, YAML_SCALARS, max_size=3),
    st.datetimes().map(lambda d: d.date()),
)


def config_error(text: str) -> str:
    """What is wrong with `app.yaml` written as `text`: a ConfigError's message (never empty),
    or "" if it is valid. Any other exception fails the test."""
    try:
        parse_organisation_text(text)
    except ConfigError as error:
        assert str(error).strip(), "a ConfigError without a message"
        return str(error)
    return ""


@examples(60)
@given(data=mutated(DEMO_DATA, YAML_JUNK))
def test_app_yaml_with_keys_dropped_or_values_of_any_type_is_accepted_or_a_config_error(data: Any) -> None:
    config_error(yaml.safe_dump(data, allow_unicode=True))


@st.composite
def yaml_texts(draw: st.DrawFn) -> str:
    """The demo's text, edited as a person might break it: a value replaced by a raw scalar,
    a line dropped, indented or cut, characters inserted, the file truncated."""
    lines = DEMO.splitlines()
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        i = draw(st.integers(min_value=0, max_value=len(lines) - 1))
        how = draw(st.sampled_from(["value", "drop", "indent", "cut", "insert", "duplicate"]))
        line = lines[i]
        if how == "value" and ":" in line:
            lines[i] = line.split(":", 1)[0] + ": " + draw(YAML_SCALARS)
        elif how == "drop":
            del lines[i]
        elif how == "indent":
            lines[i] = draw(st.sampled_from([" ", "  ", "\t", "    "])) + line
        elif how == "cut":
            lines[i] = line[: draw(st.integers(min_value=0, max_value=len(line)))]
        elif how == "insert":
            at = draw(st.integers(min_value=0, max_value=len(line)))
            lines[i] = line[:at] + draw(st.one_of(YAML_SCALARS, st.text(max_size=5))) + line[at:]
        else:
            lines.insert(i, line)
        if not lines:
            break
    text = "\n".join(lines)
    return truncated(draw, text) if draw(st.integers(min_value=0, max_value=5)) == 0 else text


@examples(80)
@given(text=yaml_texts())
def test_app_yaml_text_broken_in_any_way_is_accepted_or_a_config_error(text: str) -> None:
    config_error(text)


def test_app_yaml_that_is_too_big_too_deep_or_endless_is_a_config_error(tmp_path: Path) -> None:
    laughs = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    laughs += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]
    cases = {
        "an alias inside itself": DEMO + "\nextra: &loop [*loop]\n",
        "a billion laughs": "\n".join(laughs) + "\n",
        "nested ten thousand deep": "organisation: " + "[" * 10_000 + "]" * 10_000 + "\n",
        "a duration past any calendar": DEMO.replace("remind_after: 2d", "remind_after: 99999999999999d"),
        "a time zone that is a directory": DEMO.replace("timezone: Europe/Berlin", "timezone: Europe", 1),
        "a time zone name too long for a file": DEMO.replace(
            "timezone: Europe/Berlin", "timezone: " + "a" * 300, 1
        ),
        "a list where a mapping goes": "organisation: [a, b]\naudiences: 5\n",
        "a scalar for the whole file": "just a line\n",
        "two documents": DEMO + "\n---\n" + DEMO,
    }
    for name, text in cases.items():
        started_at = time.monotonic()
        assert config_error(text), name
        assert time.monotonic() - started_at < 5, f"{name}: took {time.monotonic() - started_at:.1f} s"
    assert not config_error(DEMO + "#" + "x" * 1_000_000 + "\n")  # a long comment is still a comment
    huge = tmp_path / "huge.yaml"
    huge.write_text(DEMO + "#" + "x" * MAX_CONFIG_BYTES + "\n", encoding="utf-8")
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(DEMO.encode() + b"\n# \xff\xfe\n")
    for path in (huge, binary, tmp_path / "missing.yaml", tmp_path):
        with pytest.raises(ConfigError, match=r"\S"):
            load_organisation(path)
