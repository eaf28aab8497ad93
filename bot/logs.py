"""Logging set-up: readable lines by default, one JSON object a line with LOG_FORMAT=json."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime

from aiohttp.http_exceptions import HttpProcessingError

# What could end a line or steer the terminal showing it: C0 and C1 controls (newline, carriage
# return, ESC that starts an ANSI sequence, NEL), Unicode's line and paragraph separators, the
# marks that reorder text right to left, and lone surrogates (not text at all).
UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u2028\u2029\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)
# Of those, what json.dumps leaves as it is (it escapes the C0 controls itself).
UNSAFE_IN_JSON = re.compile(
    "[\x7f-\x9f\u2028\u2029\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)
NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return NAMED.get(char) or (f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}")


def inert(text: str) -> str:
    """`text` with every character that could start a line or steer a terminal written as an
    escape: whatever a message quotes, one record stays one line.

    >>> inert("ok\\n2026-12-01 INFO bot: forged \\x1b[31m")
    'ok\\\\n2026-12-01 INFO bot: forged \\\\x1b[31m'
    """
    return UNSAFE.sub(_escape, text)


class TextFormatter(logging.Formatter):
    """`at level logger: message`, one line a record: the message, its arguments and any
    traceback with their newlines and controls escaped."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        return inert(super().format(record))


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
        return UNSAFE_IN_JSON.sub(
            lambda char: f"\\u{ord(char.group()):04x}", json.dumps(entry, ensure_ascii=False)
        )


def _malformed_http(record: logging.LogRecord) -> bool:
    """aiohttp's server logs each request it cannot parse at ERROR with a traceback that quotes the
    bytes sent (a chunk of the body, a header): anyone could fill the log with them, and aiohttp
    has answered 400 already. At DEBUG one line says so, without the bytes; else nothing."""
    error = record.exc_info[1] if record.exc_info else None
    if not isinstance(error, HttpProcessingError):
        return True
    if not logging.getLogger(record.name).isEnabledFor(logging.DEBUG):
        return False
    record.msg, record.args = "answered 400 to a request that is not valid HTTP (%s)", (type(error).__name__,)
    record.exc_info, record.exc_text = None, None
    record.levelno, record.levelname = logging.DEBUG, "DEBUG"
    return True


# The chat SDKs and the HTTP clients under them log each request they send, with the person's id
# (a Teams 1:1 chat's id holds it) and what Touchline says to them, at DEBUG: the moment a
# thank-you for a pulse answer or an anonymous concern leaves would name its sender. They are
# never let below INFO, whatever LOG_LEVEL says.
CHAT_SDKS = (
    "slack_sdk",
    "slack_bolt",
    "msal",
    "urllib3",
    "requests",
)


def configure(level: str = "INFO", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in CHAT_SDKS:
        logging.getLogger(name).setLevel(max(logging.INFO, logging.getLevelName(level)))
    logging.getLogger("aiohttp.server").addFilter(_malformed_http)
