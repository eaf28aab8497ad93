"""`app.yaml` and the environment, validated into one `Settings`, with errors naming line and fix."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from handlers import grouping
from handlers.organisation import (
    ROLES,
    Organisation,
    OrganisationInvalid,
    Problem,
    format_duration,
    parse_organisation,
)

MAX_CONFIG_BYTES = 2_000_000
MAX_CONFIG_VALUES = 1_000_000  # values in app.yaml, aliases expanded


TEAMS_APP_TYPES = {
    "SingleTenant": "single-tenant",
    "MultiTenant": "multi-tenant (registered before 2025-07-31)",
    "UserAssignedMSI": "user-assigned managed identity",
}


class ConfigError(Exception):
    """Touchline cannot start with this configuration; the message lists every problem found."""


class Environment(BaseSettings):
    """Secrets and deployment settings; they come from the environment only, never from app.yaml."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore")

    database_url: str = "sqlite:///touchline.db"
    touchline_config: Path = Path("app.yaml")
    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: str | None = None
    microsoft_app_id: str | None = None
    microsoft_app_password: SecretStr | None = None
    microsoft_app_tenant_id: str | None = None
    # How the bot proves who it is to the Bot Connector: an Entra app registration with a secret in
    # one tenant (new bots; MICROSOFT_APP_TENANT_ID), one made multi-tenant before 2025-07-31, or a
    # user-assigned managed identity (MICROSOFT_APP_ID its client id, no secret). Unset: single-
    # tenant when a tenant is given, else multi-tenant, as the Bot Framework's samples read it.
    microsoft_app_type: Literal["SingleTenant", "MultiTenant", "UserAssignedMSI"] | None = None
    # TEAMS_EMULATOR=1: /api/messages without authentication, for the Bot Framework Emulator on this
    # machine; never beside a platform's credentials.
    teams_emulator: bool = False
    # Bot Framework service URLs to send to besides Teams' own hosts: comma-separated https prefixes.
    teams_service_urls: str | None = None
    # Where the signing keys of Bot Framework tokens are published; Microsoft's unless set (tests).
    microsoft_openid_metadata_url: str | None = Field(default=None, pattern=r"^https?://[^\s/]+(/\S*)?$")
    # Where the bot's own token is fetched (Entra's login host); Microsoft's public cloud unless set.
    microsoft_login_url: str | None = Field(default=None, pattern=r"^https?://[^\s/]+(/\S*)?$")
    # Seals pulse ballots and anonymous concerns; the same on every replica, kept while a run is open.
    touchline_secret_key: SecretStr | None = Field(default=None, min_length=32)
    host: str = "127.0.0.1"
    # Where people's browsers reach Touchline (the dashboard's sign-in links), e.g. https://touchline.example.com
    public_url: str | None = Field(default=None, pattern=r"^https?://[^\s/]+(/\S*)?$")
    port: int = Field(default=3978, ge=0, le=65535)  # 0: any free port
    # /metrics: a bearer token it asks for, and/or an address of its own (not the public port).
    metrics_token: SecretStr | None = Field(default=None, min_length=16)
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # Slow or too many clients: seconds for a request's headers, for its body, between requests on
    # a kept-alive connection (past a proxy's 60 s, so the proxy is the one that closes); connections.
    header_timeout: float = Field(default=10.0, gt=0, le=600)
    body_timeout: float = Field(default=10.0, gt=0, le=600)
    idle_timeout: float = Field(default=75.0, gt=0, le=3600)
    # At SIGTERM: seconds to finish what was received; what is left stays in the inbox for the next start.
    shutdown_grace: float = Field(default=10.0, ge=0, le=600)
    max_connections: int = Field(default=256, ge=1, le=100_000)

    @property
    def slack_configured(self) -> bool:
        return self.slack_bot_token is not None and self.slack_signing_secret is not None

    @property
    def teams_app_type(self) -> str:
        if self.microsoft_app_type:
            return self.microsoft_app_type
        return "SingleTenant" if self.microsoft_app_tenant_id else "MultiTenant"

    @property
    def teams_configured(self) -> bool:
        if self.microsoft_app_type == "UserAssignedMSI":
            return bool(self.microsoft_app_id)
        return bool(self.microsoft_app_id) and self.microsoft_app_password is not None

    @field_validator("teams_service_urls")
    @classmethod
    def _service_urls(cls, value: str | None) -> str | None:
        from bot.teams.service_urls import parse_allowed

        parse_allowed(value)  # a ValueError names the entry
        return value

    @model_validator(mode="after")
    def _emulator_alone(self) -> Environment:
        if self.teams_emulator:
            given = {
                "SLACK_BOT_TOKEN": self.slack_bot_token is not None,
                "SLACK_SIGNING_SECRET": self.slack_signing_secret is not None,
                "SLACK_APP_TOKEN": self.slack_app_token is not None,
                "MICROSOFT_APP_ID": bool(self.microsoft_app_id),  # the Emulator's samples leave it ""
                "MICROSOFT_APP_PASSWORD": self.microsoft_app_password is not None,
            }
            credentials = [name for name, present in given.items() if present]
            if credentials:
                raise ValueError(
                    "TEAMS_EMULATOR=1 serves /api/messages without authentication, so it never runs "
                    f"beside a platform's credentials, and {', '.join(credentials)} "
                    f"{'is' if len(credentials) == 1 else 'are'} set: unset TEAMS_EMULATOR, or those"
                )
        return self

    @model_validator(mode="after")
    def _tenant_for_one_tenant(self) -> Environment:
        if self.microsoft_app_type == "SingleTenant" and not self.microsoft_app_tenant_id:
            raise ValueError(
                "MICROSOFT_APP_TYPE=SingleTenant needs MICROSOFT_APP_TENANT_ID: the Directory (tenant) "
                "ID on the app registration's Overview page"
            )
        return self


