"""The Teams bot on the Microsoft 365 Agents SDK: activities from `/api/messages` turned into the
neutral calls, and each reply drawn back in Teams' idiom (a card or message in the person's 1:1 chat)."""

from __future__ import annotations

import asyncio
import copy
import html
import ipaddress
import json
import logging
import re
import urllib.parse
from typing import Any

import aiohttp
import pydantic
from aiohttp import web
from microsoft_agents.activity import (
    Activity,
    ActivityTypes,
    ChannelAccount,
    ConversationAccount,
    ConversationParameters,
    ConversationReference,
    InvokeResponse,
)
from microsoft_agents.hosting.aiohttp import CloudAdapter
from microsoft_agents.hosting.core import TurnContext
from microsoft_agents.hosting.core.authorization import ClaimsIdentity

from bot.teams import cards, connector, keys, tokens
from bot.teams.connector import ServiceUrlRefused
from bot.teams.service_urls import ServiceUrls, on_this_machine, parse_allowed
from handlers import conversations, directory, inbound, objections
from handlers.context import Actor, Context, PostRef
from handlers.ui import Card, Reply
from storage.database import UNREACHABLE

log = logging.getLogger(__name__)
# The Agents SDK logs an activity its model refuses with the activity's values in it (in the
# Emulator's mode, before anything is authenticated), and says at INFO where each message goes (a
# 1:1 chat's id names the person): never, whatever LOG_LEVEL says. Touchline logs what it needs of
# Teams' answers itself, without either.
logging.getLogger("microsoft_agents").setLevel(logging.CRITICAL)
COMMANDS = ("strategy", "asset", "objection", "pulse", "digest", "touchline", "help")
# Teams' reactions by the names Slack gives the same emoji, so that one `reactions:` table in
# app.yaml serves both.
REACTIONS = {
    "like": "+1",
    "heart": "heart",
    "laugh": "laughing",
    "surprised": "open_mouth",
    "sad": "cry",
    "angry": "angry",
}
SINGLE_TENANT, MULTI_TENANT, MANAGED_IDENTITY = "SingleTenant", "MultiTenant", "UserAssignedMSI"
LOG_OBJECTION = "logObjection"  # the message action's command id (manifest.py)
ROSTER_PAGE = 500  # members per page of a team's roster: the most Teams gives
ROSTER_PAGES = 1_000  # pages at most: a team has at most 25,000 members
# conversationUpdate's channelData.eventType for a change to a team's channels.
CHANNEL_EVENTS = frozenset({"channelCreated", "channelRenamed", "channelRestored", "teamRenamed"})
KINDS = {
    "personal": conversations.PERSONAL,
    "channel": conversations.CHANNEL,
    "groupChat": conversations.GROUP,
}


