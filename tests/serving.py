"""`touchline serve` in a process of its own, serving Slack against the fake Slack (on an event
loop in a thread of this one), on a port the system picks; what it writes to stderr kept in a
file, to be read as an operator would read the log."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests import slack_fake
from tests.conftest import ROOT
from tests.test_hostile_payloads import started

TOUCHLINE = str(Path(sys.executable).with_name("touchline"))
ADDRESS = re.compile(r"serves Slack at http://127\.0\.0\.1:(\d+)/slack/events")


@dataclass
class Served:
    port: int
    stderr: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.stderr.read_text(encoding="utf-8", errors="replace")


@contextmanager
def serving(tmp_path: Path, **settings: str) -> Iterator[Served]:
    """Touchline for the shipped app.yaml with Slack's credentials and `settings` in its
    environment (SQLite in `tmp_path`); stopped, and its output closed, on leaving."""
    (tmp_path / "app.yaml").write_text((ROOT / "app.yaml").read_text())
    with started(slack_fake.fake_slack()) as (fake, _):
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "MICROSOFT_", "TEAMS_"))},
            "DATABASE_URL": f"sqlite:///{tmp_path / 'touchline.db'}",
            "PORT": "0",
            "SLACK_BOT_TOKEN": slack_fake.TOKEN,
            "SLACK_SIGNING_SECRET": slack_fake.SECRET,
            "SLACK_API_URL": fake.base_url,
            **settings,
        }
        subprocess.run([TOUCHLINE, "migrate"], cwd=tmp_path, env=env, check=True, capture_output=True)
        stdout, stderr = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
        with stdout.open("wb") as out, stderr.open("wb") as err:
            server = subprocess.Popen(
                [TOUCHLINE, "serve", "--no-console"], cwd=tmp_path, env=env, stdout=out, stderr=err
            )
            try:
                yield Served(_port(server, stdout, stderr), stderr)
            finally:
                server.terminate()
                server.wait(timeout=30)


def _port(server: subprocess.Popen[bytes], stdout: Path, stderr: Path) -> int:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and server.poll() is None:
        found = ADDRESS.search(stdout.read_text(encoding="utf-8", errors="replace"))
        if found:
            return int(found.group(1))
        time.sleep(0.1)
    raise AssertionError(f"touchline serve did not start:\n{stderr.read_text(errors='replace')[-3000:]}")
