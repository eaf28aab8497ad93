"""Who is who on Slack: names, e-mails and time zones from `users.info`, and the members of the
user groups and channels that app.yaml names, refreshed now and then."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from handlers import directory
from handlers.context import Actor, Context

log = logging.getLogger(__name__)
PROFILE_TTL = 3600.0  # seconds a users.info answer is trusted


def _seconds(retry_after: object) -> float:
    """A Retry-After of seconds, as Slack sends it; a minute when it is missing or unreadable."""
    try:
        return min(max(float(str(retry_after)), 1.0), 600.0)
    except ValueError:
        return 60.0


@dataclass(frozen=True)
class Profile:
    name: str | None
    email: str | None
    timezone: str | None


class SlackPeople:
    def __init__(self, ctx: Context, client: AsyncWebClient) -> None:
        self.ctx = ctx
        self.client = client
        self._profiles: dict[str, tuple[float, Profile]] = {}
        self._quiet_until = 0.0  # users.info asked us to wait (429) until then
        self.bot_user_id: str | None = None

    async def actor(self, user_id: str) -> Actor:
        """The `Actor` behind a Slack user id, with their name, e-mail and time zone from Slack."""
        profile = await self.profile(user_id)
        return await asyncio.to_thread(
            directory.identify,
            self.ctx,
            "slack",
            user_id,
            name=profile.name,
            email=profile.email,
            timezone=profile.timezone,
        )

    async def profile(self, user_id: str) -> Profile:
        cached = self._profiles.get(user_id)
        if cached and time.monotonic() - cached[0] < PROFILE_TTL:
            return cached[1]
        if time.monotonic() < self._quiet_until:
            # Slack said how long to wait: asking again sooner (a crowd of new people at once)
            # would only be refused. Until then a person counts by their id, their name later.
            return cached[1] if cached else Profile(None, None, None)
        try:
            user = (await self.client.users_info(user=user_id))["user"]
            profile = user.get("profile") or {}
            found = Profile(
                name=profile.get("display_name")
                or user.get("real_name")
                or profile.get("real_name")
                or user.get("name"),
                email=profile.get("email") or None,
                timezone=user.get("tz") or None,
            )
        except SlackApiError as error:
            if error.response.status_code == 429 or error.response.get("error") == "ratelimited":
                wait = error.response.headers.get("Retry-After", error.response.headers.get("retry-after"))
                self._quiet_until = time.monotonic() + _seconds(wait)
            log.warning("users.info failed: %s", error.response.get("error") or error.response.status_code)
            return cached[1] if cached else Profile(None, None, None)
        except (KeyError, TypeError) as error:
            # Without a profile the person still counts, by their id; their name comes later. Not
            # who: this may be the moment someone answers a pulse or sends an anonymous concern.
            log.warning("users.info answered something unexpected (%s)", type(error).__name__)
            return Profile(None, None, None)
        self._profiles[user_id] = (time.monotonic(), found)
        return found

    async def refresh(self) -> None:
        """Read the user groups app.yaml names and the members of the channels its audiences post
        to, and bring roles and audiences in line with them."""
        org = self.ctx.org
        refs = {r for refs in org.roles.values() for r in refs}
        refs |= {m for audience in org.audiences.values() for m in audience.members}
        for ref in sorted(r for r in refs if r.startswith("slack-group:")):
            try:
                users = (await self.client.usergroups_users_list(usergroup=ref.split(":", 1)[1]))["users"]
            except SlackApiError as error:
                log.warning("usergroups.users.list %s failed: %s", ref, error.response.get("error"))
                continue
            await asyncio.to_thread(directory.set_group_members, self.ctx, ref, "slack", list(users))
        channels = sorted(
            {t.split(":", 1)[1] for a in org.audiences.values() for t in a.targets if t.startswith("slack:")}
        )
        found: dict[str, list[str] | None] = {}
        for channel in channels:
            members = await self.channel_members(channel)
            found[channel] = None if members is None else [m for m in members if m != self.bot_user_id]
        await asyncio.to_thread(directory.set_channel_members, self.ctx, "slack", found)
        await asyncio.to_thread(directory.sync, self.ctx)

    async def channel_members(self, channel: str) -> list[str] | None:
        """Everyone in a channel, page by page; None if Slack will not say."""
        members: list[str] = []
        cursor: str | None = None
        try:
            while True:
                page = await self.client.conversations_members(channel=channel, cursor=cursor, limit=200)
                members += page.get("members") or []
                cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
                if not cursor:
                    return members
        except SlackApiError as error:
            log.warning("conversations.members %s failed: %s", channel, error.response.get("error"))
            return None