class TeamsApp:
    """The Teams side of Touchline: the Agents SDK's CloudAdapter, the bot it runs, and the route."""

    def __init__(
        self,
        ctx: Context,
        *,
        app_id: str | None,
        password: str | None,
        tenant_id: str | None = None,
        app_type: str = SINGLE_TENANT,
        emulator: bool = False,
        service_urls: str | None = None,
        openid_metadata_url: str | None = None,
        login_url: str | None = None,
    ) -> None:
        self.ctx = ctx
        self.app_id = app_id or ""
        # The Bot Framework Emulator's mode, in which requests are not authenticated: only when
        # asked for (TEAMS_EMULATOR=1), never with an app id.
        if emulator == bool(app_id):
            raise ValueError("Teams needs an app id, or the Emulator mode without one")
        self.emulator = emulator
        self.service_urls = ServiceUrls(parse_allowed(service_urls), emulator=emulator)
        # Who signs the tokens Teams sends (MICROSOFT_OPENID_METADATA_URL, for tests), and how the
        # bot gets its own (MICROSOFT_LOGIN_URL, for tests and sovereign clouds).
        self.channel_tokens = (
            None
            if emulator
            else keys.ChannelTokens(self.app_id, keys.SigningKeys(openid_metadata_url or keys.METADATA_URL))
        )
        token: tokens.BotToken | None = None
        if app_type == MANAGED_IDENTITY:
            token = tokens.ManagedIdentityToken(self.app_id)
        elif not emulator:
            # A multi-tenant registration (made before 2025-07-31) asks the botframework.com tenant.
            tenant = None if app_type == MULTI_TENANT else tenant_id
            token = tokens.BotToken(self.app_id, password or "", tenant=tenant, login_url=login_url)
        self.connectors = connector.Connectors(self.app_id, token, self.service_urls)
        self.adapter = CloudAdapter(channel_service_client_factory=self.connectors)
        self.adapter.on_turn_error = self._turn_failed

    async def close(self) -> None:
        await self.connectors.close()

    # --- the route ----------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.Response:
        """`POST /api/messages`: authenticated here unless in Emulator mode, which answers this
        machine only; then the turn, through the SDK's adapter."""
        if self.emulator and not _from_this_machine(request):
            return web.json_response(
                {
                    "error": "Touchline's Teams endpoint runs in Emulator mode, without authentication, "
                    "and answers this machine only (not through a proxy)"
                },
                status=403,
            )
        if request.content_type != "application/json":
            return web.json_response({"error": "expected a Bot Framework activity as JSON"}, status=415)
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"error": "the body is not JSON"}, status=400)
        if not isinstance(body, dict) or not isinstance(body.get("type"), str):
            return web.json_response({"error": "expected a Bot Framework activity"}, status=400)
        if not self.service_urls.allows(body.get("serviceUrl")):
            # Every answer to this activity would go there: refused before anything is sent.
            log.warning(
                "refused an activity: serviceUrl %.200r is not a Bot Framework service URL",
                body.get("serviceUrl"),
            )
            return web.json_response(
                {"error": "serviceUrl is not a Bot Framework service URL Touchline sends to"}, status=403
            )
        if self.channel_tokens is not None:
            try:
                claims = await self.channel_tokens.check(request.headers.get("Authorization"), body)
            except keys.KeysUnavailable:
                return web.json_response(
                    {"error": "the Bot Framework's signing keys could not be fetched in time; try again"},
                    status=503,
                    headers={"Retry-After": "5"},
                )
            except keys.NotAuthenticated:
                return web.json_response({"error": "not authenticated by the Bot Framework"}, status=401)
            identity = ClaimsIdentity(claims, authentication_type="Bearer")
        else:
            identity = ClaimsIdentity()  # the Emulator's mode: anonymous
        # Unauthenticated, anything may arrive; the Bot Framework sends no such activity (and
        # with an app id, only what it signed gets through), and the turn would trip over it.
        if problem := _malformed(body):
            log.warning("refused an activity: %s", problem)
            return web.json_response({"error": f"not a Bot Framework activity: {problem}"}, status=400)
        try:
            answer = await self.adapter.process_request(_Arrived(request, body, identity), self)
        except pydantic.ValidationError as refused:
            # The SDK's model of an activity refused it: where, never the value.
            where = ".".join(str(part) for part in refused.errors()[0]["loc"])[:100]
            log.warning("refused an activity: %s is not as the Bot Framework gives it", where)
            return web.json_response(
                {"error": f"not a Bot Framework activity: {where} is not as the Bot Framework gives it"},
                status=400,
            )
        except Exception as error:
            # A turn's own failures are handled in it (_turn_failed); this is the envelope (the
            # SDK's model refused the activity's shape).
            log.warning("an activity could not be read: %s", type(error).__name__)
            return web.json_response({"error": "the activity could not be read"}, status=400)
        if body["type"] != ActivityTypes.invoke:
            # The SDK answers 202; Touchline has always answered 201, and the Connector takes any 2xx.
            return web.Response(status=201)
        return CloudAdapter._to_aiohttp_response(answer)

    # --- a turn -------------------------------------------------------------------------------

    async def on_turn(self, turn: TurnContext) -> None:
        activity = turn.activity
        await self._remember(turn)
        if activity.type == ActivityTypes.message:
            await self._on_message(turn)
        elif activity.type == ActivityTypes.conversation_update:
            await self._on_conversation_update(turn)
        elif activity.type == ActivityTypes.message_reaction:
            await self._on_reaction(turn)
        elif activity.type == ActivityTypes.invoke:
            await self._on_invoke(turn)

    async def _on_message(self, turn: TurnContext) -> None:
        activity = turn.activity
        actor = await self._actor(activity)
        data = activity.value if isinstance(activity.value, dict) else None
        # The Bot Connector sends an activity it got no answer to again (Touchline may have
        # stopped after storing it, before answering): done once, by its id.
        event_id = f"activity:{activity.id}" if activity.id else None
        if data is not None and data.get(cards.TAG) == "action":
            reply = await self._call(
                inbound.action,
                actor,
                str(data.get("action_id", "")),
                str(data.get("value") or ""),
                event_id=event_id,
            )
            await self._show(turn, actor, reply)
        elif data is not None and data.get(cards.TAG) == "submit":
            form_id, values = cards.submitted(data)
            reply = await self._call(inbound.submit, actor, form_id, values, event_id=event_id)
            if reply.errors:
                # The card keeps what the person typed: they fix the fields and submit again.
                await self._show(turn, actor, Reply(text=_fix_these(data, reply.errors)))
                return
            await self._close_form(
                turn, f"✓ Sent. {reply.text.splitlines()[0] if reply.text else ''}".strip()
            )
            await self._show(turn, actor, reply)
        elif data is not None and data.get(cards.TAG) == "cancel":
            await self._close_form(turn, "Cancelled; nothing was sent.")
        else:
            text = _said(activity)
            name, rest = _command(text)
            reply = await self._call(inbound.command, actor, name, rest, event_id=event_id)
            await self._show(turn, actor, reply)

    async def _on_reaction(self, turn: TurnContext) -> None:
        activity = turn.activity
        if not activity.reply_to_id:
            return
        actor = await self._actor(activity)
        post = PostRef("teams", _address(activity), str(activity.reply_to_id))
        for reactions, added in ((activity.reactions_added, True), (activity.reactions_removed, False)):
            for reaction in reactions or []:
                if reaction is None or not reaction.type or len(str(reaction.type)) > 64:
                    continue  # no reaction Teams has
                emoji = REACTIONS.get(str(reaction.type), str(reaction.type))
                reply = await self._call(
                    inbound.reaction,
                    actor,
                    post,
                    emoji,
                    added,
                    event_id=f"{activity.id}:{reaction.type}:{added}",
                )
                if reply.text:
                    await self._show(turn, actor, reply)

    async def _on_conversation_update(self, turn: TurnContext) -> None:
        """The bot added to a team, chat or 1:1: learn the roster; a 1:1 gets a hello."""
        activity = turn.activity
        # No id, or one Teams does not give (the Emulator's mode hears anything): no one.
        added = [m for m in activity.members_added or [] if _member(m)]
        removed = [m for m in activity.members_removed or [] if _member(m)]
        bot = activity.recipient.id if activity.recipient else None
        bot_added = any(m.id == bot for m in added)
        team = _team_id(activity)
        event = _object(activity.channel_data).get("eventType")
        changed = added or removed or event in CHANNEL_EVENTS
        if team and changed and not any(m.id == bot for m in removed):
            # The bot installed in a team, people joining or leaving it, a channel made or renamed:
            # the team's roster and channels again (the Y of "acknowledged by X of Y" in each).
            await self.read_roster(turn)
        if bot_added and activity.conversation.conversation_type == "personal":
            actor = await self._actor(activity, person=activity.from_property)
            await turn.send_activity(
                f"Hello {actor.name}: I am Touchline. Write **help** to see what you can do here."
            )

    async def read_roster(self, turn: TurnContext) -> int:
        """Everyone in the team this conversation belongs to (people Touchline can open a 1:1
        chat with), and every channel of the team, each counting them as its members."""
        activity = turn.activity
        team = _team_id(activity) or _address(activity)
        client = await self.connectors.client(str(activity.service_url))
        members: list[tuple[str, str, str]] = []
        token = ""
        for _ in range(ROSTER_PAGES):
            page, token = await _roster_page(client, team, token)
            for m in page:
                members.append((m["aad"], m["id"], m["name"]))
                await asyncio.to_thread(
                    directory.identify, self.ctx, "teams", m["aad"], name=m["name"], email=m["email"] or None
                )
            if not token:
                break
        channels = await self._channels(client, turn, team)
        await asyncio.to_thread(conversations.remember_members, self.ctx, "teams", team, members)
        everyone = [m[0] for m in members]
        await asyncio.to_thread(
            directory.set_channel_members, self.ctx, "teams", {address: everyone for address in channels}
        )
        return len(members)

    async def _channels(self, client: connector.KeptClient, turn: TurnContext, team: str) -> list[str]:
        """The team's channels, each remembered as a place to post to: Teams tells the bot of its
        installation in the General channel only."""
        activity = turn.activity
        try:
            listed = await client.fetch_channel_list(team)
        except aiohttp.ClientResponseError as error:
            log.info("the team's channels could not be listed (%s): its General channel only", error.status)
            listed = []
        base = self._reference_of(activity)
        team_name = str(_object(_object(activity.channel_data).get("team")).get("name") or "")
        found = [team]
        for channel in listed:
            if not _teams_id(channel.id, 256) or channel.id == team:
                continue
            address = str(channel.id)
            found.append(address)
            reference = copy.deepcopy(base)
            reference["conversation"] = {**reference["conversation"], "id": address, "name": channel.name}
            reference["conversation"] = {k: v for k, v in reference["conversation"].items() if v is not None}
            await asyncio.to_thread(
                conversations.remember,
                self.ctx,
                "teams",
                address,
                kind=conversations.CHANNEL,
                reference=reference,
                name=str(channel.name or ""),
                team=team_name,
            )
        return found

    # --- Log as objection, on any message ---------------------------------------------------------

    async def _on_invoke(self, turn: TurnContext) -> None:
        """The "Log as objection" message action (manifest.py): `fetchTask` opens the objection
        form, filled with the message's text; `submitAction` logs it. Other invokes: 501."""
        activity = turn.activity
        value = _object(activity.value)
        if activity.name == "composeExtension/fetchTask" and value.get("commandId") == LOG_OBJECTION:
            actor = await self._actor(activity)
            text = _message_text(_object(value.get("messagePayload")))
            reply = await self._call(inbound.action, actor, objections.FROM_MESSAGE, text, event_id=None)
            form = reply.form
            if form is None:  # not allowed here: what they would have been told
                await _invoke_answer(turn, {"task": {"type": "message", "value": (reply.text or "")[:500]}})
                return
            content = cards.form(form)
            await _invoke_answer(
                turn,
                {
                    "task": {
                        "type": "continue",
                        "value": {"title": form.title[:100], "card": cards.attachment(content)},
                    }
                },
            )
        elif activity.name == "composeExtension/submitAction" and value.get("commandId") == LOG_OBJECTION:
            actor = await self._actor(activity)
            data = _object(value.get("data"))
            if data.get(cards.TAG) == "cancel" or not data:
                await _invoke_answer(turn, {})
                return
            form_id, values = cards.submitted(data)
            event_id = f"activity:{activity.id}" if activity.id else None
            reply = await self._call(inbound.submit, actor, form_id, values, event_id=event_id)
            if reply.errors:
                await _invoke_answer(
                    turn, {"task": {"type": "message", "value": _fix_these(data, reply.errors)}}
                )
                return
            await _invoke_answer(turn, {})
            await self._show(turn, actor, reply, privately=True)
        else:
            await turn.send_activity(
                Activity(type=ActivityTypes.invoke_response, value=InvokeResponse(status=501))
            )

    # --- people and places ----------------------------------------------------------------------

    def _reference_of(self, activity: Activity) -> dict[str, Any]:
        """How to reach this activity's conversation again: the SDK's conversation reference of the
        conversation itself (a channel, not the thread it came in), with the tenant and team."""
        reference = activity.get_conversation_reference()
        reference.conversation = ConversationAccount.model_validate(
            {**reference.conversation.model_dump(exclude_none=True), "id": _address(activity)}
        )
        reference.activity_id = None
        tenant = _tenant_id(activity)
        if tenant:
            reference.conversation.tenant_id = tenant
        stored = _dump(reference)
        # Teams' own: the tenant every new conversation must name (channelData.tenant.id is on
        # every Teams activity), and the team a channel belongs to.
        data: dict[str, Any] = {}
        if tenant:
            data["tenant"] = {"id": tenant}
        if team := _team_id(activity):
            data["team"] = {"id": team}
        if data:
            stored["channelData"] = data
        return stored

    async def _remember(self, turn: TurnContext) -> None:
        """Keep how to reach this conversation again, so that later posts need no one to ask."""
        activity = turn.activity
        if activity.conversation is None or (str(activity.channel_id) != "msteams" and not self.emulator):
            return
        if activity.type == ActivityTypes.invoke:
            return  # a message action's invoke: the conversation is the message's, not new
        address = _address(activity)
        kind = KINDS.get(activity.conversation.conversation_type or "personal", conversations.PERSONAL)
        data = _object(activity.channel_data)
        # A channel event (channelCreated, …) names the channel it is about, not this one.
        channel = _object(data.get("channel"))
        if channel.get("id") not in (None, address):
            channel = {}
        person = None
        if kind == conversations.PERSONAL and activity.from_property is not None:
            person = _external_id(activity.from_property)
        await asyncio.to_thread(
            conversations.remember,
            self.ctx,
            "teams",
            address,
            kind=kind,
            reference=self._reference_of(activity),
            name=str(channel.get("name") or activity.conversation.name or ""),
            team=str(_object(data.get("team")).get("name") or ""),
            person_external_id=person,
        )

    async def _actor(self, activity: Activity, person: ChannelAccount | None = None) -> Actor:
        who = person or activity.from_property
        # identify keeps the name as people can read it, and no longer than the column.
        return await asyncio.to_thread(
            directory.identify, self.ctx, "teams", _external_id(who), name=who.name
        )

    async def _call(self, entry: Any, actor: Actor, *args: Any, **kwargs: Any) -> Reply:
        # Handlers are synchronous and touch the database: keep them off the event loop.
        return await asyncio.to_thread(entry, self.ctx, actor, *args, **kwargs)

    # --- replies --------------------------------------------------------------------------------

    async def _show(self, turn: TurnContext, actor: Actor, reply: Reply, *, privately: bool = False) -> None:
        """What only the actor should see goes to their 1:1 chat with the bot (Teams has no
        private messages inside a channel); a form is a card with inputs there."""
        if reply.is_empty and reply.form is None:
            return
        activity = _reply_activity(reply)
        # The Emulator's conversations have no type: they are 1:1 chats.
        if (turn.activity.conversation.conversation_type or "personal") == "personal" and not privately:
            await turn.send_activity(activity)
            return
        try:
            await self.send_privately(actor.user_id, activity)
        except Exception as error:
            # Neither who nor what: this may be the thank-you for an anonymous concern.
            log.warning(
                "could not answer privately (%s); answering in the conversation", type(error).__name__
            )
            if turn.activity.type == ActivityTypes.invoke:
                return  # the message action's dialog has closed: nowhere else to say it
            activity.text = (
                activity.text or ""
            ) + "\n\n_(I could not write to you privately: open a chat with Touchline.)_"
            await turn.send_activity(activity)

    async def send_privately(self, external_id: str, activity: Activity) -> str:
        """Send to one person's 1:1 chat with the bot, opening it through a team's roster if the
        bot has none yet; returns the message id."""
        place = await asyncio.to_thread(conversations.personal, self.ctx, "teams", external_id)
        if place is not None:
            return await self.send_to(place.reference, activity)
        entry = await asyncio.to_thread(conversations.roster_entry, self.ctx, "teams", external_id)
        if entry is None:
            raise LookupError("no 1:1 chat with this person, and they are in no team Touchline is in")
        member_id, team = entry
        reference = self._checked(team.reference)
        tenant = _stored_tenant(reference)
        if not tenant:
            # Teams answers 400 "Could not parse tenant id": a team remembered before the tenant was kept.
            raise LookupError("the team's tenant is not known yet: it is learned at the team's next activity")
        parameters = ConversationParameters(
            is_group=False,
            agent=ChannelAccount.model_validate(_object(reference.get("bot")) or {"id": "bot"}),
            members=[ChannelAccount(id=member_id)],
            tenant_id=tenant,
            channel_data={"tenant": {"id": tenant}},
        )
        client = await self.connectors.client(str(reference.get("serviceUrl")))
        created = await client.conversations.create_conversation(parameters)
        if not _teams_id(created.id, 256):
            raise LookupError("Teams answered the new chat without an id")
        opened = {
            "bot": reference.get("bot"),
            "conversation": {"conversationType": "personal", "id": created.id, "tenantId": tenant},
            "channelId": reference.get("channelId") or "msteams",
            "serviceUrl": created.service_url or reference.get("serviceUrl"),
            "channelData": {"tenant": {"id": tenant}},
        }
        await asyncio.to_thread(
            conversations.remember,
            self.ctx,
            "teams",
            created.id,
            kind=conversations.PERSONAL,
            reference=opened,
            person_external_id=external_id,
        )
        return await self.send_to(opened, activity)

    async def send_to(self, reference: dict[str, Any], activity: Activity) -> str:
        """Post into a known conversation, unasked (proactively); returns the message id. Straight
        through the SDK's Connector client: the adapter's `continue_conversation` would build a turn
        (and its clients) around each of a fan-out's messages for nothing."""
        self._checked(reference)
        where = _conversation_reference(reference)
        # A stored reference names no activity: the post is a new message (a new thread in a
        # channel), not a reply.
        activity.apply_conversation_reference(where)
        client = await self.connectors.client(str(where.service_url))
        response = await client.conversations.send_to_conversation(where.conversation.id, activity)
        return str(response.id or "")

    async def update_in(self, reference: dict[str, Any], message_id: str, activity: Activity) -> None:
        self._checked(reference)
        where = _conversation_reference(reference)
        activity.apply_conversation_reference(where)
        activity.id = message_id
        client = await self.connectors.client(str(where.service_url))
        await client.conversations.update_activity(where.conversation.id, message_id, activity)

    def _checked(self, reference: dict[str, Any]) -> dict[str, Any]:
        """A stored conversation reference, if its serviceUrl is one Touchline sends to (it may
        have been stored before that was checked, or under another configuration)."""
        if not self.service_urls.allows(reference.get("serviceUrl")):
            raise ServiceUrlRefused("the conversation's serviceUrl is not a Bot Framework service URL")
        return reference

    async def _close_form(self, turn: TurnContext, text: str) -> None:
        """The submitted (or cancelled) form card becomes a line, so it cannot be sent twice."""
        if not turn.activity.reply_to_id:
            return
        closed = Activity(
            type=ActivityTypes.message,
            id=turn.activity.reply_to_id,
            attachments=[cards.attachment(cards.card(Card(title=text)))],
        )
        try:
            await turn.update_activity(closed)
        except Exception as error:
            log.info("could not close the form card: %s", type(error).__name__)

    async def _turn_failed(self, turn: TurnContext, error: Exception) -> None:
        if isinstance(error, tokens.TokenRefused | tokens.TokenUnavailable):
            # What the person did is done; only the answer cannot be signed (said once, plainly).
            log.warning("a Teams turn's answer could not be sent: %s", error)
            return
        if isinstance(error, UNREACHABLE):
            # Not a bug (no stack trace): the database is away, and the person can try again, as on
            # Slack. The handlers answer this themselves; remembering the conversation and knowing
            # the person, before them, meet it here.
            log.warning("a Teams turn could not reach the database: %s", error)
            told = inbound.TRY_AGAIN
        else:
            log.error("a Teams turn failed: %s", error, exc_info=error)
            told = "Something went wrong on Touchline's side; nothing more was changed."
        try:
            if turn.activity.type == ActivityTypes.invoke:
                await _invoke_answer(turn, {"task": {"type": "message", "value": told}})
            else:
                await turn.send_activity(told)
        except Exception:
            log.info("could not tell the sender about the failure")


