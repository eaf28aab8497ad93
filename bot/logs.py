"""Logging set-up: readable lines by default, one JSON object a line with LOG_FORMAT=json."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "at": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


# The chat SDKs and the HTTP clients under them log each request they send, with the person's id
# (a Teams 1:1 chat's id holds it) and what Touchline says to them, at DEBUG: the moment a
# thank-you for a pulse answer or an anonymous concern leaves would name its sender. They are
# never let below INFO, whatever LOG_LEVEL says.
CHAT_SDKS = (
    "slack_sdk",
    "slack_bolt",
    "botbuilder",
    "botframework",
    "msrest",
    "msal",
    "microsoft_agents",
    "urllib3",
    "requests",
)


def configure(level: str = "INFO", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in CHAT_SDKS:
        logging.getLogger(name).setLevel(max(logging.INFO, logging.getLevelName(level)))