@dataclass(frozen=True)
class Settings:
    env: Environment
    org: Organisation
    config_path: Path


def load_environment() -> Environment:
    try:
        return Environment()
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            variable = str(error["loc"][0]).upper() if error["loc"] else None
            # Never echo the value: it may be a secret pasted into the wrong variable.
            message = str(error["msg"]).removeprefix("Value error, ")
            lines.append(f"{variable}: {message}" if variable else message)
        raise ConfigError("The environment is not valid:\n  " + "\n  ".join(lines)) from None


def load_settings(config_path: Path | None = None) -> Settings:
    env = load_environment()
    path = config_path or env.touchline_config
    return Settings(env=env, org=load_organisation(path), config_path=path)


def load_organisation(path: Path) -> Organisation:
    """Read and validate `app.yaml`; a `ConfigError` says where each problem is and how to fix it."""
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ConfigError(f"{path}: {size:,} bytes is too large for a configuration file.")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no such file. Copy the shipped app.yaml or set TOUCHLINE_CONFIG to its path."
        ) from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text.") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror}).") from None
    return parse_organisation_text(text, name=str(path))


def parse_organisation_text(text: str, *, name: str = "app.yaml") -> Organisation:
    try:
        return _parse_organisation_text(text, name)
    except RecursionError:
        raise ConfigError(f"{name}: nested too deeply for a configuration file.") from None