class _Arrived:
    """The request as the SDK's adapter reads it (its `HttpRequestProtocol`): the body already
    read, and the claims checked here (what the SDK's own JWT middleware would leave it)."""

    method = "POST"

    def __init__(self, request: web.Request, body: dict[str, Any], identity: ClaimsIdentity) -> None:
        self._request = request
        self._body = body
        self._identity = identity
        self.headers = request.headers

    async def json(self) -> dict[str, Any]:
        return self._body

    def get_claims_identity(self) -> ClaimsIdentity:
        return self._identity

    def get_path_param(self, name: str) -> str:
        return self._request.match_info[name]


async def _roster_page(
    client: connector.KeptClient, team: str, token: str
) -> tuple[list[dict[str, str]], str]:
    """One page of a team's roster and the token for the next ("" after the last). Read as JSON
    rather than through the SDK's model, which refuses a page without a continuation token (the
    last one, as the Connector's swagger says) and drops the `objectId` older answers carry."""
    params = {"pageSize": str(ROSTER_PAGE)}
    if token:
        params["continuationToken"] = token
    path = f"v3/conversations/{urllib.parse.quote(team, safe=':@;=')}/pagedmembers"
    async with client.client.get(path, params=params) as response:
        if response.status != 200:
            # Any other answer (a 3xx not followed, a 204) is no roster: were it read as an empty
            # one, every channel of the team would count no one.
            raise aiohttp.ClientResponseError(
                response.request_info, response.history, status=response.status, message="no roster"
            )
        answer = _object(await response.json(content_type=None))
    found = []
    for entry in answer.get("members") or []:
        entry = _object(entry)
        aad = entry.get("aadObjectId") or entry.get("objectId")
        if not _teams_id(entry.get("id")) or (aad is not None and not _teams_id(aad)):
            continue
        name, email = entry.get("name"), entry.get("email")
        found.append(
            {
                "id": entry["id"],
                "aad": str(aad or entry["id"]),
                "name": name if isinstance(name, str) else "",
                "email": email if isinstance(email, str) else "",
            }
        )
    following = answer.get("continuationToken")
    return found, following if isinstance(following, str) and 0 < len(following) <= 4096 else ""


