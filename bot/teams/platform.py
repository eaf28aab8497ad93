"""Sending to Teams: proactive posts into known conversations, 1:1 messages, card updates, and
what the Connector's errors mean."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import ClientError
from botbuilder.schema import ErrorResponseException
from msrest.exceptions import ClientRequestError

from bot.platform import DeliveryError
from bot.teams import tokens
from bot.teams.app import ServiceUrlRefused, TeamsApp, card_activity
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
        except ErrorResponseException as error:
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
        except (TimeoutError, ClientError, OSError, ClientRequestError) as error:
            raise DeliveryError(f"Teams could not be reached ({type(error).__name__})") from None
        return str(result or "")


def _explain(error: ErrorResponseException, where: str) -> DeliveryError:
    response = getattr(error, "response", None)
    status = int(getattr(response, "status_code", 0) or 0)
    if status == 429:
        headers = getattr(response, "headers", {}) or {}
        retry_after = float(headers.get("Retry-After") or headers.get("retry-after") or 1)
        return DeliveryError("Teams asked to slow down (429)", retry_after=retry_after)
    if status in PERMANENT:
        return DeliveryError(f"{where}: {PERMANENT[status]}", permanent=True)
    if status >= 500 or status == 0:
        return DeliveryError(f"Teams answered {status or 'without a status'}")
    return DeliveryError(f"{where}: Teams refused the message ({status})", permanent=True)