def _parse_organisation_text(text: str, name: str) -> Organisation:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        if _expands_too_far(root):
            raise ConfigError(
                f"{name}: its aliases (*name) expand to more than {MAX_CONFIG_VALUES:,} values, "
                "or into themselves; write the values out instead."
            )
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{name}:{mark.line + 1}" if mark else name
        raise ConfigError(
            f"{where}: this is not valid YAML ({exc.problem or exc.context}). "
            "Check the indentation and quoting around that line."
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{name}: this is not valid YAML ({exc}).") from None
    problems = _duplicate_keys(root, ())
    try:
        org = parse_organisation(data if data is not None else {})
    except OrganisationInvalid as invalid:
        problems += invalid.problems
        org = None
    if problems:
        lines = [_describe(problem, root, name) for problem in problems]
        count = f"{len(lines)} problems" if len(lines) > 1 else "1 problem"
        raise ConfigError(f"{name} has {count}:\n  " + "\n  ".join(lines))
    assert org is not None
    return org


def _expands_too_far(root: yaml.Node | None) -> bool:
    """More values than any configuration file holds, counted through the aliases: an alias
    inside what it names, or aliases of aliases (a "billion laughs"), would never finish."""
    count, stack = 0, [] if root is None else [root]
    while stack:
        node = stack.pop()
        count += 1
        if count > MAX_CONFIG_VALUES:
            return True
        if isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
        elif isinstance(node, yaml.MappingNode):
            stack.extend(child for pair in node.value for child in pair)
    return False


def _describe(problem: Problem, root: yaml.Node | None, name: str) -> str:
    path = problem.path
    line = problem.line or _line_of(root, path)
    where = f"{name}:{line}" if line else name
    return f"{where}: {format_path(path)}: {problem.message}" if path else f"{where}: {problem.message}"


def format_path(path: tuple[str | int, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _line_of(node: yaml.Node | None, path: tuple[str | int, ...]) -> int | None:
    """The 1-based line where `path` is written, or the closest enclosing one that exists."""
    if node is None:
        return None
    line = node.start_mark.line + 1
    for part in path:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if str(key_node.value) == str(part):
                    line = key_node.start_mark.line + 1
                    child = value_node
                    break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            child = node.value[part]
            line = child.start_mark.line + 1
        if child is None:
            return line
        node = child
    return line


def _duplicate_keys(node: yaml.Node | None, path: tuple[str | int, ...]) -> list[Problem]:
    # YAML silently keeps the last of two equal keys; in a config file that hides a mistake.
    problems: list[Problem] = []
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                problems.append(
                    Problem(
                        (*path, key),
                        f"{key!r} appears twice (first on line {seen[key]}); keep one of them",
                        line=key_node.start_mark.line + 1,
                    )
                )
            seen.setdefault(key, key_node.start_mark.line + 1)
            problems += _duplicate_keys(value_node, (*path, key))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            problems += _duplicate_keys(item, (*path, i))
    return problems


def summary(settings: Settings) -> str:
    """What `touchline check` prints: the organisation as Touchline understood it."""
    org, env = settings.org, settings.env
    lines = [f"{settings.config_path} is valid: {org.organisation.name} ({org.organisation.timezone})"]
    lines.append(f"  people: {len(org.people)}")
    for role in ROLES:
        refs: list[Any] = org.roles.get(role, [])
        names = [org.people[r].name if r in org.people else r for r in refs]
        lines.append(f"  {role}s: {len(refs)}" + (f" ({', '.join(names)})" if names else ""))
    lines.append(f"  audiences: {len(org.audiences)}")
    for key, audience in org.audiences.items():
        platforms: dict[str, int] = {}
        for target in audience.targets:
            platform = target.split(":", 1)[0]
            platforms[platform] = platforms.get(platform, 0) + 1
        where = ", ".join(f"{n} {p}" for p, n in platforms.items())
        lines.append(f"    {key}: {where}; {len(audience.members)} members listed")
    lines.append(f"  reactions: {', '.join(f':{e}: = {a}' for e, a in org.reactions.items())}")
    lines.append(f"  acknowledgement reminder after: {format_duration(org.strategy.remind_after)}")
    lines.append(f"  surveys: {', '.join(org.surveys) or 'none'}")
    lines.append(f"  digest: {'to ' + ', '.join(org.digest.recipients) if org.digest else 'none'}")
    lines.append(f"  objection themes: {', '.join(org.objections.themes) or 'none'}")
    lines.append(f"  objection grouping: {grouping.described(org.objections.grouping)}")
    lines.append(f"  known competitors: {', '.join(org.objections.competitors) or 'none'}")
    if env.slack_configured:
        how = (
            "Socket Mode" if env.slack_app_token is not None else f"http://{env.host}:{env.port}/slack/events"
        )
        lines.append(f"  platforms: Slack ({how})")
    else:
        lines.append("  platforms: console (set SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET for Slack)")
    if env.teams_configured:
        lines.append(
            f"  platforms: Teams (app {env.microsoft_app_id}, {TEAMS_APP_TYPES[env.teams_app_type]}, "
            f"http://{env.host}:{env.port}/api/messages)"
        )
    elif env.teams_emulator:
        lines.append(
            "  platforms: Teams in Bot Framework Emulator mode (TEAMS_EMULATOR=1: unauthenticated, "
            f"http://127.0.0.1:{env.port}/api/messages, for this machine only)"
        )
    else:
        lines.append(
            "  platforms: Teams not served (set MICROSOFT_APP_ID and _PASSWORD for Teams, or "
            "TEAMS_EMULATOR=1 to try it in the Bot Framework Emulator)"
        )
    slack_targets = any(t.startswith("slack:") for a in org.audiences.values() for t in a.targets)
    if slack_targets and not env.slack_configured:
        lines.append("  note: audiences name Slack channels, but Slack is not configured: their posts wait")
    return "\n".join(lines)