async def _invoke_answer(turn: TurnContext, body: dict[str, Any]) -> None:
    """What the adapter answers the invoke's HTTP request with (Teams waits for it)."""
    await turn.send_activity(
        Activity(type=ActivityTypes.invoke_response, value=InvokeResponse(status=200, body=body))
    )


def _fix_these(data: dict[str, Any], errors: dict[str, str]) -> str:
    given = data.get("_labels")
    labels: dict[str, Any] = given if isinstance(given, dict) else {}
    lines = "\n".join(f"- {labels.get(name, name)}: {error}" for name, error in errors.items())
    return f"Please fix these and submit the form again:\n{lines}"


def card_activity(card: Card) -> Activity:
    return Activity(
        type=ActivityTypes.message,
        text="",
        summary=card.title[:200] or None,
        attachments=[cards.attachment(cards.card(card))],
    )


def _reply_activity(reply: Reply) -> Activity:
    if reply.form is not None:
        content = cards.form(reply.form)
        if reply.text:
            content["body"].insert(1, {"type": "TextBlock", "text": cards.escape(reply.text), "wrap": True})
        return Activity(type=ActivityTypes.message, attachments=[cards.attachment(content)])
    # Only what the reply has: the Connector is sent the fields set, `null`s included.
    fields: dict[str, Any] = {}
    if reply.text:
        fields["text"] = cards.escape(reply.text)
    if reply.card is not None:
        fields["attachments"] = [cards.attachment(cards.card(reply.card))]
    return Activity(type=ActivityTypes.message, **fields)


