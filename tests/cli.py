"""Running `touchline` in a fresh process, the way a person runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path = ROOT, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "TOUCHLINE_CONFIG")}
    environment["PYTHONPATH"] = str(ROOT)
    # A key of its own, so that a run against PostgreSQL (no SQLite file to keep one beside)
    # writes no touchline.key into the working folder, the repository.
    environment.setdefault("TOUCHLINE_SECRET_KEY", "touchline-tests-only-key-" + "0" * 16)
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**environment, **(env or {})},
        input=stdin,
        timeout=60,
    )
