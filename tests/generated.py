"""How property tests draw examples: the same ones on every run, new and more when exploring."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# `make explore` sets this: each property test then tries N times its examples, drawn afresh.
# The suite itself draws the same examples every run, so that CI never fails by chance; what
# exploring finds becomes a written-out case in the test beside it.
EXPLORE = int(os.environ.get("TOUCHLINE_EXPLORE") or 0)

settings.register_profile("touchline", derandomize=not EXPLORE, print_blob=True)
settings.load_profile("touchline")


def examples(count: int, *, fixtures: bool = False) -> settings:
    """Settings for a property test of `count` examples; `fixtures` when it uses pytest's
    function-scoped fixtures (set up once for all its examples, which these tests expect)."""
    return settings(
        max_examples=count * EXPLORE if EXPLORE else count,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture] if fixtures else [],
    )