def _dump(model: Any) -> dict[str, Any]:
    """A model of the SDK as the Connector's JSON has it (camelCase, nothing unset)."""
    dumped: dict[str, Any] = model.model_dump(by_alias=True, exclude_none=True, mode="json")
    return dumped


def _conversation_reference(stored: dict[str, Any]) -> ConversationReference:
    reference = ConversationReference.model_validate(
        {
            k: v
            for k, v in stored.items()
            if k in ("bot", "user", "conversation", "channelId", "serviceUrl", "locale")
        }
    )
    tenant = _stored_tenant(stored)
    if tenant and not reference.conversation.tenant_id:
        reference.conversation.tenant_id = tenant
    return reference


def _stored_tenant(reference: dict[str, Any]) -> str:
    """The tenant of a stored conversation reference: kept from channelData.tenant.id; references
    stored by botbuilder had it, if at all, as `conversation.tenantID`."""
    conversation = _object(reference.get("conversation"))
    found = (
        _object(_object(reference.get("channelData")).get("tenant")).get("id")
        or conversation.get("tenantId")
        or conversation.get("tenantID")
    )
    return str(found) if _teams_id(found) else ""


def _tenant_id(activity: Activity) -> str:
    """The tenant an activity came from: channelData.tenant.id, on every Teams activity."""
    found = _object(_object(activity.channel_data).get("tenant")).get("id")
    if not _teams_id(found) and activity.conversation is not None:
        found = activity.conversation.tenant_id
    return str(found) if _teams_id(found) else ""


