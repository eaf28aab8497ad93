"""The doors an outsider could use, tried from outside against a real `touchline serve`:
`/metrics` kept private, and the web page's Origin and Host checks."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import ROOT


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def fetch(url: str, headers: dict[str, str] | None = None, data: bytes | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers or {}, data=data)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


@contextmanager
def serving(tmp_path: Path, **settings: str) -> Iterator[str]:
    """`touchline serve --no-console` in its own process, with `settings` in its environment."""
    (tmp_path / "app.yaml").write_text((ROOT / "app.yaml").read_text())
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "MICROSOFT_", "DATABASE_URL"))},
        "PORT": str(port),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'touchline.db'}",
        **settings,
    }
    touchline = str(Path(sys.executable).with_name("touchline"))
    subprocess.run([touchline, "migrate"], cwd=tmp_path, env=env, check=True, capture_output=True)
    server = subprocess.Popen(
        [touchline, "serve", "--no-console"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if fetch(f"{base}/healthz")[0] == 200:
                    break
            except OSError:
                time.sleep(0.2)
        else:
            raise AssertionError("touchline serve did not start")
        yield base
    finally:
        server.terminate()
        server.communicate(timeout=30)


def test_metrics_ask_for_their_token_when_one_is_set(tmp_path: Path) -> None:
    token = "metrics-token-7d1e8a2b"
    with serving(tmp_path, METRICS_TOKEN=token) as base:
        assert fetch(f"{base}/metrics")[0] == 401
        assert fetch(f"{base}/metrics", {"Authorization": "Bearer not-the-token-at-all"})[0] == 401
        status, body = fetch(f"{base}/metrics", {"Authorization": f"Bearer {token}"})
        assert status == 200 and "touchline_" in body


def test_metrics_on_an_address_of_their_own_are_gone_from_the_public_port(tmp_path: Path) -> None:
    apart = free_port()
    with serving(tmp_path, METRICS_PORT=str(apart)) as base:
        assert fetch(f"{base}/metrics")[0] == 404
        status, body = fetch(f"http://127.0.0.1:{apart}/metrics")
        assert status == 200 and "touchline_" in body
