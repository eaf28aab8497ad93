"""`app.yaml` and the environment: what is accepted, and errors naming the line, the key path, the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import ConfigError, load_environment, load_organisation, parse_organisation_text
from tests.cli import run_cli
from tests.conftest import ORG_YAML, ROOT

MINIMAL = """\
organisation:
  name: Acme
audiences:
  sales:
    targets: [console:#sales]
"""
SURVEY_FOR_NOBODY = """\
surveys:
  pulse:
    title: P
    audiences: [nobody]
    schedule: 0 9 * * MON
    questions:
      - {id: q, text: Why, type: agree-5}
"""


def problems(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_organisation_text(text)
    return str(caught.value)


def test_the_shipped_demo_organisation_is_valid_and_useful_in_the_console() -> None:
    org = load_organisation(ROOT / "app.yaml")
    assert org.roles["leader"] and org.roles["marketer"] and org.roles["rep"]
    assert all(t.startswith("console:") for a in org.audiences.values() for t in a.targets)
    assert org.surveys and org.digest and org.objections.themes


def test_a_wrong_slack_channel_id_names_its_line_path_and_fix() -> None:
    text = MINIMAL.replace(
        "[console:#sales]", '\n      - console:#sales\n      - slack:C0123456789\n      - "slack:C12"'
    )
    message = problems(text)
    assert (
        'app.yaml:8: audiences.sales.targets[2]: "slack:C12" is not a Slack channel id '
        "(expected C/G + 8-11 characters" in message
    )


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda t: t.replace("  name: Acme", "  name: Acme\n  colour: blue"),
            "app.yaml:3: organisation.colour: unknown key 'colour'",
        ),
        (
            lambda t: t.replace("organisation:\n  name: Acme\n", ""),
            "app.yaml:1: organisation: 'organisation' is required",
        ),
        (
            lambda t: t + "roles:\n  boss: [x]\n",
            "app.yaml:7: roles.boss: 'boss' is not a role (roles are: leader, marketer, marketing-lead, rep",
        ),
        (
            lambda t: t + "roles:\n  leader: [maria]\n",
            'app.yaml:7: roles.leader[0]: "maria" is not in people:',
        ),
        (
            lambda t: t + 'roles:\n  leader: ["email:nope"]\n',
            'app.yaml:7: roles.leader[0]: "email:nope" does not name a person',
        ),
        (
            lambda t: t.replace("  name: Acme", "  name: Acme\n  timezone: Mars/Olympus"),
            "app.yaml:3: organisation.timezone: 'Mars/Olympus' is not a time zone",
        ),
        (
            lambda t: t + "strategy:\n  remind_after: soon\n",
            "app.yaml:7: strategy.remind_after: 'soon' is not a duration (write a number and a unit",
        ),
        (
            lambda t: t + "digest:\n  recipients: [email:a@b.co]\n  schedule: 0 25 * * *\n",
            "app.yaml:8: digest.schedule: '0 25 * * *' is not a cron expression",
        ),
        (
            lambda t: t.replace("console:#sales", "teams:42"),
            'app.yaml:5: audiences.sales.targets[0]: "teams:42" is not a Teams conversation id',
        ),
        (
            lambda t: t.replace("console:#sales", '"#sales"'),
            'app.yaml:5: audiences.sales.targets[0]: "#sales" does not name a platform',
        ),
        (
            lambda t: t.replace("targets: [console:#sales]", "targets: []"),
            "app.yaml:5: audiences.sales.targets: 'targets' needs at least one entry",
        ),
        (
            lambda t: t + "people:\n  Maria:\n    name: M\n",
            "app.yaml:7: people.Maria: 'Maria' is not a usable name",
        ),
        (
            lambda t: t + "people:\n  maria:\n    name: M\n    slack: maria\n",
            "app.yaml:9: people.maria.slack: 'maria' is not a Slack user id",
        ),
        (
            lambda t: t + "delivery:\n  slack:\n    per_conversation: [7/0s]\n    per_app: [300/1m]\n",
            "app.yaml:8: delivery.slack.per_conversation[0]: '7/0s' is not a rate",
        ),
        (
            lambda t: t + "reactions:\n  tada: celebrate\n",
            "app.yaml:7: reactions.tada: 'celebrate' is not something a reaction can mean",
        ),
        (
            lambda t: t + SURVEY_FOR_NOBODY,
            'app.yaml:9: surveys.pulse.audiences[0]: "nobody" is not an audience',
        ),
        (
            lambda t: t + "audiences:\n  more:\n    targets: [console:#more]\n",
            "app.yaml:6: audiences: 'audiences' appears twice (first on line 3); keep one of them",
        ),
    ],
)
def test_each_mistake_is_reported_where_it_is_written(change: object, expected: str) -> None:
    assert expected in problems(change(MINIMAL))  # type: ignore[operator]


def test_every_problem_is_reported_at_once() -> None:
    text = MINIMAL.replace("  name: Acme", "  name: Acme\n  colour: blue").replace(
        "console:#sales", "slack:nope"
    )
    message = problems(text)
    assert message.startswith("app.yaml has 2 problems:")
    assert "organisation.colour" in message and "audiences.sales.targets[0]" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("organisation:\n  name: [unclosed\n", "app.yaml:3: this is not valid YAML"),
        ("organisation:\n\tname: tabs\n", "app.yaml:2: this is not valid YAML"),
        ("- just\n- a list\n", "app.yaml must be a mapping"),
        ("", "'organisation' is required"),
    ],
)
def test_malformed_yaml_is_a_clear_message_not_a_stack_trace(text: str, expected: str) -> None:
    message = problems(text)
    assert expected in message and "Traceback" not in message


def test_a_missing_or_huge_file_is_a_clear_message(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_organisation(tmp_path / "nope.yaml")
    huge = tmp_path / "huge.yaml"
    huge.write_text("# " + "x" * 3_000_000)
    with pytest.raises(ConfigError, match="too large"):
        load_organisation(huge)


def test_environment_errors_name_the_variable_and_never_echo_its_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PORT", "xoxb-secret-in-the-wrong-place")
    with pytest.raises(ConfigError) as caught:
        load_environment()
    assert "PORT" in str(caught.value) and "xoxb-secret" not in str(caught.value)


def test_touchline_check_prints_what_it_understood() -> None:
    done = run_cli("check")
    assert done.returncode == 0, done.stderr
    assert "app.yaml is valid: Northwind Analytics" in done.stdout
    assert "leaders: 1 (Maria Keller)" in done.stdout
    assert "sales-emea: 1 console; 2 members listed" in done.stdout


def test_touchline_check_on_a_broken_file_exits_2_with_the_problems(tmp_path: Path) -> None:
    broken = tmp_path / "app.yaml"
    broken.write_text(ORG_YAML.replace("console:#na", "slack:C12"))
    done = run_cli("check", "--config", str(broken))
    assert done.returncode == 2
    line = next(n for n, text in enumerate(ORG_YAML.splitlines(), 1) if "console:#na" in text)
    assert f'{broken}:{line}: audiences.na.targets[0]: "slack:C12" is not a Slack channel id' in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_secrets_set_in_the_environment_never_appear_in_the_output(tmp_path: Path) -> None:
    secrets = {"SLACK_BOT_TOKEN": "xoxb-do-not-print-1", "MICROSOFT_APP_PASSWORD": "hunter2-do-not-print"}
    done = run_cli("check", env=secrets)
    assert done.returncode == 0
    for secret in secrets.values():
        assert secret not in done.stdout + done.stderr