def _team_id(activity: Activity) -> str:
    found = _object(_object(activity.channel_data).get("team")).get("id")
    return str(found) if _teams_id(found, 256) else ""


def _member(account: Any) -> bool:
    """Someone as Teams lists them: ids Teams gives (the Emulator's mode hears anything)."""
    return (
        account is not None
        and _teams_id(account.id)
        and (account.aad_object_id is None or _teams_id(account.aad_object_id))
    )


def _message_text(payload: dict[str, Any]) -> str:
    """The text of the message a message action was used on (its body is HTML in Teams)."""
    body = _object(payload.get("body"))
    content = str(body.get("content") or "")
    if body.get("contentType") == "html":
        content = html.unescape(re.sub(r"<[^>]+>", " ", content))
    return " ".join(content.split())[:3000]


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _said(activity: Activity) -> str:
    """The message's text without the bot's @mention. The SDK's removal trips over a mention
    entity not in Teams' shape (no type, no `mentioned`, a name that is not a pattern): then
    the text as it came."""
    try:
        return TurnContext.remove_recipient_mention(activity) or ""
    except (AttributeError, KeyError, TypeError, re.error):
        return str(activity.text or "")


def _command(text: str) -> tuple[str, str]:
    """`objection too expensive`, `/objection too expensive` or `help`: the command and its text."""
    words = text.strip().lstrip("/").split(maxsplit=1)
    if not words:
        return "help", ""
    name = words[0].lower()
    rest = words[1] if len(words) > 1 else ""
    return ("touchline" if name == "help" else name), rest


