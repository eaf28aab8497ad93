"""The Teams app package: `manifest.json` and the two icons, zipped, for an admin to upload."""

from __future__ import annotations

import io
import json
import re
import zipfile
from typing import Any
from urllib.parse import urlsplit

from PIL import Image, ImageDraw

from bot.teams.app import COMMANDS, LOG_OBJECTION

GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
MANIFEST_VERSION = "1.16"
DESCRIPTIONS = {
    "strategy": "Announce, list and show strategy decisions",
    "asset": "Publish assets and drafts; see their feedback",
    "objection": "Log what a customer said: objection <what they said>",
    "pulse": "Pulse surveys: run, close, results",
    "digest": "This week's objection digest",
    "touchline": "touchline dashboard: a one-time link to the dashboard",
    "help": "What Touchline can do for you",
}


def teams_manifest(app_id: str, url: str) -> dict[str, Any]:
    """The manifest of a bot registered as `app_id`, whose Touchline is reachable at `url`."""
    if not GUID.match(app_id):
        raise ValueError(f"--app-id {app_id!r}: expected the bot's Microsoft App ID, a GUID such as 1b4c…-…")
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.netloc:
        raise ValueError(
            f"--url {url!r}: Teams needs an https:// address, e.g. https://touchline.example.com"
        )
    scopes = ["personal", "team", "groupChat"]
    return {
        "$schema": f"https://developer.microsoft.com/en-us/json-schemas/teams/v{MANIFEST_VERSION}/MicrosoftTeams.schema.json",
        "manifestVersion": MANIFEST_VERSION,
        "version": "1.0.0",
        "id": app_id,
        "developer": {
            "name": "Touchline",
            "websiteUrl": url,
            "privacyUrl": url,
            "termsOfUseUrl": url,
        },
        "name": {"short": "Touchline", "full": "Touchline: strategy, marketing and sales"},
        "description": {
            "short": "Strategy, marketing and sales, talking to each other.",
            "full": (
                "Leaders announce strategy decisions with the why and the guardrails and see who has "
                "acknowledged; marketers launch assets and hear what the field says; reps acknowledge, "
                "ask and log customer objections; pulse surveys measure alignment anonymously."
            ),
        },
        "icons": {"color": "color.png", "outline": "outline.png"},
        "accentColor": "#1F2937",
        "bots": [
            {
                "botId": app_id,
                "scopes": scopes,
                "supportsFiles": False,
                "isNotificationOnly": False,
                "commandLists": [
                    {
                        "scopes": scopes,
                        "commands": [
                            {"title": name, "description": DESCRIPTIONS[name]}
                            for name in COMMANDS
                            if name in DESCRIPTIONS
                        ],
                    }
                ],
            }
        ],
        # "Log as objection" in the ⋯ menu of any message (Slack's message shortcut): a dialog with
        # the objection form, filled with the message's text (bot/teams/app.py, _on_invoke).
        "composeExtensions": [
            {
                "botId": app_id,
                "commands": [
                    {
                        "id": LOG_OBJECTION,
                        "type": "action",
                        "title": "Log as objection",
                        "description": "Log what the customer said in this message as an objection",
                        "context": ["message"],
                        "fetchTask": True,
                    }
                ],
            }
        ],
        "permissions": ["identity", "messageTeamMembers"],
        "validDomains": [parts.netloc],
    }


def package(app_id: str, url: str) -> bytes:
    """The zip Teams' admin centre (or *Upload a custom app*) takes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("manifest.json", json.dumps(teams_manifest(app_id, url), indent=2))
        archive.writestr("color.png", _icon(192, colour=True))
        archive.writestr("outline.png", _icon(32, colour=False))
    return buffer.getvalue()


def _icon(size: int, *, colour: bool) -> bytes:
    """A touchline: a white line across a pitch-green square (colour), or the line alone in
    white on transparent (outline), as Teams asks."""
    image = Image.new("RGBA", (size, size), (31, 122, 76, 255) if colour else (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    margin, width = size // 6, max(2, size // 12)
    draw.rectangle(
        (margin, margin, size - margin - 1, size - margin - 1), outline=(255, 255, 255, 255), width=width
    )
    draw.line((size // 2, margin, size // 2, size - margin - 1), fill=(255, 255, 255, 255), width=width)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()
