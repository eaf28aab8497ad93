"""The Bolt app: Slack's commands, buttons, modals, shortcuts and events, each turned into one of
the four neutral calls, and the reply drawn back in Slack's idiom.

What changes something — a command, a *Got it* or *Useful* press, a reaction — is stored in the
inbox (storage/inbox.py) before Slack is told it arrived, then done; a crash or a restart resumes
it, exactly once. Two kinds are done inside the request instead, as Slack needs: a modal's
submission, since its field errors travel in the answer (and its handler is one quick write),
and a button that only opens a form, whose `trigger_id` works for 3 seconds only (it changes
nothing, so nothing is lost with it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiohttp import ClientError, ClientSession, ClientTimeout, web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.blocks import home_view, modal, reply_message, submitted
from bot.slack.people import SlackPeople
from handlers import home, inbound, objections
from handlers.context import Actor, Context, PostRef
from handlers.ui import Reply
from storage import inbox
from storage.database import UNREACHABLE

log = logging.getLogger(__name__)
COMMANDS = ("strategy", "asset", "objection", "pulse", "digest", "touchline")
SHORTCUT = "log_as_objection"
BACKLOG = 32  # acknowledged commands still being worked on, before new ones wait for room
WORKING = 8  # inbox items worked on at once: more only contend for the threads and the event loop
INTAKE_THREADS = 4  # for storing what arrives, apart from the threads the work uses
ROOM_WAIT = 1.5  # seconds a new one may wait for room: Slack allows 3 to acknowledge
RESUME_EVERY = 2.0  # seconds between looks for inbox items a dead process left, and lease renewals
TAKE_EVERY = 0.05  # seconds between looks, for `touchline worker`: what the web process received is its work
FRESH = 5 * 60 + 30  # seconds a signature stays valid (Slack's 5 minutes, and clock skew)


def _given_client(record: logging.LogRecord) -> bool:
    # Bolt also reads SLACK_BOT_TOKEN and warns that it is unused, since the client it is given
    # was built from that very token: nothing an operator should act on.
    return "`token` will be unused" not in record.getMessage()


def _unsigned_body(record: logging.LogRecord) -> bool:
    # Bolt logs the whole body of a request whose signature fails, at INFO. Touchline checks the
    # signature before Bolt sees a request, so only one that went stale in between could reach
    # this line: dropped anyway, since its body is nobody's to read in the log.
    return not str(record.msg).startswith("Invalid request signature")


INTERACTIVE = ("block_actions", "view_submission", "view_closed", "shortcut", "message_action")
SLACK_ID = re.compile(r"^[A-Z0-9]{1,40}$")  # a user's (U…, W…), a channel's (C…, G…, D…)
EVENT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# The signing headers in Slack's shapes (ASCII only), before slack_sdk reads them: it takes the
# timestamp with int() and compares it with a float (a 400-digit number overflows), and compares
# signatures as text (a non-ASCII one raises).
TIMESTAMP = re.compile(r"[0-9]{1,12}")
SIGNATURE = re.compile(r"v0=[0-9a-f]{64}")


def _id(value: Any, *, required: bool = True) -> bool:
    """A Slack id; or nothing, where one is not required."""
    if value is None or value == "":
        return not required
    return isinstance(value, str) and SLACK_ID.match(value) is not None


def _malformed(body: Any) -> str | None:
    """What makes a request unlike any Slack sends, as far as Bolt and the listeners read it;
    None if it has the shape they expect."""
    if not isinstance(body, dict):
        return "the body is not an object"
    kind = body.get("type")
    event = body.get("event")
    if "event" in body and not isinstance(event, dict):
        return "event is not an object"
    if "command" in body and not (_id(body.get("user_id")) and _id(body.get("channel_id"), required=False)):
        return "a command without a user_id, or with ids that are not Slack's"
    if isinstance(event, dict):
        if kind == "event_callback" and not isinstance(event.get("type"), str):
            return "event.type is not a string"
        event_id = body.get("event_id", "")
        if not (isinstance(event_id, str) and (event_id == "" or EVENT_ID.match(event_id))):
            return "event_id is not an event id"
        if event.get("type") in ("reaction_added", "reaction_removed", "app_home_opened"):
            item = event.get("item", {})
            if not (_id(event.get("user")) and isinstance(item, dict)):
                return f"{event.get('type')} without a user, or with an item that is not an object"
            if not _id(item.get("channel"), required=False):
                return "a channel id that is not Slack's"
    for key in ("response_url", "trigger_id"):  # where and how to answer
        if body.get(key) is not None and not isinstance(body[key], str):
            return f"{key} is not a string"
    if kind not in INTERACTIVE:
        return None
    user = body.get("user")
    if not (isinstance(user, dict) and _id(user.get("id"))):
        return f"{kind} without user.id"
    for key in ("channel", "container", "message", "view", "team"):
        if body.get(key) is not None and not isinstance(body[key], dict):
            return f"{key} is not an object"
    channel, container = body.get("channel") or {}, body.get("container") or {}
    if not (_id(channel.get("id"), required=False) and _id(container.get("channel_id"), required=False)):
        return "a channel id that is not Slack's"
    if kind == "block_actions":
        actions = body.get("actions")
        if not (isinstance(actions, list) and actions and isinstance(actions[0], dict)):
            return "block_actions without actions"
        if not isinstance(actions[0].get("action_id"), str):
            return "the action has no action_id"
    elif kind in ("view_submission", "view_closed"):
        view = body.get("view") or {}
        if not all(isinstance(view.get(key), str) for key in ("type", "callback_id")):
            return "the view has no type or callback_id"
    elif not isinstance(body.get("callback_id"), str):
        return "the shortcut has no callback_id"
    return None


class SlackApp:
    """Touchline's Slack app: the Bolt app, the people it meets, and the `/slack/events` route."""

    def __init__(self, ctx: Context, client: AsyncWebClient, signing_secret: str) -> None:
        self.ctx = ctx
        self.client = client
        self.people = SlackPeople(ctx, client)
        self._working: set[asyncio.Task[Any]] = set()
        # Work done at once (acknowledged, from the inbox). On SQLite they queue for its one
        # writer behind the inbox's own small inserts, which Slack waits for (storage.database
        # WriteTurns lets those go first), so SQLite takes as many as PostgreSQL.
        self._room = asyncio.Semaphore(WORKING)
        # Who claims inbox items: this process, among replicas and the restarts of this one.
        self.claimant = f"{socket.gethostname()[:40]}-{os.getpid()}-{secrets.token_hex(3)}"
        self._doing: set[int] = set()  # inbox items this process holds
        # `serve --no-worker`: what arrives is stored for `touchline worker` to do, and this
        # process only answers (a crowd's work then runs on another core than the answers).
        self.hands_off = False
        self._intake = ThreadPoolExecutor(max_workers=INTAKE_THREADS, thread_name_prefix="inbox")
        self._http: ClientSession | None = None
        self._verifier = SignatureVerifier(signing_secret)
        self._seen: dict[str, float] = {}  # signatures of requests heard, oldest first
        bolt_log = logging.getLogger("slack_bolt.AsyncApp")
        bolt_log.addFilter(_given_client)
        bolt_log.addFilter(_unsigned_body)  # Bolt's request verification takes this logger's filters
        self.bolt = AsyncApp(
            logger=bolt_log,
            client=client,
            signing_secret=signing_secret,
            # Requests Touchline does not listen to get a plain 404, not a stack trace.
            raise_error_for_unhandled_request=False,
        )
        self._listen()

    async def handle(self, request: web.Request) -> web.Response:
        """`POST /slack/events`: a request not signed by Slack in the last 5 minutes is refused
        before its body is parsed, logged or handed to Bolt; so is a signed one heard before, or
        one Slack never sends (a body that does not parse, fields missing or of the wrong type);
        then Bolt dispatches."""
        if not self._signed(request.headers, await request.read()):
            # Not logged: it may come from anyone, and a line for each would be a log anyone can fill.
            return web.Response(status=401, text="Not signed by Slack.")
        if self._replayed(request.headers):
            if "X-Slack-Retry-Num" in request.headers:
                return web.Response(text="Already received.")  # Slack's own retry: it may stop
            log.warning("refused a Slack request that was heard before (a replay)")
            return web.Response(status=401, text="This request was already received.")
        try:
            bolt_request = await to_bolt_request(request)  # parses the body and reads ids from it
            problem = _malformed(bolt_request.body)
        except (ValueError, TypeError, AttributeError, KeyError, IndexError) as error:
            problem = f"the body cannot be read ({type(error).__name__})"
        if problem is not None:
            # Bolt's matchers and Touchline's listeners would trip over it.
            log.warning("refused a signed Slack request Slack does not send: %s", problem)
            return web.Response(status=400, text=f"Not a request Slack sends: {problem}.")
        if (taken := _inboxed(bolt_request.body)) is not None:
            kind, key, fields = taken
            return await self._receive(kind, key or request.headers["X-Slack-Signature"], fields)
        return await to_aiohttp_response(await self.bolt.async_dispatch(bolt_request))

    # --- the inbox ----------------------------------------------------------------------------

    async def _receive(self, kind: str, key: str, fields: dict[str, Any]) -> web.Response:
        """Store it, tell Slack, then do it. If it cannot be stored, Slack is not told it
        arrived: an event is answered 503, which Slack retries; a person is told to try again."""
        try:
            item = await self._stored(kind, key, fields)
        except UNREACHABLE as error:
            log.warning("a Slack %s could not be stored: %s", kind, type(error).__name__)
            if kind == "reaction":
                return web.Response(status=503, text="Touchline cannot store this now; try again.")
            if kind == "command":
                return web.json_response({"response_type": "ephemeral", "text": inbound.TRY_AGAIN})
            if fields.get("response_url"):
                self._start_task(self._respond(fields["response_url"], _ephemeral(inbound.TRY_AGAIN)))
            return web.Response()
        if item is not None:  # else Slack's retry of what is stored already
            self._received(item, kind, fields)
        return web.Response()

    async def _stored(self, kind: str, key: str, fields: dict[str, Any]) -> int | None:
        # Threads of its own: Slack waits for this insert, and it must not queue behind the
        # work (and deliveries) that fill the shared threads.
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._intake, self._store, kind, key, fields)

    def _store(self, kind: str, key: str, fields: dict[str, Any]) -> int | None:
        def store(session: Any) -> int | None:
            return inbox.receive(
                session,
                platform="slack",
                key=key,
                kind=kind,
                fields=fields,
                now=self.ctx.now(),
                claimant=None if self.hands_off else self.claimant,
            )

        return self.ctx.db.run(store, urgent=True)  # Slack waits for it

    def _received(self, item: int | None, kind: str, fields: dict[str, Any]) -> None:
        if item is not None and self.hands_off:
            return  # `touchline worker` takes it from the inbox
        self._start(item, kind, fields)

    def _start(self, item: int | None, kind: str, fields: dict[str, Any]) -> None:
        if item is not None:
            self._doing.add(item)
        self._start_task(self._perform(item, kind, fields))

    def _start_task(self, work: Awaitable[None]) -> None:
        async def tracked() -> None:
            with self._busy():
                await work

        asyncio.get_running_loop().create_task(tracked())

    async def _perform(self, item: int | None, kind: str, fields: dict[str, Any]) -> None:
        """Do an inbox item (a few at a time): `inbound` marks it done, in the unit of work that
        does it, or (what needed none) when it answers."""
        pause = 0.5
        try:
            while True:
                try:
                    async with self._room:
                        await PERFORMERS[kind](self, fields, item)
                    return
                except UNREACHABLE as error:
                    if item is None:
                        raise
                    # Its unit of work did not commit: try again once the database is back.
                    log.warning(
                        "a Slack %s waits for the database (%s); trying again in %.0f s",
                        kind,
                        type(error).__name__,
                        pause,
                    )
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, 10.0)
        except Exception:
            # Left claimed: taken up again when its lease has run out, a few times at most.
            log.exception("a Slack %s failed; it stays in the inbox to be tried again", kind)
        finally:
            if item is not None:
                self._doing.discard(item)

    async def keep_inbox(self, stop: asyncio.Event, *, every: float = RESUME_EVERY) -> None:
        """Until `stop`: renew this process's claims, and take over what a dead one left (and,
        looking `every` TAKE_EVERY, what a web process stored for a worker)."""
        renewed = 0.0
        while not stop.is_set():
            try:
                renew = time.monotonic() - renewed >= RESUME_EVERY
                renewed = time.monotonic() if renew else renewed
                found = await asyncio.to_thread(self._take_over, renew)
            except Exception as error:
                log.warning("could not look into the inbox: %s", type(error).__name__)
                found = []
            for item in found:
                if item.fields:
                    log.info("resuming a Slack %s from the inbox", item.kind)
                    self._start(item.id, item.kind, item.fields)
                else:
                    log.error("gave up on a Slack %s after %d tries", item.kind, inbox.TRIES)
                    await asyncio.to_thread(inbound.settle, self.ctx, item.id)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=every)

    def _take_over(self, renew: bool = True) -> list[inbox.Item]:
        room = BACKLOG * 4 - len(self._doing)
        if not renew:
            # Looked at often: a read, which takes no write lock, unless there is something to take.
            with self.ctx.db.read() as session:
                if room <= 0 or not inbox.waiting(session, now=self.ctx.now()):
                    return []

        def take(session: Any) -> list[inbox.Item]:
            now = self.ctx.now()
            if renew:
                inbox.renew(session, ids=sorted(self._doing), claimant=self.claimant, now=now)
            if room <= 0:
                return []
            return inbox.claim(session, now=now, claimant=self.claimant, limit=room)

        return self.ctx.db.run(take)

    async def let_go(self) -> None:
        """At shutdown, after `settled` had its time: stop what is left, and hand it back to the
        inbox, where the next process (or a replica) takes it up at once."""
        left = sorted(self._doing)
        for task in list(self._working):
            task.cancel()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*self._working, return_exceptions=True), timeout=5)
        if left:
            try:
                await asyncio.to_thread(
                    self.ctx.db.run,
                    lambda session: inbox.release(session, ids=left, claimant=self.claimant),
                )
            except Exception as error:
                log.warning("could not hand %d inbox items back: %s", len(left), type(error).__name__)
            log.info("%d Slack items left in the inbox for the next start", len(left))

    def _signed(self, headers: Mapping[str, str], body: bytes) -> bool:
        signature = headers.get("X-Slack-Signature", "")
        timestamp = headers.get("X-Slack-Request-Timestamp", "")
        if not (SIGNATURE.fullmatch(signature) and TIMESTAMP.fullmatch(timestamp)):
            return False
        try:
            return self._verifier.is_valid(body, timestamp, signature)
        except ValueError:  # a body that is not UTF-8 (slack_sdk verifies text)
            return False

    def _replayed(self, headers: Mapping[str, str]) -> bool:
        """A correctly signed request whose signature was already seen. Slack signs each request,
        retries included, anew; only a copy repeats a signature, and within the 5 minutes a
        signature stays fresh. (Kept per process: with several replicas, per replica.)"""
        signature = headers["X-Slack-Signature"]
        now = time.monotonic()
        while self._seen and next(iter(self._seen.values())) < now - FRESH:
            del self._seen[next(iter(self._seen))]
        if signature in self._seen:
            return True
        self._seen[signature] = now
        return False

    async def settled(self) -> None:
        """Wait for the work Slack was already answered for (Bolt acknowledges first and works
        after): at shutdown, so that no half-done command is dropped; in tests, to look after it."""
        while self._working:
            await asyncio.wait(set(self._working))

    async def _admit(self, ack: Callable[..., Awaitable[None]]) -> None:
        """Acknowledge, once the work already acknowledged and not yet done is small enough, waiting
        at most ROOM_WAIT of Slack's 3 s: under a flood, senders slow down instead of owed work
        piling up (which would be late, and which a restart could drop)."""
        try:
            await asyncio.wait_for(self._room.acquire(), timeout=ROOM_WAIT)
        except TimeoutError:
            pass  # Slack's deadline comes first: acknowledge anyway, beyond the bound
        else:
            task = asyncio.current_task()
            if task is None:
                self._room.release()
            else:
                task.add_done_callback(lambda _: self._room.release())
        await ack()

    @contextlib.contextmanager
    def _busy(self) -> Iterator[None]:
        task = asyncio.current_task()
        if task is None:
            yield
            return
        self._working.add(task)
        try:
            yield
        finally:
            self._working.discard(task)

    def _listen(self) -> None:
        bolt = self.bolt
        bolt.command(re.compile(rf"^/({'|'.join(COMMANDS)})$"))(self.on_command)
        bolt.action(re.compile(r".+"))(self.on_action)
        bolt.view(re.compile(r".+"))(self.on_submit)
        bolt.shortcut(SHORTCUT)(self.on_shortcut)
        bolt.event("reaction_added")(self.on_reaction)
        bolt.event("reaction_removed")(self.on_reaction)
        bolt.event("app_home_opened")(self.on_home)
        bolt.event("tokens_revoked")(self.on_revoked)
        bolt.event("app_uninstalled")(self.on_revoked)
        bolt.event("message")(self.ignore)
        bolt.event("member_joined_channel")(self.ignore)

    # --- the four calls ---------------------------------------------------------------------------

    async def on_command(self, ack: Callable[..., Awaitable[None]], body: dict[str, Any]) -> None:
        """Socket Mode's way in (over HTTP, `handle` takes commands before Bolt)."""
        await self._socket(ack, "command", _command_fields(body))

    async def on_action(self, ack: Callable[..., Awaitable[None]], body: dict[str, Any]) -> None:
        fields = _action_fields(body)
        if fields["action_id"] in inbound.CHANGES:
            await self._socket(ack, "action", fields)
            return
        # A button that opens a form: done now, while its trigger_id works.
        with self._busy():
            await self._admit(ack)
            await self._action(fields, None)

    async def _socket(self, ack: Callable[..., Awaitable[None]], kind: str, fields: dict[str, Any]) -> None:
        try:
            item = await self._stored(kind, secrets.token_hex(16), fields)
        except UNREACHABLE:
            await ack(text=inbound.TRY_AGAIN) if kind == "command" else await ack()
            return
        await ack()
        self._received(item, kind, fields)

    async def _command(self, fields: dict[str, Any], receipt: int | None) -> None:
        actor = await self.people.actor(fields["user"])
        reply = await self._call(inbound.command, actor, fields["name"], fields["text"], receipt=receipt)
        await self._show(
            reply,
            actor,
            trigger_id=fields.get("trigger_id"),
            channel=fields.get("channel"),
            response_url=fields.get("response_url"),
        )

    async def _action(self, fields: dict[str, Any], receipt: int | None) -> None:
        actor = await self.people.actor(fields["user"])
        reply = await self._call(inbound.action, actor, fields["action_id"], fields["value"], receipt=receipt)
        await self._show(
            reply,
            actor,
            trigger_id=fields.get("trigger_id"),
            channel=fields.get("channel"),
            response_url=fields.get("response_url"),
        )
        if fields.get("from_home"):
            await self.publish_home(actor)

    async def on_submit(
        self, ack: Callable[..., Awaitable[None]], body: dict[str, Any], view: dict[str, Any]
    ) -> None:
        with self._busy():
            actor = await self.people.actor(body["user"]["id"])
            values, channel = submitted(view)
            reply = await self._call(inbound.submit, actor, str(view.get("callback_id", "")), values)
            if reply.errors:
                # Slack shows these under the fields; the modal stays open for the person to fix them.
                await ack(response_action="errors", errors={k: v[:2000] for k, v in reply.errors.items()})
                return
            if reply.form is not None:
                await ack(response_action="update", view=modal(reply.form, channel=channel))
                return
            await ack()
            await self._show(reply, actor, trigger_id=None, channel=channel, response_url=None)

    async def on_shortcut(self, ack: Callable[..., Awaitable[None]], body: dict[str, Any]) -> None:
        """The message shortcut "Log as objection": the full form, with the message as the objection."""
        with self._busy():
            await self._admit(ack)
            actor = await self.people.actor(body["user"]["id"])
            said = str((body.get("message") or {}).get("text") or "")
            reply = await self._call(inbound.action, actor, objections.FROM_MESSAGE, said)
            channel = (body.get("channel") or {}).get("id")
            await self._show(
                reply, actor, trigger_id=body.get("trigger_id"), channel=channel, response_url=None
            )

    async def on_reaction(self, body: dict[str, Any], event: dict[str, Any]) -> None:
        """Socket Mode's way in (over HTTP, `handle` takes reactions before Bolt)."""
        if (taken := _inboxed(body)) is not None:
            kind, key, fields = taken
            try:
                item = await self._stored(kind, key or secrets.token_hex(16), fields)
            except UNREACHABLE:
                return
            if item is not None:
                self._received(item, kind, fields)

    async def _reaction(self, fields: dict[str, Any], receipt: int | None) -> None:
        actor = await self.people.actor(fields["user"])
        post = PostRef("slack", fields["channel"], fields["ts"])
        reply = await self._call(
            inbound.reaction,
            actor,
            post,
            fields["reaction"],
            fields["added"],
            event_id=fields.get("event_id"),
            receipt=receipt,
        )
        if reply.text:
            await self._ephemeral(post.address, actor.user_id, reply)

    async def on_home(self, event: dict[str, Any]) -> None:
        with self._busy():
            if event.get("tab", "home") != "home":
                return
            await self.publish_home(await self.people.actor(event["user"]))

    async def publish_home(self, actor: Actor) -> None:
        card = await asyncio.to_thread(self._home, actor)
        try:
            await self.client.views_publish(user_id=actor.user_id, view=home_view(card))
        except SlackApiError as error:
            log.warning("views.publish failed: %s", error.response.get("error"))

    def _home(self, actor: Actor) -> Any:
        with self.ctx.db.session() as session:
            return home.home(session, self.ctx, actor)

    async def on_revoked(self, event: dict[str, Any]) -> None:
        log.error(
            "Slack revoked Touchline's tokens (%s): reinstall the app and update SLACK_BOT_TOKEN",
            event.get("type"),
        )

    async def ignore(self) -> None:
        return None

    # --- replies ------------------------------------------------------------------------------------

    async def _call(self, entry: Callable[..., Reply], actor: Actor, *args: Any, **kwargs: Any) -> Reply:
        # Handlers are synchronous and touch the database: keep them off the event loop.
        return await asyncio.to_thread(entry, self.ctx, actor, *args, **kwargs)

    async def _show(
        self,
        reply: Reply,
        actor: Actor,
        *,
        trigger_id: str | None,
        channel: str | None,
        response_url: str | None,
    ) -> None:
        """A form opens as a modal; anything else is an ephemeral message to the person."""
        if reply.form is not None and trigger_id:
            try:
                await self.client.views_open(trigger_id=trigger_id, view=modal(reply.form, channel=channel))
            except SlackApiError as error:
                log.warning("views.open failed: %s", error.response.get("error"))
                await self._tell(
                    actor,
                    channel,
                    response_url,
                    Reply(text="Slack could not open the form; please try again."),
                )
            return
        if reply.is_empty or reply.form is not None:
            return
        await self._tell(actor, channel, response_url, reply)

    async def _tell(self, actor: Actor, channel: str | None, response_url: str | None, reply: Reply) -> None:
        if response_url:
            payload = {"response_type": "ephemeral", "replace_original": False, **reply_message(reply)}
            await self._respond(response_url, payload)
        elif channel and not channel.startswith("D"):
            await self._ephemeral(channel, actor.user_id, reply)
        else:
            try:
                await self.client.chat_postMessage(channel=actor.user_id, **reply_message(reply))
            except SlackApiError as error:
                # Not who: this may be the thank-you for a pulse answer or an anonymous concern.
                log.warning("could not message a person directly: %s", error.response.get("error"))

    async def _respond(self, url: str, payload: dict[str, Any]) -> None:
        """Answer through the request's `response_url`, on the shared connection."""
        try:
            async with self.http().post(url, json=payload, timeout=ClientTimeout(total=10)) as answer:
                if answer.status >= 300:
                    log.warning("response_url answered %s", answer.status)
        except (ClientError, TimeoutError) as error:
            log.warning("could not answer through response_url: %s", type(error).__name__)

    def http(self) -> ClientSession:
        """One HTTP session for everything Touchline says to Slack: a new one per call (what
        Bolt's `respond` and an unset Web API client do) costs a connection each time."""
        if self._http is None or self._http.closed:
            self._http = ClientSession()
            self.client.session = self._http
        return self._http

    async def close(self) -> None:
        if self._http is not None and not self._http.closed:
            await self._http.close()
        self._intake.shutdown(wait=False)

    async def _ephemeral(self, channel: str, user: str, reply: Reply) -> None:
        try:
            await self.client.chat_postEphemeral(channel=channel, user=user, **reply_message(reply))
        except SlackApiError as error:
            # Not in that channel (or it is a DM we cannot post in): say it directly instead.
            log.info("ephemeral in %s failed (%s); sending directly", channel, error.response.get("error"))
            await self.client.chat_postMessage(channel=user, **reply_message(reply))