def _address(activity: Activity) -> str:
    """A conversation's own id: a channel's, not that of the thread the activity came in."""
    return re.sub(r";messageid=.*$", "", str(activity.conversation.id))


def _external_id(account: ChannelAccount) -> str:
    """How app.yaml names someone on Teams: their Entra (AAD) object id; the Emulator has none."""
    return str(account.aad_object_id or account.id)


SERVICE_URL = re.compile(r"^https?://[^\s/]+(/\S*)?$")
TEAMS_ID = re.compile(r"^[!-~]+$")  # visible ASCII: ids go into the Bot Connector's URLs


def _teams_id(value: Any, longest: int = 128) -> bool:
    return isinstance(value, str) and TEAMS_ID.match(value) is not None and len(value) <= longest


def _malformed(body: dict[str, Any]) -> str | None:
    """What every activity has and Touchline relies on, missing or not as Teams gives it: who
    sent it, to whom, in which conversation (all echoed in the reply), and where to answer."""
    for part, longest in (("from", 128), ("recipient", 128), ("conversation", 256)):
        account = body.get(part)
        if not (isinstance(account, dict) and isinstance(account.get("id"), str)):
            return f"{part}.id is missing"
        if not TEAMS_ID.match(account["id"]) or len(account["id"]) > longest:
            return f"{part}.id is not an id Teams gives"
        if len(json.dumps(account)) > 2_000:
            return f"{part} is larger than Teams sends"
    for value in (body["from"].get("aadObjectId"), body.get("id"), body.get("replyToId")):
        if value is not None and not _teams_id(value):
            return "an id that is not one Teams gives"
    # Echoed in every reply: "msteams" (or "emulator") and a language tag such as "en-GB".
    for field in ("channelId", "locale"):
        value = body.get(field)
        if value is not None and not _teams_id(value, 64):
            return f"{field} is not one the Bot Framework gives"
    url = body.get("serviceUrl")
    if not (isinstance(url, str) and len(url) <= 500 and SERVICE_URL.match(url)):
        return "serviceUrl is not an http(s) URL"
    return None


