"""Where Touchline may send Bot Framework requests: the Teams Bot Connector's documented hosts,
those the operator lists in `TEAMS_SERVICE_URLS`, and in Emulator mode this machine only.

An activity's `serviceUrl` says where to answer it; unchecked, anyone who can post an activity
makes the server send requests (with the bot's token, once it has one) wherever they like."""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from dataclasses import dataclass

# The Bot Connector's hosts for Teams, as Microsoft's Teams SDK documents them ("Service URL
# Validation", microsoft/teams-sdk): public cloud (with GCC), GCC High, DoD, China (21Vianet).
TEAMS_HOSTS = frozenset(
    {
        "smba.trafficmanager.net",
        "smba.onyx.prod.teams.trafficmanager.net",
        "smba.infra.gcc.teams.microsoft.com",
        "smba.infra.gov.teams.microsoft.us",
        "smba.infra.dod.teams.microsoft.us",
        "frontend.botapi.msg.infra.teams.microsoftonline.cn",
    }
)
_UNSAFE = re.compile(r"[\x00-\x20\x7f\\]")  # whitespace, control characters, backslashes


@dataclass(frozen=True)
class _Url:
    scheme: str
    host: str
    port: int
    path: str


def _split(value: object) -> _Url | None:
    """A URL's scheme, host, port and path; None for anything a service URL never looks like
    (credentials in it, a query, `..` segments, another scheme)."""
    if not isinstance(value, str) or len(value) > 500 or _UNSAFE.search(value):
        return None
    try:
        parts = urllib.parse.urlsplit(value)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
        return None
    if parts.query or parts.fragment or "?" in value or "#" in value:
        return None
    path = parts.path or "/"
    segments = urllib.parse.unquote(path).split("/")
    if "." in segments or ".." in segments or "%" in urllib.parse.unquote(path):
        return None
    host = parts.hostname.rstrip(".")
    return _Url(parts.scheme, host, port or (443 if parts.scheme == "https" else 80), path)


def on_this_machine(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_allowed(text: str | None) -> tuple[str, ...]:
    """`TEAMS_SERVICE_URLS`: comma-separated URL prefixes such as
    `https://smba.teams.sovcloud-core.fr/`; https, or http on this machine (tests, a local fake).
    Raises ValueError naming the entry that is not one."""
    entries = tuple(e.strip() for e in (text or "").split(",") if e.strip())
    # The entries are not echoed, as no value of the environment is: it may be a misplaced secret.
    for number, entry in enumerate(entries, 1):
        url = _split(entry)
        if url is None:
            raise ValueError(f"entry {number} is not an http(s) URL prefix such as https://host/")
        if url.scheme != "https" and not on_this_machine(url.host):
            raise ValueError(f"entry {number} is http off this machine: use https")
    return entries


@dataclass(frozen=True)
class ServiceUrls:
    """Which service URLs Touchline sends to. In Emulator mode: this machine's only (the
    Emulator listens on localhost); otherwise Teams' documented hosts over https and the
    prefixes listed (same scheme, host and port; the path starting with the prefix's)."""

    allowed: tuple[str, ...] = ()
    emulator: bool = False

    def allows(self, value: object) -> bool:
        url = _split(value)
        if url is None:
            return False
        if self.emulator:
            return on_this_machine(url.host)
        if url.scheme == "https" and url.port == 443 and url.host in TEAMS_HOSTS:
            return True
        return any(_within(url, prefix) for prefix in self.allowed)


def _within(url: _Url, prefix: str) -> bool:
    allowed = _split(prefix)
    if allowed is None:
        return False
    path = allowed.path if allowed.path.endswith("/") else allowed.path + "/"
    same = (url.scheme, url.host, url.port) == (allowed.scheme, allowed.host, allowed.port)
    return same and (url.path if url.path.endswith("/") else url.path + "/").startswith(path)