# --- what the inbox keeps of a request: only what doing it needs ----------------------------------


def _command_fields(body: dict[str, Any]) -> dict[str, Any]:
    return {
        "user": str(body["user_id"]),
        "name": str(body.get("command", "")).lstrip("/"),
        "text": str(body.get("text") or ""),
        "trigger_id": body.get("trigger_id"),
        "channel": body.get("channel_id"),
        "response_url": body.get("response_url"),
    }


def _action_fields(body: dict[str, Any]) -> dict[str, Any]:
    action = (body.get("actions") or [{}])[0]
    return {
        "user": str(body["user"]["id"]),
        "action_id": str(action.get("action_id", "")),
        "value": str(action.get("value") or ""),
        "trigger_id": body.get("trigger_id"),
        "channel": (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id"),
        "response_url": body.get("response_url"),
        "from_home": (body.get("view") or {}).get("type") == "home",
    }


def _inboxed(body: dict[str, Any]) -> tuple[str, str | None, dict[str, Any]] | None:
    """(kind, key, fields) for a request that changes something, kept in the inbox; the key is the
    event's id, or None for the request's own (its signature, new for every request Slack sends)."""
    if isinstance(body.get("command"), str) and "user_id" in body:
        if re.fullmatch(rf"/({'|'.join(COMMANDS)})", body["command"]) is None:
            return None  # Bolt answers what Touchline does not listen to
        return "command", None, _command_fields(body)
    if body.get("type") == "block_actions":
        fields = _action_fields(body)
        return ("action", None, fields) if fields["action_id"] in inbound.CHANGES else None
    event = body.get("event") if body.get("type") == "event_callback" else None
    if isinstance(event, dict) and event.get("type") in ("reaction_added", "reaction_removed"):
        item: dict[str, Any] = event["item"] if isinstance(event.get("item"), dict) else {}
        if item.get("type") != "message" or not isinstance(event.get("user"), str) or not event["user"]:
            return None
        event_id = str(body.get("event_id") or "") or None
        fields = {
            "user": event["user"],
            "channel": str(item.get("channel", "")),
            "ts": str(item.get("ts", "")),
            "reaction": str(event.get("reaction", "")),
            "added": event["type"] == "reaction_added",
            "event_id": event_id,
        }
        return "reaction", event_id, fields
    return None


def _ephemeral(text: str) -> dict[str, Any]:
    return {"response_type": "ephemeral", "replace_original": False, "text": text}


PERFORMERS: dict[str, Callable[[SlackApp, dict[str, Any], int | None], Awaitable[None]]] = {
    "command": SlackApp._command,
    "action": SlackApp._action,
    "reaction": SlackApp._reaction,
}
