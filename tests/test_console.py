"""The console end to end, as a newcomer runs it: the README's walk-through, forms, refusals."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from storage.database import migrate
from tests.cli import run_cli
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")


def readme_block(marker: str) -> str:
    match = re.search(rf"<!-- {marker} -->\n```text\n(.*?)```", README, re.S)
    assert match, f"README has no {marker} block"
    return match.group(1)


@pytest.fixture
def database(tmp_path: Path) -> dict[str, str]:
    url = f"sqlite:///{tmp_path / 'touchline.db'}"
    migrate(url)
    return {"DATABASE_URL": url}


def console(script: str, env: dict[str, str], *args: str) -> str:
    done = run_cli(*(args or ("console", "--as", "maria")), env=env, stdin=script)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    return done.stdout


def assert_in_order(expected_lines: list[str], output: str) -> None:
    position = 0
    for line in expected_lines:
        found = output.find(line, position)
        assert found >= 0, f"not found after position {position}: {line!r}\n--- output ---\n{output}"
        position = found + len(line)


def test_the_readme_walk_throughs_print_what_the_readme_says(database: dict[str, str]) -> None:
    decision = console(readme_block("walkthrough-script decision"), database, "console", "--as", "maria")
    assert_in_order(readme_block("walkthrough-output decision").splitlines(), decision)
    field = console(readme_block("walkthrough-script field"), database, "console", "--as", "jonas")
    assert_in_order(readme_block("walkthrough-output field").splitlines(), field)
    pulse = console(readme_block("walkthrough-script pulse"), database, "console", "--as", "maria")
    assert_in_order(readme_block("walkthrough-output pulse").splitlines(), pulse)


def test_the_readme_check_example_is_what_touchline_check_prints(tmp_path: Path) -> None:
    example = next(line.strip() for line in README.splitlines() if '"slack:C12" is not a Slack' in line)
    broken = (
        (ROOT / "app.yaml")
        .read_text()
        .replace("targets: [console:#sales-emea]", "targets: [console:#sales-emea, slack:C12]")
    )
    (tmp_path / "app.yaml").write_text(broken)
    done = run_cli("check", cwd=tmp_path)
    assert done.returncode == 2
    assert example in done.stderr


def test_serve_without_platform_credentials_runs_the_console(database: dict[str, str]) -> None:
    output = console("/strategy list\n", database, "serve")
    assert "no chat platform is connected, so Touchline runs here in the terminal" in output
    assert "You are Maria Keller (admin, leader)" in output
    assert "No active strategy decisions yet" in output


def test_a_form_asks_again_for_just_the_fields_to_fix_and_cancel_stores_nothing(
    database: dict[str, str],
) -> None:
    script = "\n".join(
        [
            "/strategy",
            "A title",
            "The decision",
            "",  # why: required, left empty
            "",  # reps may
            "",  # reps may not: both empty, so no guardrails
            "2026-12-01",
            "2026-11-01",  # review before effective
            "sales-emea",
            "/cancel",
            "/strategy list",
        ]
    )
    output = console(script, database)
    assert "✗ Why: Why is required" in output
    assert "✗ Reps may: Give the guardrails" in output
    assert "✗ Review date: The review date must come after the effective date." in output
    assert "[1/3] Why (required)" in output  # asked again: only the three fields to fix
    assert "Form abandoned; nothing was sent." in output
    assert "No active strategy decisions yet" in output


def test_a_rep_is_told_who_may_announce(database: dict[str, str]) -> None:
    output = console("/strategy\npress 9 1\nfly away\n", database, "console", "--as", "jonas")
    assert "Only leaders can announce strategy decisions. Leaders here: Maria Keller." in output
    assert "There is no post 9 in the console." in output
    assert "I don't understand 'fly away'" in output


def test_someone_not_in_app_yaml_cannot_sign_in_to_the_console(database: dict[str, str]) -> None:
    done = run_cli("console", "--as", "mallory", env=database, stdin="")
    assert done.returncode == 2
    assert "'mallory' is not in people: of app.yaml (known: chloe, jonas, lea, maria, priya, sam, tom)" in (
        done.stderr
    )
