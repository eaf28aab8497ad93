"""Sending to Teams: proactive posts into known conversations, 1:1 messages, card updates, and
what the Connector's errors mean."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import ClientError, ClientResponseError

from bot.platform import DeliveryError
from bot.teams import tokens
from bot.teams.app import TeamsApp, card_activity
from bot.teams.connector import ServiceUrlRefused
from handlers import conversations
from handlers.ui import Card

log = logging.getLogger(__name__)

PERMANENT = {
    401: "Teams refused the bot's credentials — check MICROSOFT_APP_ID and MICROSOFT_APP_PASSWORD",
    403: "the bot was removed from this conversation, or the person blocked it — add the app again",
    404: "the conversation no longer exists, or the bot is not in it — add the app to it again",
}


class TeamsPlatform:
    """The `Platform` for Teams: an address is a conversation id (a channel's `19:…`), a person
    is their Entra object id, and a message reference is the activity id."""

    name = "teams"

    def __init__(self, teams: TeamsApp) -> None:
        self.teams = teams

    async def send(self, address: str, card: Card, *, delivery_id: int) -> str:
        place = await asyncio.to_thread(conversations.find, self.teams.ctx, "teams", address)
        if place is None:
            raise DeliveryError(
                f"{address}: Touchline was never added to this conversation — add the app to the team "
                "(touchline audiences lists the conversations it knows)",
                permanent=True,
            )
        return await self._guard(
            place.name or address, self.teams.send_to(place.reference, card_activity(card))
        )

    async def send_direct(self, user_id: str, card: Card, *, delivery_id: int) -> str:
        try:
            return await self._guard(user_id, self.teams.send_privately(user_id, card_activity(card)))
        except NotInRoster:
            raise DeliveryError(
                "Teams will not open a chat with this person: they are in no team the app is installed "
                "in any more, or they blocked it — they can add the Touchline app in Teams",
                permanent=True,
            ) from None
        except LookupError:
            raise DeliveryError(
                "Touchline has no chat with this person and shares no team with them — they can add the "
                "Touchline app in Teams",
                permanent=True,
            ) from None

    async def update(self, address: str, message_ref: str, card: Card, *, delivery_id: int) -> None:
        place = await asyncio.to_thread(conversations.find, self.teams.ctx, "teams", address)
        if place is None:  # a direct message is addressed to the person
            place = await asyncio.to_thread(conversations.personal, self.teams.ctx, "teams", address)
        if place is None:
            raise DeliveryError(f"{address}: no conversation to update the card in", permanent=True)
        await self._guard(
            place.name or address, self.teams.update_in(place.reference, message_ref, card_activity(card))
        )

    async def _guard(self, where: str, sending: object) -> str:
        try:
            result = await sending  # type: ignore[misc]
        except ClientResponseError as error:  # the SDK's client raises it for any answer but 2xx
            if error.status == 403 and error.request_info.url.path.rstrip("/").endswith("/v3/conversations"):
                raise NotInRoster() from None  # createConversation: Teams will not open the chat
            raise _explain(error, where) from None
        except ServiceUrlRefused:
            raise DeliveryError(
                f"{where}: the conversation's serviceUrl is not a Bot Framework service URL Touchline "
                "sends to — add the app to it again (or list the URL in TEAMS_SERVICE_URLS)",
                permanent=True,
            ) from None
        except tokens.TokenRefused as refused:
            raise DeliveryError(f"{where}: {refused}", permanent=True) from None
        except tokens.TokenUnavailable as unavailable:
            raise DeliveryError(f"Teams could not be reached: {unavailable}") from None
        except (TimeoutError, ClientError, OSError) as error:
            raise DeliveryError(f"Teams could not be reached ({type(error).__name__})") from None
        return str(result or "")


class NotInRoster(Exception):
    """Teams refused to open a 1:1 chat: "The bot is not part of the conversation roster"."""


def _explain(error: ClientResponseError, where: str) -> DeliveryError:
    status = int(error.status or 0)
    if status == 429:
        retry_after = _seconds(error.headers.get("Retry-After") if error.headers else None)
        return DeliveryError("Teams asked to slow down (429)", retry_after=retry_after)
    if status in PERMANENT:
        return DeliveryError(f"{where}: {PERMANENT[status]}", permanent=True)
    if status >= 500 or status == 0:
        return DeliveryError(f"Teams answered {status or 'without a status'}")
    return DeliveryError(f"{where}: Teams refused the message ({status})", permanent=True)


def _seconds(value: object) -> float:
    """Retry-After in seconds (Teams gives seconds); 1 where it is missing or not a number."""
    try:
        seconds = float(str(value))
    except ValueError:
        return 1.0
    return min(max(seconds, 0.0), 3600.0) if seconds == seconds else 1.0