# What proxies add to say whom they relay for (RFC 7239, the X-Forwarded-* family, nginx's, CDNs').
PROXY_HEADERS = (
    "Forwarded",
    "Via",
    "X-Forwarded-For",
    "X-Forwarded-Host",
    "X-Forwarded-Proto",
    "X-Forwarded-Port",
    "X-Forwarded-Server",
    "X-Original-Forwarded-For",
    "X-Real-IP",
    "X-Client-IP",
    "Client-IP",
    "True-Client-IP",
    "CF-Connecting-IP",
    "Fastly-Client-IP",
    "X-Cluster-Client-IP",
)


def _proxied(request: web.Request) -> bool:
    """Came through a proxy: then a loopback peer says nothing of where the request started."""
    return any(h in request.headers for h in PROXY_HEADERS)


def _from_this_machine(request: web.Request) -> bool:
    """A loopback peer, no proxy's headers, addressed to this machine by name (a web page whose
    name was made to resolve to 127.0.0.1 says its own), and not in HTTP/1.0, which is what
    nginx's plain `proxy_pass` speaks (and adds no header)."""
    host = (
        request.host.rsplit(":", 1)[0] if not request.host.startswith("[") else request.host[1:].split("]")[0]
    )
    return (
        _loopback(request.remote)
        and not _proxied(request)
        and on_this_machine(host.lower())
        and request.version >= (1, 1)
    )


def _loopback(remote: str | None) -> bool:
    try:
        return remote is not None and ipaddress.ip_address(remote).is_loopback
    except ValueError:
        return False
