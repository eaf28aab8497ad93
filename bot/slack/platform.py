"""Sending to Slack through the Web API: posts, updates, direct messages, and what errors mean."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import ClientError
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.platform import DeliveryError
from bot.slack.blocks import card_blocks, fallback
from handlers.ui import Card

log = logging.getLogger(__name__)

# Errors that no retry will mend, and what the sender can do about each.
PERMANENT = {
    "channel_not_found": "the channel does not exist or the bot cannot see it — check the id in app.yaml",
    "not_in_channel": "the bot is not in the channel — invite it with /invite @Touchline",
    "is_archived": "the channel is archived — unarchive it or take it out of app.yaml",
    "invalid_auth": "Slack refused the bot's token — check SLACK_BOT_TOKEN",
    "not_authed": "Slack refused the bot's token — check SLACK_BOT_TOKEN",
    "account_inactive": "the bot's token was revoked — reinstall the app and update SLACK_BOT_TOKEN",
    "token_revoked": "the bot's token was revoked — reinstall the app and update SLACK_BOT_TOKEN",
    "missing_scope": "the app lacks a permission — reinstall it from the manifest (touchline manifest slack)",
    "user_not_found": "that person is not in the workspace any more",
    "user_disabled": "that person's account is deactivated",
    "cannot_dm_bot": "that user is a bot",
    "msg_too_long": "the message is too long for Slack",
    "invalid_blocks": "Slack rejected the message's layout",
}


class SlackPlatform:
    """The `Platform` for Slack: a message reference is the message's `ts`."""

    name = "slack"

    def __init__(self, client: AsyncWebClient) -> None:
        self.client = client
        self._channel_names: dict[str, str] = {}
        self._direct: dict[str, str] = {}  # a person's user id -> the app's DM channel with them

    async def send(self, address: str, card: Card, *, delivery_id: int) -> str:
        response = await self._call(
            "chat_postMessage", address, channel=address, text=fallback(card), blocks=card_blocks(card)
        )
        await self._attach(address, card)
        return str(response["ts"])

    async def send_direct(self, user_id: str, card: Card, *, delivery_id: int) -> str:
        # Posting to a user id lands in the app's direct message with that person.
        response = await self._call(
            "chat_postMessage", user_id, channel=user_id, text=fallback(card), blocks=card_blocks(card)
        )
        channel = str(response.get("channel") or user_id)
        self._direct[user_id] = channel
        await self._attach(channel, card)
        return str(response["ts"])

    async def update(self, address: str, message_ref: str, card: Card, *, delivery_id: int) -> None:
        # A direct message is addressed to the person; chat.update wants the DM's own id (D…).
        channel = await self._direct_channel(address) if address.startswith(("U", "W")) else address
        await self._call(
            "chat_update",
            address,
            channel=channel,
            ts=message_ref,
            text=fallback(card),
            blocks=card_blocks(card),
        )

    async def _direct_channel(self, user_id: str) -> str:
        """The app's direct message with a person (conversations.open answers the existing one)."""
        if user_id not in self._direct:
            response = await self._call("conversations_open", user_id, users=user_id)
            self._direct[user_id] = str(response["channel"]["id"])
        return self._direct[user_id]

    async def _attach(self, channel: str, card: Card) -> None:
        """A card's picture goes up as a file in the same conversation, right after it."""
        if card.image is None:
            return
        try:
            await self.client.files_upload_v2(
                channel=channel, content=card.image.png, filename=card.image.name, title=card.image.alt
            )
        except SlackApiError as error:
            # The message is out; a missing chart is worth a log line, not a second message.
            log.warning(
                "could not attach %s in %s: %s", card.image.name, channel, error.response.get("error")
            )

    async def _call(self, method: str, where: str, **arguments: Any) -> Any:
        try:
            return await getattr(self.client, method)(**arguments)
        except SlackApiError as error:
            raise await self._explain(error, where) from None
        except (TimeoutError, OSError, ClientError) as error:
            # A connection Slack dropped before answering (ServerDisconnectedError) is no bug:
            # the message may or may not be out, and it is tried again.
            raise DeliveryError(f"Slack could not be reached ({type(error).__name__})") from None

    async def _explain(self, error: SlackApiError, where: str) -> DeliveryError:
        response = error.response
        code = str(response.get("error") or "")
        if response.status_code == 429 or code == "ratelimited":
            retry_after = float(
                response.headers.get("Retry-After", response.headers.get("retry-after", 1)) or 1
            )
            return DeliveryError(f"Slack asked to slow down ({code or 429})", retry_after=retry_after)
        if code in PERMANENT:
            return DeliveryError(f"{await self._name(where)}: {PERMANENT[code]}", permanent=True)
        if response.status_code >= 500:
            return DeliveryError(f"Slack answered {response.status_code}")
        # Anything else Slack says no to is not going to change by asking again.
        return DeliveryError(
            f"{await self._name(where)}: Slack said {code or response.status_code}", permanent=True
        )

    async def _name(self, channel: str) -> str:
        """`#sales-apac` for a channel id, when Slack will say; the id itself otherwise."""
        if not channel.startswith(("C", "G")):
            return channel
        if channel not in self._channel_names:
            try:
                info = await self.client.conversations_info(channel=channel)
                self._channel_names[channel] = f"#{info['channel']['name']}"
            except (SlackApiError, KeyError, TypeError):
                return channel
        return self._channel_names[channel]
