"""The Slack app manifest: everything Touchline needs from Slack, to paste when creating the app."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import yaml

from bot.slack.app import COMMANDS, SHORTCUT

DESCRIPTIONS = {
    "strategy": ("Announce, list and show strategy decisions", "[list | show <id> | supersede <id>]"),
    "asset": ("Publish assets and drafts, see their feedback", "[draft | publish <id> | show <id> | list]"),
    "objection": ("Log what a customer said", "<what the customer said> | mine | list [theme]"),
    "pulse": ("Pulse surveys (admins)", "[run <survey> | close <run> | results [run]]"),
    "digest": ("This week's objection digest", ""),
    "touchline": ("What Touchline can do for you; a link to the dashboard", "[help | dashboard]"),
}
BOT_SCOPES = [
    "commands",
    "chat:write",  # posts, updates, direct messages
    "chat:write.public",  # post to public channels without being invited first
    "im:write",
    "reactions:read",  # ✅ on a decision acknowledges it
    "users:read",
    "users:read.email",  # names, e-mails and time zones of people
    "usergroups:read",  # slack-group: in app.yaml
    "channels:read",
    "groups:read",  # channel names and members, for "acknowledged by X of Y"
    "files:write",  # the digest's chart
]
EVENTS = ["app_home_opened", "reaction_added", "reaction_removed", "tokens_revoked", "app_uninstalled"]


def slack_manifest(url: str | None, *, socket_mode: bool = False) -> str:
    """The manifest (YAML) for an app whose requests go to `url`/slack/events, or, in Socket
    Mode, over the WebSocket Touchline opens (no public address needed)."""
    if socket_mode == (url is not None):
        raise ValueError(
            "Give either --url https://… (Slack sends requests there) or --socket-mode (Touchline connects "
            "to Slack; set SLACK_APP_TOKEN)."
        )
    events: str | None = None
    if url is not None:
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.netloc:
            raise ValueError(
                f"--url {url!r}: Slack needs an https:// address it can reach, e.g. https://touchline.example.com"
            )
        events = f"{url.rstrip('/')}/slack/events"
    at = {"url": events} if events else {}
    request_url = {"request_url": events} if events else {}
    manifest: dict[str, Any] = {
        "display_information": {
            "name": "Touchline",
            "description": "Strategy, marketing and sales, talking to each other.",
            "background_color": "#1f2937",
        },
        "features": {
            "app_home": {
                "home_tab_enabled": True,
                "messages_tab_enabled": True,
                "messages_tab_read_only_enabled": False,
            },
            "bot_user": {"display_name": "Touchline", "always_online": True},
            "shortcuts": [
                {
                    "name": "Log as objection",
                    "type": "message",
                    "callback_id": SHORTCUT,
                    "description": "Log this message as a customer objection",
                }
            ],
            "slash_commands": [
                {
                    "command": f"/{name}",
                    **at,
                    "description": DESCRIPTIONS[name][0],
                    "usage_hint": DESCRIPTIONS[name][1],
                    "should_escape": False,
                }
                for name in COMMANDS
            ],
        },
        "oauth_config": {"scopes": {"bot": BOT_SCOPES}},
        "settings": {
            "event_subscriptions": {**request_url, "bot_events": EVENTS},
            "interactivity": {"is_enabled": True, **request_url},
            "org_deploy_enabled": False,
            "socket_mode_enabled": socket_mode,
            "token_rotation_enabled": False,
        },
    }
    return yaml.safe_dump(manifest, sort_keys=False, allow_unicode=True)
