"""The Teams bot: activities from `/api/messages` turned into the four neutral calls, and each
reply drawn back in Teams' idiom (a card or message in the person's 1:1 chat with the bot)."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import re
from types import SimpleNamespace
from typing import Any

import jwt
from aiohttp import web
from botbuilder.core import TurnContext
from botbuilder.core.teams import TeamsInfo
from botbuilder.integration.aiohttp import CloudAdapter, ConfigurationBotFrameworkAuthentication
from botbuilder.schema import (
    Activity,
    ActivityTypes,
    CallerIdConstants,
    ChannelAccount,
    ConversationParameters,
)
from botframework.connector.aio import ConnectorClient
from botframework.connector.auth import (
    AuthenticateRequestResult,
    AuthenticationConstants,
    ClaimsIdentity,
    ConnectorFactory,
)

from bot.teams import cards, keys, tokens
from bot.teams.service_urls import ServiceUrls, on_this_machine, parse_allowed
from handlers import conversations, directory, inbound
from handlers.context import Actor, Context, PostRef
from handlers.ui import Card, Reply
from storage.database import UNREACHABLE

log = logging.getLogger(__name__)
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
KINDS = {
    "personal": conversations.PERSONAL,
    "channel": conversations.CHANNEL,
    "groupChat": conversations.GROUP,
}


class TeamsApp:
    """The Bot Framework side of Touchline: the CloudAdapter, the bot, and the route."""

    def __init__(
        self,
        ctx: Context,
        *,
        app_id: str | None,
        password: str | None,
        tenant_id: str | None = None,
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
        # Microsoft's public cloud, spelled out so that where the signing keys come from can be
        # set (MICROSOFT_OPENID_METADATA_URL, for tests); these are the SDK's own defaults.
        settings = SimpleNamespace(
            APP_ID=self.app_id,
            APP_PASSWORD=password or "",
            APP_TYPE="SingleTenant" if tenant_id else "MultiTenant",
            APP_TENANTID=tenant_id or "",
            TO_CHANNEL_FROM_BOT_LOGIN_URL=AuthenticationConstants.TO_CHANNEL_FROM_BOT_LOGIN_URL_PREFIX,
            TO_CHANNEL_FROM_BOT_OAUTH_SCOPE=AuthenticationConstants.TO_CHANNEL_FROM_BOT_OAUTH_SCOPE,
            TO_BOT_FROM_CHANNEL_TOKEN_ISSUER=AuthenticationConstants.TO_BOT_FROM_CHANNEL_TOKEN_ISSUER,
            OAUTH_URL=AuthenticationConstants.OAUTH_URL,
            TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL=openid_metadata_url
            or AuthenticationConstants.TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL,
            TO_BOT_FROM_EMULATOR_OPENID_METADATA_URL=openid_metadata_url
            or AuthenticationConstants.TO_BOT_FROM_EMULATOR_OPENID_METADATA_URL,
            CALLER_ID=CallerIdConstants.public_azure_channel,
        )
        for url in {
            settings.TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL,
            settings.TO_BOT_FROM_EMULATOR_OPENID_METADATA_URL,
        }:
            keys.install(url)
        # The bot's own token is fetched by bot/teams/tokens.py, not by MSAL on the event loop;
        # MICROSOFT_LOGIN_URL says where from (for tests, and sovereign clouds).
        credentials = tokens.Credentials(self.app_id, password or "", tenant=tenant_id, login_url=login_url)
        self.adapter = CloudAdapter(
            _Authentication(settings, credentials, self.service_urls, emulator=emulator)
        )
        self.adapter.on_turn_error = self._turn_failed

    # --- the route ----------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.Response:
        """`POST /api/messages`: authenticated by the adapter unless in Emulator mode, which
        answers this machine only."""
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
        if self.emulator and (problem := _malformed(body)):
            # Unauthenticated, anything may arrive; the Bot Framework sends no such activity (and
            # with an app id, only what it signed gets through), and the turn would trip over it.
            log.warning("refused an activity: %s", problem)
            return web.json_response({"error": f"not a Bot Framework activity: {problem}"}, status=400)
        try:
            response = await self.adapter.process(request, self)
        except keys.KeysUnavailable:
            return web.json_response(
                {"error": "the Bot Framework's signing keys could not be fetched in time; try again"},
                status=503,
                headers={"Retry-After": "5"},
            )
        except (PermissionError, jwt.PyJWTError):
            return web.json_response({"error": "not authenticated by the Bot Framework"}, status=401)
        except web.HTTPException as refusal:
            if refusal.status == 401:
                return web.json_response({"error": "not authenticated by the Bot Framework"}, status=401)
            return web.json_response({"error": refusal.reason}, status=refusal.status)
        except Exception as error:
            # A turn's own failures are handled in it (_turn_failed); this is the envelope.
            log.warning("an activity could not be read: %s", type(error).__name__)
            return web.json_response({"error": "the activity could not be read"}, status=400)
        return response or web.Response(status=201)

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
                given = data.get("_labels")
                labels: dict[str, Any] = given if isinstance(given, dict) else {}
                lines = "\n".join(
                    f"- {labels.get(name, name)}: {error}" for name, error in reply.errors.items()
                )
                await self._show(
                    turn, actor, Reply(text=f"Please fix these and submit the form again:\n{lines}")
                )
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
        added = [
            m
            for m in activity.members_added or []
            if m is not None and _teams_id(m.id) and (m.aad_object_id is None or _teams_id(m.aad_object_id))
        ]
        bot_added = any(m.id == activity.recipient.id for m in added)
        people = [m for m in added if m.id != activity.recipient.id]
        team = _object(_object(activity.channel_data).get("team")).get("id")
        if bot_added and team:
            await self.read_roster(turn)
        elif people and team:
            members = [(m.aad_object_id or m.id, m.id, m.name or "") for m in people]
            await asyncio.to_thread(
                conversations.remember_members, self.ctx, "teams", _address(activity), members
            )
        if bot_added and activity.conversation.conversation_type == "personal":
            actor = await self._actor(activity, person=activity.from_property)
            await turn.send_activity(
                f"Hello {actor.name}: I am Touchline. Write **help** to see what you can do here."
            )

    async def read_roster(self, turn: TurnContext) -> int:
        """Everyone in the team this conversation belongs to: people Touchline can open a 1:1
        chat with, and the Y of "acknowledged by X of Y" for the team's channels."""
        members: list[tuple[str, str, str]] = []
        token: str | None = None
        while True:
            page = await TeamsInfo.get_paged_members(turn, continuation_token=token)
            for m in page.members or []:
                members.append((m.aad_object_id or m.id, m.id, m.name or ""))
                await asyncio.to_thread(
                    directory.identify, self.ctx, "teams", m.aad_object_id or m.id, name=m.name, email=m.email
                )
            token = page.continuation_token
            if not token:
                break
        address = _address(turn.activity)
        await asyncio.to_thread(conversations.remember_members, self.ctx, "teams", address, members)
        await asyncio.to_thread(
            directory.set_channel_members, self.ctx, "teams", {address: [m[0] for m in members]}
        )
        return len(members)

    # --- people and places ----------------------------------------------------------------------

    async def _remember(self, turn: TurnContext) -> None:
        """Keep how to reach this conversation again, so that later posts need no one to ask."""
        activity = turn.activity
        if activity.conversation is None or (activity.channel_id != "msteams" and not self.emulator):
            return
        reference = TurnContext.get_conversation_reference(activity)
        address = _address(activity)
        reference.conversation.id = address  # a channel itself, not the thread this came in
        reference.activity_id = None
        kind = KINDS.get(activity.conversation.conversation_type or "personal", conversations.PERSONAL)
        data = activity.channel_data if isinstance(activity.channel_data, dict) else {}
        person = None
        if kind == conversations.PERSONAL and activity.from_property is not None:
            person = _external_id(activity.from_property)
        await asyncio.to_thread(
            conversations.remember,
            self.ctx,
            "teams",
            address,
            kind=kind,
            reference=reference.serialize(),
            name=str(_object(data.get("channel")).get("name") or activity.conversation.name or ""),
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

    async def _show(self, turn: TurnContext, actor: Actor, reply: Reply) -> None:
        """What only the actor should see goes to their 1:1 chat with the bot (Teams has no
        private messages inside a channel); a form is a card with inputs there."""
        if reply.is_empty and reply.form is None:
            return
        activity = _reply_activity(reply)
        # The Emulator's conversations have no type: they are 1:1 chats.
        if (turn.activity.conversation.conversation_type or "personal") == "personal":
            await turn.send_activity(activity)
            return
        try:
            await self.send_privately(actor.user_id, activity)
        except Exception as error:
            # Neither who nor what: this may be the thank-you for an anonymous concern.
            log.warning(
                "could not answer privately (%s); answering in the conversation", type(error).__name__
            )
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
        tenant = ((reference.get("conversation") or {}).get("tenantId")) or ""
        parameters = ConversationParameters(
            is_group=False,
            bot=ChannelAccount(id=(reference.get("bot") or {}).get("id")),
            members=[ChannelAccount(id=member_id)],
            tenant_id=tenant,
            channel_data={"tenant": {"id": tenant}},
        )
        sent: dict[str, Any] = {}

        async def opened(turn: TurnContext) -> None:
            try:
                new = TurnContext.get_conversation_reference(turn.activity)
                new.conversation.conversation_type = "personal"
                new.conversation.tenant_id = tenant
                await asyncio.to_thread(
                    conversations.remember,
                    self.ctx,
                    "teams",
                    new.conversation.id,
                    kind=conversations.PERSONAL,
                    reference=new.serialize(),
                    person_external_id=external_id,
                )
                sent["id"] = await _post_new(turn, activity)
            except Exception as error:  # the adapter would swallow it: carry it out
                sent["error"] = error

        await self.adapter.create_conversation(
            self.app_id, opened, parameters, "msteams", reference.get("serviceUrl"), None
        )
        if "error" in sent:
            raise sent["error"]
        return str(sent.get("id") or "")

    async def send_to(self, reference: dict[str, Any], activity: Activity) -> str:
        """Post into a known conversation, unasked (proactively); returns the message id."""
        self._checked(reference)
        sent: dict[str, Any] = {}

        async def post(turn: TurnContext) -> None:
            try:
                sent["id"] = await _post_new(turn, activity)
            except Exception as error:  # the adapter would swallow it: carry it out
                sent["error"] = error

        await self.adapter.continue_conversation(_reference(reference), post, self.app_id)
        if "error" in sent:
            raise sent["error"]
        return str(sent.get("id") or "")

    async def update_in(self, reference: dict[str, Any], message_id: str, activity: Activity) -> None:
        self._checked(reference)
        done: dict[str, Any] = {}

        async def replace(turn: TurnContext) -> None:
            try:
                activity.id = message_id
                await turn.update_activity(activity)
            except Exception as error:
                done["error"] = error

        await self.adapter.continue_conversation(_reference(reference), replace, self.app_id)
        if "error" in done:
            raise done["error"]

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
            log.info("could not close the form card: %s", error)

    async def _turn_failed(self, turn: TurnContext, error: Exception) -> None:
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
            await turn.send_activity(told)
        except Exception:
            log.info("could not tell the sender about the failure")


async def _post_new(turn: TurnContext, activity: Activity) -> str:
    """A new message in the turn's conversation (a new thread in a channel). `send_activity`
    would make it a reply to the continuation's made-up activity id."""
    TurnContext.apply_conversation_reference(activity, TurnContext.get_conversation_reference(turn.activity))
    activity.reply_to_id = None
    client = turn.turn_state.get(turn.adapter.BOT_CONNECTOR_CLIENT_KEY)
    response = await client.conversations.send_to_conversation(activity.conversation.id, activity)
    return str(response.id)


class ServiceUrlRefused(ValueError):
    """Touchline does not send there: not a Bot Framework service URL it knows or was told of."""


class _Authentication(ConfigurationBotFrameworkAuthentication):  # type: ignore[misc]
    """The SDK's authentication, within a deadline (it fetches the signing keys on the way, see
    bot/teams/keys.py), and with connector clients kept per service URL: it would build a new
    client (and its retry policy) for every message sent, most of the cost of a send."""

    def __init__(
        self, settings: Any, credentials: tokens.Credentials, service_urls: ServiceUrls, *, emulator: bool
    ) -> None:
        super().__init__(settings, credentials_factory=credentials)
        self.service_urls = service_urls
        self.emulator = emulator
        self._factories: dict[frozenset[tuple[str, str]], _KeptConnectors] = {}
        self._user_token_clients: dict[frozenset[tuple[str, str]], Any] = {}

    async def authenticate_request(self, activity: Activity, auth_header: str) -> AuthenticateRequestResult:
        # The Emulator's mode authenticates nothing, so a token sent to it is not even read;
        # the SDK takes "" (no header) for a token to check.
        header = None if self.emulator or not auth_header else auth_header
        try:
            result = await asyncio.wait_for(
                super().authenticate_request(activity, header), timeout=keys.TIMEOUT + 1
            )
        except (keys.KeysUnavailable, PermissionError):
            raise
        except TimeoutError:
            raise keys.KeysUnavailable("timed out") from None
        except Exception as error:
            # A token the SDK trips over (no key of that id, a claim of the wrong type) is no token.
            raise PermissionError(type(error).__name__) from None
        # The turn's replies go through the same kept, checked connector clients.
        result.connector_factory = self.create_connector_factory(result.claims_identity)
        return result

    def create_connector_factory(self, claims_identity: ClaimsIdentity) -> ConnectorFactory:
        key = frozenset((str(k), str(v)) for k, v in (claims_identity.claims or {}).items())
        if key not in self._factories:
            self._factories[key] = _KeptConnectors(
                super().create_connector_factory(claims_identity), self.service_urls
            )
        return self._factories[key]

    async def create_user_token_client(self, claims_identity: ClaimsIdentity) -> Any:
        # Touchline signs no one in through the Bot Framework's token service, yet the SDK builds
        # this client (and its retry policy) for every proactive message: 16% of a fan-out
        # worker's CPU. One is kept for each identity, as the connector factories are.
        key = frozenset((str(k), str(v)) for k, v in (claims_identity.claims or {}).items())
        if key not in self._user_token_clients:
            self._user_token_clients[key] = await super().create_user_token_client(claims_identity)
        return self._user_token_clients[key]


class _KeptConnectors(ConnectorFactory):  # type: ignore[misc]
    def __init__(self, inner: ConnectorFactory, service_urls: ServiceUrls) -> None:
        self.inner = inner
        self.service_urls = service_urls
        self.clients: dict[tuple[str, str | None], ConnectorClient] = {}

    async def create(self, service_url: str, audience: str | None = None) -> ConnectorClient:
        # Every connector client is made here: nothing is sent to a service URL not allowed.
        if not self.service_urls.allows(service_url):
            raise ServiceUrlRefused("not a Bot Framework service URL Touchline sends to")
        key = (service_url, audience)
        if key not in self.clients:
            client = await self.inner.create(service_url, audience)
            # msrest's requests follow redirects (30 of them) by default: a Connector that
            # answered 3xx would send the message, and the bot's token, somewhere else.
            client.config.redirect_policy.allow = False
            self.clients[key] = client
        client = self.clients[key]
        # The library signs each request synchronously: the token is made fresh here, off the loop's
        # critical path, before any request is built (bot/teams/tokens.py).
        # A token that cannot be had is not this turn's failure: what the person did is still
        # done, and only sending fails (logged, and retried by the delivery worker).
        credentials = client.config.credentials
        if isinstance(credentials, tokens.KeptCredentials):
            with contextlib.suppress(tokens.TokenUnavailable, tokens.TokenRefused):
                await credentials.token.fresh()
        return client


def card_activity(card: Card) -> Activity:
    return Activity(
        type=ActivityTypes.message,
        text="",
        summary=card.title[:200],
        attachments=[cards.attachment(cards.card(card))],
    )


def _reply_activity(reply: Reply) -> Activity:
    if reply.form is not None:
        content = cards.form(reply.form)
        if reply.text:
            content["body"].insert(1, {"type": "TextBlock", "text": cards.escape(reply.text), "wrap": True})
        return Activity(type=ActivityTypes.message, attachments=[cards.attachment(content)])
    attachments = [cards.attachment(cards.card(reply.card))] if reply.card is not None else []
    return Activity(
        type=ActivityTypes.message,
        text=cards.escape(reply.text) if reply.text else None,
        attachments=attachments,
    )


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


def _reference(data: dict[str, Any]) -> Any:
    from botbuilder.schema import ConversationReference

    return ConversationReference().deserialize(data)


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
