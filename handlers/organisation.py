"""The organisation Touchline serves, as `app.yaml` describes it: people, roles, audiences and the rest."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    model_validator,
)

# A marketing lead is a marketer who may also read confidential objections.
Role = Literal["leader", "marketer", "marketing-lead", "rep", "admin"]
ROLES: tuple[Role, ...] = ("leader", "marketer", "marketing-lead", "rep", "admin")
PLATFORMS = ("slack", "teams", "console")
# What an emoji reaction on a Touchline post can mean.
ReactionAction = Literal["got-it", "useful", "used-with-customer", "doesnt-fit"]
REACTION_ACTIONS: tuple[ReactionAction, ...] = ("got-it", "useful", "used-with-customer", "doesnt-fit")

KEY = re.compile(r"^[a-z][a-z0-9._-]{0,62}$")
SLACK_CHANNEL = re.compile(r"^[CG][A-Z0-9]{8,11}$")
SLACK_USER = re.compile(r"^[UW][A-Z0-9]{8,11}$")
SLACK_GROUP = re.compile(r"^S[A-Z0-9]{8,11}$")
TEAMS_CONVERSATION = re.compile(r"^(19:|a:)\S+$")
TEAMS_USER = re.compile(
    r"^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|29:\S+)$"
)
CONSOLE_CHANNEL = re.compile(r"^#[a-z0-9][a-z0-9_-]{0,62}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
DURATION = re.compile(r"^\s*(\d+)\s*(m|h|d|w)\s*$")
DURATION_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class Problem(Exception):
    """One thing wrong in `app.yaml`: where (a key path) and what to do about it."""

    def __init__(self, path: tuple[str | int, ...], message: str, *, line: int | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.message = message
        self.line = line  # when the path alone cannot say which line (a repeated key)


class OrganisationInvalid(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(p.message for p in problems))
        self.problems = problems


LONGEST = timedelta(days=366)


def parse_duration(value: Any) -> timedelta:
    """`"2d"` -> two days; units m, h, d, w."""
    if isinstance(value, timedelta):
        return value
    match = DURATION.match(str(value))
    if not match:
        raise ValueError(f"{value!r} is not a duration (write a number and a unit: 90m, 36h, 2d, 1w)")
    amount, unit = match.groups()
    try:
        found = timedelta(**{DURATION_UNITS[unit]: int(amount)})
    except OverflowError:
        found = LONGEST + LONGEST
    if found > LONGEST:
        # A run open for 999999999d would close past any date a database stores: every run fails.
        raise ValueError(f"{value!r} is longer than a year, the longest Touchline waits for anything")
    return found


RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*(s|m|h)\s*$")


def parse_rate(value: Any) -> tuple[int, float]:
    """`"7/1s"` -> at most 7 in any 1 second; `"60/30s"`, `"1800/1h"`; as (count, seconds)."""
    if isinstance(value, tuple):
        return (int(value[0]), float(value[1]))
    match = RATE.match(str(value))
    # Neither no messages nor a period of no time: a limit that could never be met.
    if not match or int(match.group(1)) < 1 or (match.group(2) and int(match.group(2)) < 1):
        raise ValueError(f"{value!r} is not a rate (a count, a slash and a period: 7/1s, 60/30s, 1800/1h)")
    count, amount, unit = match.groups()
    return (int(count), (int(amount) if amount else 1) * {"s": 1, "m": 60, "h": 3600}[unit])


def format_duration(value: timedelta) -> str:
    """The way app.yaml writes it: two days -> "2d"."""
    seconds = int(value.total_seconds())
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return str(value)


def _timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a directory, a name too long
        raise ValueError(
            f"{value!r} is not a time zone (use an IANA name such as Europe/Berlin or America/New_York)"
        ) from None
    return value


def _cron(value: str) -> str:
    # Five fields as in crontab; APScheduler's parser is the one the scheduler will use.
    from apscheduler.triggers.cron import CronTrigger

    try:
        CronTrigger.from_crontab(value)
    except ValueError as exc:
        raise ValueError(
            f'{value!r} is not a cron expression ({exc}; e.g. "0 9 * * MON" is Mondays at 09:00)'
        ) from None
    return value


def _key(value: str) -> str:
    if not KEY.match(value):
        raise ValueError(
            f"{value!r} is not a usable name (lower-case letters, digits, '.', '-' or '_', "
            "starting with a letter)"
        )
    return value


def _target(value: str) -> str:
    platform, _, address = value.partition(":")
    if platform == "console":
        if not CONSOLE_CHANNEL.match(address):
            raise ValueError(f'"{value}" is not a console channel (expected console:#name)')
    elif platform == "slack":
        if not SLACK_CHANNEL.match(address):
            raise ValueError(
                f'"{value}" is not a Slack channel id (expected C/G + 8-11 characters, '
                "e.g. slack:C0123456789; copy it from the channel's details in Slack)"
            )
    elif platform == "teams":
        if not TEAMS_CONVERSATION.match(address):
            raise ValueError(
                f'"{value}" is not a Teams conversation id (expected teams:19:...@thread.tacv2 '
                "for a channel or teams:19:...@thread.v2 for a group chat)"
            )
    else:
        raise ValueError(
            f'"{value}" does not name a platform (write console:#name, slack:C... or teams:19:...)'
        )
    return value


def _person_ref(value: str) -> str:
    kind, sep, rest = value.partition(":")
    if not sep:
        return _key(value)
    if kind == "email" and EMAIL.match(rest):
        return value
    if kind == "slack" and SLACK_USER.match(rest):
        return value
    if kind == "teams" and TEAMS_USER.match(rest):
        return value
    if kind == "slack-group" and SLACK_GROUP.match(rest):
        return value
    raise ValueError(
        f'"{value}" does not name a person (write a key from people:, email:name@company.com, '
        "slack:U0123456789, slack-group:S0123456789 (a Slack user group) or teams:<AAD object id>)"
    )


def _listify(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


Key = Annotated[str, AfterValidator(_key)]
TimeZoneName = Annotated[str, AfterValidator(_timezone)]
Cron = Annotated[str, AfterValidator(_cron)]
Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
Target = Annotated[str, AfterValidator(_target)]
PersonRef = Annotated[str, AfterValidator(_person_ref)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class About(Strict):
    name: str = Field(min_length=1, max_length=80)
    timezone: TimeZoneName = "UTC"


class Person(Strict):
    name: str = Field(min_length=1, max_length=80)
    email: str | None = Field(default=None, pattern=EMAIL.pattern)
    timezone: TimeZoneName | None = None
    slack: str | None = Field(default=None, pattern=SLACK_USER.pattern)
    teams: str | None = Field(default=None, pattern=TEAMS_USER.pattern)


class Audience(Strict):
    label: str = Field(default="", max_length=80)
    targets: Annotated[list[Target], BeforeValidator(_listify)] = Field(min_length=1)
    members: Annotated[list[PersonRef], BeforeValidator(_listify)] = []


class StrategySettings(Strict):
    # How long people have to acknowledge a decision before they get one reminder.
    remind_after: Duration = timedelta(days=2)


class Question(Strict):
    """One pulse question: agreement 1-5, a 0-10 scale, one of `choices`, or free text."""

    id: Key
    text: str = Field(min_length=1, max_length=300)
    type: Literal["agree-5", "scale-10", "choice", "text"]
    choices: list[Annotated[str, Field(min_length=1, max_length=75)]] = []
    optional: bool = False

    @model_validator(mode="after")
    def _choices_fit_the_type(self) -> Question:
        if self.type == "choice" and len(self.choices) < 2:
            raise ValueError("a choice question needs at least two choices: choices: [yes, no]")
        if self.type != "choice" and self.choices:
            raise ValueError(f"choices are only for type: choice, not {self.type}")
        return self


class Survey(Strict):
    """A pulse survey: who gets it, when (cron, in each person's time zone), for how long."""

    title: str = Field(min_length=1, max_length=120)
    audiences: Annotated[list[Key], BeforeValidator(_listify)] = Field(min_length=1)
    schedule: Cron
    open_for: Duration = timedelta(days=3)
    remind_after: Duration | None = timedelta(days=2)
    # Results show only for groups with at least this many respondents.
    min_group_size: int = Field(default=5, ge=3)
    min_group_size_comments: int = Field(default=10, ge=5)
    # Otherwise invitations and reminders that would land outside 08:00-20:00 on a weekday,
    # in the person's time zone, wait for the next working morning.
    allow_night_and_weekends: bool = False
    questions: list[Question] = Field(min_length=1)

    @model_validator(mode="after")
    def _question_ids_are_unique(self) -> Survey:
        ids = [q.id for q in self.questions]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ValueError(f"question ids must be unique; repeated: {', '.join(repeated)}")
        return self


class Digest(Strict):
    recipients: Annotated[list[PersonRef], BeforeValidator(_listify)] = Field(min_length=1)
    schedule: Cron = "0 8 * * MON"
    period: Duration = timedelta(days=7)
    # Quotes in the digest carry the rep's name only when this is on.
    quote_names: bool = False


Choices = Annotated[list[Annotated[str, Field(min_length=1, max_length=100)]], BeforeValidator(_listify)]


class Objections(Strict):
    """The objection taxonomy and the choices the full objection form offers."""

    # theme name -> cue words that suggest it ("price": [expensive, budget, ...]); or, to teach
    # the grouping by meaning as well, {cues: [...], examples: ["sentences a customer would say"]}
    themes: dict[Key, Choices] = {}
    # theme name -> its example sentences (from the second form above; read, not written)
    examples: dict[Key, list[Annotated[str, Field(min_length=1, max_length=500)]]] = {}
    competitors: Choices = []
    segments: Choices = ["SMB", "Mid-market", "Enterprise", "Public sector"]
    products: Choices = []
    deal_stages: Choices = ["Prospecting", "Discovery", "Demo", "Proposal", "Negotiation", "Renewal"]
    deal_sizes: Choices = ["< 25k", "25k-100k", "100k-500k", "> 500k"]
    # How objections without a cue word find their theme: shared words, or meaning (a local
    # sentence-embedding model, installed with Touchline).
    grouping: Literal["words", "semantic"] = "semantic"  # by meaning; words where the model cannot load
    # Objections older than this many months are deleted (none, when not set).
    keep_for_months: int | None = Field(default=None, ge=1, le=1200)

    @model_validator(mode="before")
    @classmethod
    def _themes_with_examples(cls, data: Any) -> Any:
        """A theme given as {cues, examples} is its cue words in `themes` and its sentences in
        `examples`; a theme given as a list is cue words alone, as it always was."""
        if not isinstance(data, dict) or not isinstance(data.get("themes"), dict) or "examples" in data:
            return data
        cues: dict[Any, Any] = {}
        examples: dict[Any, Any] = {}
        for key, entry in data["themes"].items():
            if isinstance(entry, dict):
                unknown = sorted(set(entry) - {"cues", "examples"})
                if unknown:
                    raise ValueError(f"theme {key}: {', '.join(map(str, unknown))} is not cues or examples")
                cues[key] = entry.get("cues") or []
                if entry.get("examples"):
                    examples[key] = entry["examples"]
            else:
                cues[key] = entry
        return {**data, "themes": cues, "examples": examples}


Rate = Annotated[tuple[int, float], BeforeValidator(parse_rate)]


class PlatformLimits(Strict):
    # At most so many messages in any such period to one channel or person, and for the whole app.
    per_conversation: list[Rate]
    per_app: list[Rate]


class Delivery(Strict):
    # How many messages may be on their way at once, across platforms.
    concurrency: int = Field(default=32, ge=1, le=1024)
    # Slack: about one message a second per channel; chat.postMessage's workspace limit is
    # "several hundred a minute". Teams: 7/s, 60/30 s and 1,800/h per conversation, and
    # about 50 requests a second per app and tenant.
    slack: PlatformLimits = PlatformLimits(per_conversation=[(1, 1.0)], per_app=[(300, 60.0)])
    teams: PlatformLimits = PlatformLimits(
        per_conversation=[(7, 1.0), (60, 30.0), (1800, 3600.0)], per_app=[(50, 1.0)]
    )


class Organisation(Strict):
    """The validated content of `app.yaml`."""

    organisation: About
    people: dict[Key, Person] = {}
    roles: dict[Role, Annotated[list[PersonRef], BeforeValidator(_listify)]] = {}
    audiences: dict[Key, Audience] = Field(min_length=1)
    reactions: dict[str, ReactionAction] = {
        "white_check_mark": "got-it",
        "heavy_check_mark": "got-it",
        "+1": "useful",
        "-1": "doesnt-fit",
    }
    strategy: StrategySettings = StrategySettings()
    surveys: dict[Key, Survey] = {}
    digest: Digest | None = None
    objections: Objections = Objections()
    delivery: Delivery = Delivery()

    # ref ("maria", "email:maria@x.com", "slack:U…") -> its roles; built on first use
    _role_index: dict[str, frozenset[str]] | None = PrivateAttr(default=None)

    def roles_for(self, names: Iterable[str]) -> frozenset[str]:
        """The roles given to any of these names of one person (key, email:…, slack:…, teams:…)."""
        if self._role_index is None:
            index: dict[str, set[str]] = {}
            for role, refs in self.roles.items():
                for ref in refs:
                    index.setdefault(ref.lower() if ref.startswith("email:") else ref, set()).add(role)
            self._role_index = {ref: frozenset(roles) for ref, roles in index.items()}
        return frozenset(role for name in names for role in self._role_index.get(name, ()))

    def timezone_of(self, person_key: str) -> str:
        person = self.people.get(person_key)
        return (person.timezone if person else None) or self.organisation.timezone


@dataclass(frozen=True)
class _RefCheck:
    path: tuple[str | int, ...]
    ref: str


def parse_organisation(data: Any) -> Organisation:
    """Validate the loaded YAML; every problem found is raised together, each with its path."""
    if not isinstance(data, dict):
        raise OrganisationInvalid(
            [Problem((), "app.yaml must be a mapping with organisation:, people:, audiences:, ...")]
        )
    broken = list(_broken_text(data, ()))
    if broken:
        raise OrganisationInvalid(broken)
    try:
        org = Organisation.model_validate(data)
    except ValidationError as exc:
        raise OrganisationInvalid([_problem(e) for e in exc.errors()]) from None
    problems = _reference_problems(org) + _shared_ids(org)
    if problems:
        raise OrganisationInvalid(problems)
    return org


def _broken_text(value: Any, path: tuple[str | int, ...]) -> Iterator[Problem]:
    """Text with a lone surrogate (a "\\ud800" escape): no database stores it, no chat shows it."""
    if isinstance(value, str) and any("\ud800" <= ch <= "\udfff" for ch in value):
        yield Problem(path, "has a broken character (a lone surrogate such as \\ud800): retype it")
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _broken_text(key, path)
            yield from _broken_text(item, (*path, str(key)))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _broken_text(item, (*path, i))


def _shared_ids(org: Organisation) -> list[Problem]:
    """Two people with one Slack id, Teams id or e-mail: whoever it is could be either."""
    problems = []
    for kind in ("slack", "teams", "email"):
        seen: dict[str, str] = {}
        for key, person in org.people.items():
            value = getattr(person, kind)
            if value is None:
                continue
            found = value.casefold() if kind != "slack" else value
            if found in seen:
                problems.append(
                    Problem(("people", key, kind), f"{value} is {seen[found]}'s {kind} too: one person each")
                )
            seen.setdefault(found, key)
    return problems


def _problem(error: Any) -> Problem:
    loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    # pydantic reports a bad mapping key as (..., key, "[key]"): the key itself is the culprit.
    path = tuple(p for p in loc if p != "[key]")
    kind = error["type"]
    message = str(error["msg"]).removeprefix("Value error, ")
    if kind == "extra_forbidden":
        message = f"unknown key {path[-1]!r}; remove it or check its spelling"
    elif kind == "missing":
        message = f"{path[-1]!r} is required here"
    elif kind == "literal_error" and len(path) >= 2 and path[0] == "roles":
        message = f"{path[-1]!r} is not a role (roles are: {', '.join(ROLES)})"
    elif kind == "literal_error" and path and path[0] == "reactions":
        allowed = ", ".join(REACTION_ACTIONS)
        message = f"{error['input']!r} is not something a reaction can mean (use one of: {allowed})"
    elif kind == "string_pattern_mismatch" and path:
        message = _pattern_message(str(path[-1]), error["input"])
    elif kind == "too_short" and path and path[-1] in ("targets", "audiences", "recipients"):
        message = f"{path[-1]!r} needs at least one entry"
    return Problem(path, message)


def _pattern_message(key: str, value: Any) -> str:
    hints = {
        "email": "an e-mail address such as maria@company.com",
        "slack": "a Slack user id such as U0123456789 (profile > ... > Copy member ID)",
        "teams": "a Teams user's AAD object id (a GUID) or their 29: id",
    }
    return f"{value!r} is not {hints.get(key, 'valid here')}"


def _reference_problems(org: Organisation) -> list[Problem]:
    problems: list[Problem] = []
    checks = [
        _RefCheck(("roles", role, i), ref) for role, refs in org.roles.items() for i, ref in enumerate(refs)
    ]
    checks += [
        _RefCheck(("audiences", name, "members", i), ref)
        for name, audience in org.audiences.items()
        for i, ref in enumerate(audience.members)
    ]
    if org.digest:
        checks += [_RefCheck(("digest", "recipients", i), ref) for i, ref in enumerate(org.digest.recipients)]
    for check in checks:
        if check.ref.startswith("slack-group:") and check.path[0] == "digest":
            problems.append(
                Problem(check.path, "digest recipients are people; a Slack user group is not one")
            )
        if ":" not in check.ref and check.ref not in org.people:
            known = ", ".join(sorted(org.people)) or "none yet"
            problems.append(
                Problem(
                    check.path,
                    f'"{check.ref}" is not in people: (known: {known}); add it there or '
                    "write email:/slack:/teams: to name someone directly",
                )
            )
    for name, survey in org.surveys.items():
        for i, audience in enumerate(survey.audiences):
            if audience not in org.audiences:
                problems.append(
                    Problem(
                        ("surveys", name, "audiences", i),
                        f'"{audience}" is not an audience (known: {", ".join(sorted(org.audiences))})',
                    )
                )
    if "other" in org.objections.themes:
        problems.append(
            Problem(
                ("objections", "themes", "other"),
                "'other' is where objections without a theme go; name this theme differently",
            )
        )
    for emoji, _ in org.reactions.items():
        if not emoji.strip() or " " in emoji:
            problems.append(Problem(("reactions", emoji), f"{emoji!r} is not an emoji name"))
    return problems
